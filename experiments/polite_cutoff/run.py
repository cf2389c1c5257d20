"""Polite cut-off by F1 against balanced accuracy, both chosen on each model's own validation split,
measured on the held-out writers, data/ood_fresh (judged) and data/ood (reported). See README.md."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from ml.data.records import expand_paths, label_matrix, load_labelled
from ml.evaluation.metrics import label_metrics, tune_threshold
from ml.evaluation.scoreboard import shared_with_training
from ml.labels import LABELS
from ml.modeling.scorer import Scorer

HERE = Path(__file__).parent
POLITE = LABELS.index("polite")
MODELS = {  # name: (model directory, the split it was trained and tuned with)
    "default 20656116bf1c": ("models/default", "data/split"),
    **{
        f"{name} seed {seed}": (f"experiments/{name}/teacher_seed{seed}", split)
        for name, split in [
            ("courtesy_copies", "data/split"),
            ("data_v8", "experiments/data_v8/split"),
            ("v8_courtesy", "experiments/v8_courtesy/split"),
            ("continued_pretraining", "data/split"),
        ]
        for seed in (13, 14)
    },
}
# the four held-out writers of the time (data/v8 joined them after this ran; several of these models trained on it)
SETS = {"held_out_writers": "data/heldout_writers", "ood_fresh": "data/ood_fresh", "ood": "data/ood"}


def probabilities(scorer: Scorer, dataset) -> np.ndarray:
    return scorer.predict_proba(list(dataset["text"]), list(dataset["context"]))


def measure(model_dir: str, split: str) -> dict:
    scorer = Scorer.load(model_dir, runtime="torch")
    validation = load_labelled([f"{split}/validation.jsonl"])
    truth = label_matrix(validation).astype(int)[:, POLITE]
    p_validation = probabilities(scorer, validation)[:, POLITE]
    cutoffs = {objective: tune_threshold(truth, p_validation, objective) for objective in ("f1", "balanced")}
    result = {"stored_cutoff": scorer.info.thresholds["polite"], "cutoffs": cutoffs}
    held_out_files = {path: load_labelled([path]) for path in expand_paths([SETS["held_out_writers"]])}
    exclude = shared_with_training(f"{split}/train.jsonl", held_out_files)
    for name, where in SETS.items():
        dataset = load_labelled(expand_paths([where]))
        dataset = dataset.select([i for i, record_id in enumerate(dataset["id"]) if record_id not in exclude])
        y, p = label_matrix(dataset).astype(int), probabilities(scorer, dataset)
        result[name] = {"records": len(dataset)}
        for objective, cutoff in cutoffs.items():
            thresholds = {**scorer.info.thresholds, "polite": cutoff}
            result[name][objective] = {
                "polite_f1": round(float(f1_score(y[:, POLITE], p[:, POLITE] >= cutoff)), 4),
                "macro_f1": label_metrics(y, p, thresholds)["macro_f1"],
            }
    return result


def main() -> None:
    results = {}
    for name, (model_dir, split) in MODELS.items():
        results[name] = measure(model_dir, split)
        print(name, json.dumps(results[name]), flush=True)
    (HERE / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
