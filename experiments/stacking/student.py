"""Train a student on the BERT + n-gram mix's probabilities (`teacher: mix` in student.yaml), with
the weights `run.py` chose on writer-grouped out-of-fold predictions. The rest is `replyqa train`.

    .venv/bin/python experiments/stacking/student.py
    replyqa scoreboard --model experiments/stacking/student --config experiments/stacking/student.yaml
"""

from __future__ import annotations

import json
from pathlib import Path

from run import HERE, Mix, fitted_ngrams

import ml.modeling.train as training
from ml.config import load_config
from ml.modeling.scorer import Scorer

CONFIG = HERE / "student.yaml"


class TeacherOrScorer:
    """`Scorer.load` as training calls it, except that the teacher `mix` is the mix."""

    def __init__(self, mix: Mix) -> None:
        self.mix = mix

    def load(self, location, *args, **kwargs):
        return self.mix if str(location) == "mix" else Scorer.load(location, *args, **kwargs)


def main() -> None:
    config = load_config(CONFIG)
    teacher_model = json.loads(next(HERE.glob("results_*.json")).read_text(encoding="utf-8"))
    mix = Mix(Scorer.load("models/default"), fitted_ngrams(config), teacher_model["weights"])
    training.Scorer = TeacherOrScorer(mix)
    training.train(config.train, Path(CONFIG), config.scoreboard)


if __name__ == "__main__":
    main()
