"""Is one ONNX session with 2 intra-op threads the best use of 2 cores for `Scorer.predict_proba`,
or do 1-thread session runs of different length batches on 2 Python threads do better (ONNX
Runtime releases the GIL while it runs)? Same model, same batches, identical probabilities
checked; 5 alternating rounds over the split's validation + test replies.

    python experiments/benchmarks/batch_parallel.py models/default
"""

from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ml.data.records import load_labelled
from ml.labels import LABELS
from ml.modeling.backends import OnnxBackend, onnx_path
from ml.modeling.scorer import Scorer, length_batches

model = Path(sys.argv[1] if len(sys.argv) > 1 else "models/default")
data = load_labelled(["data/split/test.jsonl", "data/split/validation.jsonl"])
texts, contexts = list(data["text"]), list(data["context"])
two_threads = Scorer.load(model)
one_thread = Scorer.load(model, threads=1)
second_session = OnnxBackend(onnx_path(model, one_thread.backend.precision), one_thread.backend.precision, 1)


def batches_on_threads(backends: list) -> np.ndarray:
    """`Scorer.predict_proba`'s work, with its length batches spread over 2 Python threads."""
    encodings = one_thread.encoder.encode(texts, contexts)
    batches = length_batches([len(e.ids) for e in encodings], one_thread.batch_size)
    logits = np.zeros((len(texts), len(one_thread.info.labels)), dtype=np.float32)

    def run(k: int) -> None:
        logits[batches[k]] = backends[k % len(backends)](one_thread.encoder.pad([encodings[i] for i in batches[k]]))

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(run, range(len(batches))))
    return logits


ways = {
    "one session, 2 intra-op threads (today)": lambda: two_threads.predict_proba(texts, contexts),
    "one session, 1 thread, sequential": lambda: one_thread.predict_proba(texts, contexts),
    "one 1-thread session, batches on 2 threads": lambda: batches_on_threads([one_thread.backend]),
    "two 1-thread sessions, batches on 2 threads": lambda: batches_on_threads([one_thread.backend, second_session]),
}
order = [one_thread.info.labels.index(label) for label in LABELS]
for backends in ([one_thread.backend], [one_thread.backend, second_session]):
    probabilities = (1 / (1 + np.exp(-batches_on_threads(backends))))[:, order]
    print(
        "largest difference to predict_proba:",
        float(np.abs(probabilities - two_threads.predict_proba(texts, contexts)).max()),
    )
rates: dict[str, list[float]] = {name: [] for name in ways}
for _ in range(5):
    for name, way in ways.items():
        started = time.perf_counter()
        way()
        rates[name].append(len(texts) / (time.perf_counter() - started))
for name, values in rates.items():
    print(f"{name}: {[round(v) for v in values]} median {round(statistics.median(values))} replies/s")
