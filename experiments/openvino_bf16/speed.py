"""Replies/s of one model through `Scorer.predict_proba` with the portable runtime (ONNX Runtime as
recorded, int8) and with what `Scorer.load` picks on this CPU (OpenVINO bf16 on AMX CPUs), in turns
on the same 2,280 validation + test replies, one length-bucketed call per round.

    python experiments/openvino_bf16/speed.py [MODEL] [ROUNDS] > experiments/openvino_bf16/speed.txt
"""

from __future__ import annotations

import statistics
import sys
import time

from ml.data.records import load_labelled
from ml.modeling.scorer import Scorer

model = sys.argv[1] if len(sys.argv) > 1 else "models/default"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
data = load_labelled(["data/split/test.jsonl", "data/split/validation.jsonl"])
texts, contexts = list(data["text"]), list(data["context"])
scorers = [Scorer.load(model, runtime="portable"), Scorer.load(model)]
for scorer in scorers:  # warm-up
    scorer.predict_proba(texts[:64], contexts[:64])
rates: dict[str, list[float]] = {scorer.runtime: [] for scorer in scorers}
for _ in range(rounds):
    for scorer in scorers:
        started = time.perf_counter()
        scorer.predict_proba(texts, contexts)
        rates[scorer.runtime].append(len(texts) / (time.perf_counter() - started))
for name, values in rates.items():
    print(name, [round(v) for v in values], "median", round(statistics.median(values), 1))
portable, chosen = rates.values()
print("ratio of medians", round(statistics.median(chosen) / statistics.median(portable), 2))
print("per-round ratios", [round(b / a, 2) for a, b in zip(portable, chosen)])
