"""Replies/s of two or more models through `Scorer.predict_proba` (default runtime), measured in
turns on the same 1,976 validation + test replies, one length-bucketed call per round.

    python experiments/student3/speed.py models/default experiments/student3/model
"""

from __future__ import annotations

import statistics
import sys
import time

from ml.data.records import load_labelled
from ml.modeling.scorer import Scorer

data = load_labelled(["data/split/test.jsonl", "data/split/validation.jsonl"])
texts, contexts = list(data["text"]), list(data["context"])
models = {path: Scorer.load(path) for path in sys.argv[1:]}
for scorer in models.values():  # warm-up
    scorer.predict_proba(texts[:64], contexts[:64])
rates = {path: [] for path in models}
for _ in range(5):
    for path, scorer in models.items():
        started = time.perf_counter()
        scorer.predict_proba(texts, contexts)
        rates[path].append(len(texts) / (time.perf_counter() - started))
for path, values in rates.items():
    print(path, models[path].runtime, [round(v) for v in values], "median", round(statistics.median(values)))
