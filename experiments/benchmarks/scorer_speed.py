"""In-process scoring speed of one model through each runtime, and through a plain Hugging Face
pipeline, on the same typical replies (test split: reply + context). Runtimes are measured in
turns (A B C A B C ...) so drift on a shared machine hits all alike, the PyTorch ones in a second
set of turns after the others; medians are reported.

    python experiments/benchmarks/scorer_speed.py [MODEL] [--rounds 3] > experiments/benchmarks/scorer_speed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from ml.data.records import load_labelled
from ml.modeling.scorer import Scorer


def replies_per_second(predict, texts, contexts, batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        predict(texts[start : start + batch], contexts[start : start + batch])
    return len(texts) / (time.perf_counter() - started)


def latencies_ms(predict, texts, contexts) -> list[float]:
    times = []
    for text, context in zip(texts, contexts):
        started = time.perf_counter()
        predict([text], [context])
        times.append((time.perf_counter() - started) * 1000)
    return times


def pipeline_predict(model: str):
    from transformers import pipeline

    classify = pipeline("text-classification", model=model, top_k=None, function_to_apply="sigmoid", device=-1)

    def predict(texts, contexts):
        return classify([{"text": c, "text_pair": t} if c else t for t, c in zip(texts, contexts)], batch_size=32)

    return predict


def cpu_name() -> str:
    from ml.modeling.backends import cpu_has_amx_bf16

    names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
    return f"{names[0] if names else 'unknown'}, {len(names)} vCPU, AMX bf16: {cpu_has_amx_bf16()}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default="models/default")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replies", type=int, default=2000)
    args = parser.parse_args()
    data = load_labelled(["data/split/test.jsonl", "data/split/validation.jsonl"])
    texts, contexts = list(data["text"])[: args.replies], list(data["context"])[: args.replies]
    scorers = [
        Scorer.load(args.model, runtime="onnx", precision="fp32"),
        Scorer.load(args.model, runtime="onnx", precision="int8"),
        Scorer.load(args.model, runtime="openvino", precision="bf16"),  # openvino-fp32 on a CPU without bf16
        Scorer.load(args.model, runtime="torch"),
    ]
    systems = {s.runtime: s.predict_proba for s in scorers} | {"hf-pipeline (torch fp32)": pipeline_predict(args.model)}
    for predict in systems.values():  # warm-up
        predict(texts[:64], contexts[:64])
    # PyTorch's idle threads slow the other runtimes when they take turns in one process (seen:
    # OpenVINO 980 against 1,115 replies/s), so the torch systems take their turns after the others.
    groups = [[n for n in systems if "torch" not in n], [n for n in systems if "torch" in n]]
    batch32 = {name: [] for name in systems}
    for group in groups:
        for _ in range(args.rounds):
            for name in group:
                batch32[name].append(replies_per_second(systems[name], texts, contexts, 32))
    # The Scorer's own batching: every reply in one call, sorted by length, scored 32 at a time
    # (what `replyqa score` does per chunk); the loop above hands it unsorted groups of 32.
    bucketed = {name: [] for name in systems if not name.startswith("hf-")}
    for group in groups:
        for _ in range(args.rounds):
            for name in (n for n in group if n in bucketed):
                bucketed[name].append(replies_per_second(systems[name], texts, contexts, len(texts)))
    single = {name: latencies_ms(predict, texts[:300], contexts[:300]) for name, predict in systems.items()}
    tokens = Scorer.load(args.model).encoder.encode(texts, contexts)
    report = {
        "model": args.model,
        "replies": len(texts),
        "median_tokens_per_reply": float(np.median([len(e.ids) for e in tokens])),
        "rounds": args.rounds,
        "batch32_replies_per_s": {k: round(statistics.median(v), 1) for k, v in batch32.items()},
        "batch32_all_rounds": {k: [round(x, 1) for x in v] for k, v in batch32.items()},
        "one_call_length_bucketed_replies_per_s": {k: round(statistics.median(v), 1) for k, v in bucketed.items()},
        "batch1_latency_ms": {
            k: {"p50": round(float(np.percentile(v, 50)), 2), "p99": round(float(np.percentile(v, 99)), 2)}
            for k, v in single.items()
        },
    }
    default = Scorer.load(args.model).runtime
    report["default_runtime"] = default  # what `Scorer.load` picks on this CPU
    report["cpu"] = cpu_name()
    pipe = report["batch32_replies_per_s"]["hf-pipeline (torch fp32)"]
    report["default_vs_pipeline"] = round(report["batch32_replies_per_s"][default] / pipe, 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
