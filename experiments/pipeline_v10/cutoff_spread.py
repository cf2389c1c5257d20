"""How far do the cut-offs move when only the validation draw changes? Scores the default's own
validation split (tuning data, not an evaluation set) once, then re-tunes every label's cut-off
with the configured objective on bootstrap resamples of it (`ml.evaluation.metrics.threshold_spread`,
what `replyqa train` now records for every new model).

    .venv/bin/python experiments/pipeline_v10/cutoff_spread.py   # about a minute on 2 cores
"""

import json
from pathlib import Path

from ml.config import load_config
from ml.data.records import label_matrix, load_labelled
from ml.evaluation.metrics import threshold_spread, tune_threshold
from ml.labels import LABELS
from ml.modeling.scorer import Scorer

RESAMPLES = 500


def main() -> None:
    objectives = load_config("configs/default.yaml").train.threshold_objective
    validation = load_labelled(["data/split/validation.jsonl"])
    truth = label_matrix(validation)
    probabilities = Scorer.load("models/default").predict_proba(validation["text"], validation["context"])
    spread = threshold_spread(truth, probabilities, objectives, resamples=RESAMPLES, seed=0)
    result = {"records": len(truth), "resamples": RESAMPLES, "labels": {}}
    for i, label in enumerate(LABELS):
        objective = objectives.get(label, "f1")
        result["labels"][label] = {
            "objective": objective,
            "positives": int(truth[:, i].sum()),
            "on_the_whole_split": round(tune_threshold(truth[:, i], probabilities[:, i], objective), 4),
            "bootstrap_5_95": spread[label],
        }
    Path("experiments/pipeline_v10/cutoff_spread.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
