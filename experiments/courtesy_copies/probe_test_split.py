"""The scoreboard's courtesy probe (ml/evaluation/scoreboard.py, `invariance`) on the test split for
several models, without the rest of the scoreboard (experiments/courtesy_copies/README.md).

    python experiments/courtesy_copies/probe_test_split.py MODEL_DIR... > probe_test_split.json
"""

from __future__ import annotations

import json
import sys

from ml.data.records import load_labelled
from ml.evaluation.scoreboard import invariance, model_system
from ml.modeling.scorer import Scorer

TEST = "data/split/test.jsonl"  # the v1-v6 split every model here was trained beside

if __name__ == "__main__":
    dataset = load_labelled([TEST])
    report = {}
    for model in sys.argv[1:]:
        scorer = Scorer.load(model, runtime="portable")  # as the scoreboard runs it
        report[f"{model} ({scorer.info.version})"] = invariance(model_system(scorer), dataset)["courtesy_wrapper"]
    print(json.dumps(report, indent=1))
