"""Measurement (experiments/data_v8/README.md): v8 as eight more held-out writers for the shipped default.
No model that ships has trained on v8, so the default (`models/default`) and both baselines (fitted on
its own split, as in the scoreboard) are scored on the v8 files with the scoreboard's own held-out
function: pooled macro-F1 with its bootstrap interval, per writer, and risk recall at precision 0.85.

    python experiments/data_v8/fresh_writers.py    # a few minutes on 2 cores; writes fresh_writers.json
"""

from __future__ import annotations

import json
from pathlib import Path

from ml.data.records import expand_paths, load_labelled
from ml.evaluation.scoreboard import held_out_writers, shared_with_training, systems_for
from ml.modeling.scorer import Scorer

HERE = Path(__file__).parent
TRAIN, VALIDATION = "data/split/train.jsonl", "data/split/validation.jsonl"


def main() -> None:
    scorer = Scorer.load("models/default")
    systems = systems_for(scorer, TRAIN, VALIDATION)
    sets = {path: load_labelled([path]) for path in expand_paths(["data/v8"])}
    board = held_out_writers(systems, sets, shared_with_training(TRAIN, sets))
    board["model"] = scorer.info.version
    (HERE / "fresh_writers.json").write_text(json.dumps(board, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for name, per_file in board["per_file"].items():
        pooled = board["pooled"][name]
        print(f"{name}: pooled {pooled['macro_f1']:.4f}", {writer[:4]: round(f1, 3) for writer, f1 in per_file.items()})


if __name__ == "__main__":
    main()
