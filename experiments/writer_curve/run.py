"""Experiment (README.md here): does the held-out-writer score still rise with the number of training
writers? The TF-IDF baseline (seconds per fit) is refitted on the train-split records of k randomly
drawn training slices (one brief and writer each), its cut-offs tuned on those slices' validation
records the way the scoreboard tunes them, and scored on the held-out writers; k = 3 ... 24, several
draws each. A second curve holds the number of training records fixed, so that more writers does not
also mean more records.

    python experiments/writer_curve/run.py    # a few minutes on 2 cores; writes results.json
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from datasets import concatenate_datasets
from joblib import Parallel, delayed

from ml.config import load_config
from ml.data.records import label_matrix, load_labelled, writer_slice
from ml.evaluation.baselines import TfidfLogReg
from ml.evaluation.metrics import label_metrics, tune_thresholds
from ml.evaluation.scoreboard import shared_with_training

HERE = Path(__file__).parent
WRITER_COUNTS = (3, 6, 12, 18, 24)
DRAWS = 4
FIXED_RECORDS = 2000  # the second curve: this many training records, whatever the number of writers
VOLUME_RECORDS = (2000, 4000, 6000)  # the third: all 24 writers, this many of their records


def fit_and_score(train, validation, held_out, objectives, slices: list[str], records: int | None, seed: int) -> float:
    chosen = set(slices)
    rows = [i for i, record_id in enumerate(train["id"]) if writer_slice(record_id) in chosen]
    if records is not None:
        rows = random.Random(seed).sample(rows, records)
    part = train.select(rows)
    tune = validation.select([i for i, record_id in enumerate(validation["id"]) if writer_slice(record_id) in chosen])
    model = TfidfLogReg().fit(part["text"], label_matrix(part))
    thresholds = tune_thresholds(label_matrix(tune), model.predict_proba(tune["text"]), objectives)
    y = label_matrix(held_out).astype(int)
    return label_metrics(y, model.predict_proba(held_out["text"]), thresholds)["macro_f1"]


def main() -> None:
    settings = load_config(Path("configs/default.yaml"))
    train_file, validation_file = settings.train.train_file, settings.train.validation_file
    train, validation = load_labelled([train_file]), load_labelled([validation_file])
    files = sorted(Path(settings.scoreboard.held_out).glob("*.jsonl"))
    sets = {f: load_labelled([str(f)]) for f in files}
    exclude = shared_with_training(train_file, sets)
    held_out = concatenate_datasets(list(sets.values()))
    held_out = held_out.select([i for i, record_id in enumerate(held_out["id"]) if record_id not in exclude])
    writers = sorted({writer_slice(record_id) for record_id in train["id"]})
    jobs = []
    for count in WRITER_COUNTS:
        for draw in range(DRAWS if count < len(writers) else 1):
            slices = random.Random(1000 * count + draw).sample(writers, count)
            jobs.append(("all records", count, draw, slices, None))
            chosen = set(slices)
            if sum(writer_slice(record_id) in chosen for record_id in train["id"]) >= FIXED_RECORDS:
                jobs.append((f"{FIXED_RECORDS} records", count, draw, slices, FIXED_RECORDS))
    for records in VOLUME_RECORDS:  # added after the first two curves: all writers, fewer records
        for draw in range(DRAWS):
            jobs.append(("all 24 writers", len(writers), draw, writers, records))
    scores = Parallel(n_jobs=2)(
        delayed(fit_and_score)(
            train, validation, held_out, settings.train.threshold_objective, slices, records, 7 * count + draw
        )
        for _, count, draw, slices, records in jobs
    )
    results = [
        {
            "curve": curve,
            "writers": count,
            "draw": draw,
            "records": records,
            "slices": slices,
            "held_out_macro_f1": round(score, 4),
        }
        for (curve, count, draw, slices, records), score in zip(jobs, scores)
    ]
    (HERE / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    for curve in sorted({r["curve"] for r in results}):
        for count in WRITER_COUNTS:
            values = [r["held_out_macro_f1"] for r in results if r["curve"] == curve and r["writers"] == count]
            if values and curve != "all 24 writers":
                print(f"{curve:>14} | {count:2d} writers | mean {np.mean(values):.4f} | draws {values}")
    for records, values in volume_curve(results).items():
        print(f"{'all 24 writers':>14} | {records:5d} records | mean {np.mean(values):.4f} | draws {values}")


def volume_curve(results: list[dict]) -> dict[int, list[float]]:
    curve: dict[int, list[float]] = {}
    for r in results:
        if r["curve"] == "all 24 writers":
            curve.setdefault(r["records"], []).append(r["held_out_macro_f1"])
    return curve


if __name__ == "__main__":
    main()
