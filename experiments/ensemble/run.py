"""Experiment: does averaging the BERT's probabilities with the TF-IDF baseline's help where it
matters (held-out writers, out-of-domain false alarms)? Weights and thresholds are chosen on the
validation split only; the held-out writers and the OOD set are only measured.

    .venv/bin/python experiments/ensemble/run.py > experiments/ensemble/results_<model version>.json

The risk labels are cut with the model's own objectives (labels.json `threshold_objective`).
"""

import json

import numpy as np

from ml.data.records import expand_paths, label_matrix, load_labelled
from ml.evaluation.baselines import TfidfLogReg
from ml.evaluation.metrics import label_metrics, tune_thresholds
from ml.labels import LABELS
from ml.modeling.scorer import Scorer

scorer = Scorer.load("models/default")
OBJECTIVES = scorer.info.threshold_objective
train, validation = load_labelled(["data/split/train.jsonl"]), load_labelled(["data/split/validation.jsonl"])
tfidf = TfidfLogReg().fit(train["text"], label_matrix(train))
sets = {
    "validation": validation,
    "held_out_writers": load_labelled(expand_paths(["data/heldout_writers"])),
    "out_of_domain": load_labelled(expand_paths(["data/ood"])),
}
probabilities = {
    name: (scorer.predict_proba(d["text"], d["context"]), tfidf.predict_proba(d["text"])) for name, d in sets.items()
}
results = {}
for weight in (0.0, 0.25, 0.5, 0.75, 1.0):  # weight of the BERT
    mix = {name: weight * bert + (1 - weight) * ngram for name, (bert, ngram) in probabilities.items()}
    thresholds = tune_thresholds(label_matrix(validation), mix["validation"], OBJECTIVES)
    cutoffs = np.array([thresholds[label] for label in LABELS])
    held = label_metrics(label_matrix(sets["held_out_writers"]).astype(int), mix["held_out_writers"], thresholds)
    ood_y = label_matrix(sets["out_of_domain"]).astype(bool)
    ood_decided = mix["out_of_domain"] >= cutoffs
    results[f"bert_weight_{weight}"] = {
        "validation_macro_f1": label_metrics(label_matrix(validation).astype(int), mix["validation"], thresholds)[
            "macro_f1"
        ],
        "held_out_macro_f1": held["macro_f1"],
        "held_out_threatening_recall": held["threatening"]["recall"],
        "held_out_privacy_risk_recall": held["privacy_risk"]["recall"],
        **{
            f"ood_{label}_fpr": round(float(ood_decided[~ood_y[:, i], i].mean()), 4)
            for i, label in enumerate(LABELS)
            if label in ("threatening", "privacy_risk", "empathetic")
        },
        **{
            f"ood_{label}_f1": label_metrics(ood_y.astype(int), ood_decided.astype(float), dict.fromkeys(LABELS, 0.5))[
                label
            ]["f1"]
            for label in ("polite", "clear")
        },
    }
print(json.dumps({"model": scorer.info.version, "objectives": OBJECTIVES, "results": results}, indent=2))
