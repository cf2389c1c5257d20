"""Analysis after the stage-1 verdict (experiments/data_v8/README.md): on the same split, what do the v8
records add to the TF-IDF baseline on each held-out writer and label? The baseline is fitted on the
split's training records with and without v8 (cut-offs tuned on the matching validation records, the
scoreboard's objectives) and scored on the held-out writers with the scoreboard's exclusions.

Then the mixture question, post hoc: v8 keeps all its threats but only as many of its risk-free
replies as give it the threat share of v1-v6 ("v8 at the old mixture"), against the same number of
v8 records drawn at random ("v8 same size at random", its own mixture), four draws each.

    python experiments/data_v8/baseline_check.py    # seconds; writes baseline_check.json
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from datasets import concatenate_datasets

from ml.config import load_config
from ml.data.records import label_matrix, load_labelled, writer_slice
from ml.evaluation.baselines import TfidfLogReg
from ml.evaluation.metrics import label_metrics, tune_thresholds
from ml.evaluation.scoreboard import shared_with_training
from ml.labels import LABELS

HERE = Path(__file__).parent


def from_v8(record_id: str) -> bool:
    return writer_slice(record_id).startswith("v8")


def without_v8(dataset):
    return dataset.select([i for i, record_id in enumerate(dataset["id"]) if not from_v8(record_id)])


def v8_rows(dataset, seed: int, old_mixture: bool) -> list[int]:
    """All non-v8 rows plus a draw of v8 rows: at the old mixture, every v8 threat and privacy risk and
    enough risk-free v8 replies for v1-v6's threat share; otherwise as many v8 rows at random."""
    is_v8 = np.array([from_v8(record_id) for record_id in dataset["id"]])
    threat, privacy = np.array(dataset["threatening"]) == 1, np.array(dataset["privacy_risk"]) == 1
    old_share = threat[~is_v8].mean()
    v8_size = round(threat[is_v8].sum() / old_share)
    risky = np.flatnonzero(is_v8 & (threat | privacy)).tolist()
    calm = np.flatnonzero(is_v8 & ~threat & ~privacy).tolist()
    rng = random.Random(seed)
    drawn = risky + rng.sample(calm, v8_size - len(risky)) if old_mixture else rng.sample(risky + calm, v8_size)
    return sorted(np.flatnonzero(~is_v8).tolist() + drawn)


def scores(train, validation, sets: dict[Path, object], objectives: dict[str, str]) -> dict[str, dict]:
    model = TfidfLogReg().fit(train["text"], label_matrix(train))
    thresholds = tune_thresholds(label_matrix(validation), model.predict_proba(validation["text"]), objectives)
    result = {}
    for path, held in sets.items():
        metrics = label_metrics(label_matrix(held).astype(int), model.predict_proba(held["text"]), thresholds)
        result[path.stem] = {"macro_f1": metrics["macro_f1"]} | {label: metrics[label]["f1"] for label in LABELS}
    return result


def main() -> None:
    settings = load_config(HERE / "config_seed13.yaml")
    train_file = settings.train.train_file
    train, validation = load_labelled([train_file]), load_labelled([settings.train.validation_file])
    sets = {f: load_labelled([str(f)]) for f in sorted(Path(settings.scoreboard.held_out).glob("*.jsonl"))}
    exclude = shared_with_training(train_file, sets)
    sets = {f: d.select([i for i, r in enumerate(d["id"]) if r not in exclude]) for f, d in sets.items()}
    sets[Path("pooled")] = concatenate_datasets(list(sets.values()))  # the scoreboard's headline
    objectives = settings.teacher.threshold_objective
    result = {
        "records": {"with_v8": len(train), "without_v8": len(without_v8(train))},
        "with_v8": scores(train, validation, sets, objectives),
        "without_v8": scores(without_v8(train), without_v8(validation), sets, objectives),
    }
    for old_mixture in (True, False):
        runs = []
        for seed in range(4):
            part, tune = (
                train.select(v8_rows(train, seed, old_mixture)),
                validation.select(v8_rows(validation, seed, old_mixture)),
            )
            runs.append(scores(part, tune, sets, objectives))
        name = "v8_at_old_mixture" if old_mixture else "v8_same_size_at_random"
        result[name] = {
            writer: {key: round(float(np.mean([run[writer][key] for run in runs])), 4) for key in runs[0][writer]}
            for writer in runs[0]
        }
        result["records"][name] = len(part)  # every draw has the same size
    (HERE / "baseline_check.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for name in ("without_v8", "with_v8", "v8_at_old_mixture", "v8_same_size_at_random"):
        print(name, {writer: row["macro_f1"] for writer, row in result[name].items()})


if __name__ == "__main__":
    main()
