"""Replies/s of two or more models through `Scorer.predict_proba`, measured in turns on the same
1,976 validation + test replies, one length-bucketed call per round.

    python experiments/student3/speed.py models/default experiments/student3/model
    python experiments/student3/speed.py --runtime portable --rounds 10 MODEL_A MODEL_B   # ONNX int8 on any CPU
"""

from __future__ import annotations

import argparse
import statistics
import time

from ml.data.records import load_labelled
from ml.modeling.scorer import Scorer

parser = argparse.ArgumentParser()
parser.add_argument("models", nargs="+")
parser.add_argument("--runtime", default="auto", help="Scorer.load's runtime (auto: the CPU's default)")
parser.add_argument("--rounds", type=int, default=5)
args = parser.parse_args()

data = load_labelled(["data/split/test.jsonl", "data/split/validation.jsonl"])
texts, contexts = list(data["text"]), list(data["context"])
models = {path: Scorer.load(path, runtime=args.runtime) for path in args.models}
for scorer in models.values():  # warm-up
    scorer.predict_proba(texts[:64], contexts[:64])
rates = {path: [] for path in models}
for _ in range(args.rounds):
    for path, scorer in models.items():
        started = time.perf_counter()
        scorer.predict_proba(texts, contexts)
        rates[path].append(len(texts) / (time.perf_counter() - started))
for path, values in rates.items():
    print(path, models[path].runtime, [round(v) for v in values], "median", round(statistics.median(values)))
