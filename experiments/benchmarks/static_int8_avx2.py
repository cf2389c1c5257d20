"""OpenVINO static int8 (NNCF post-training quantisation) against the shipped ONNX Runtime dynamic int8,
model only, on the Scorer's own length batches of the split's validation + test replies. Written for CPUs
without AMX or VNNI (AVX2 only), where the default runs ONNX int8 below 1,000 replies/s.

nncf is not a project dependency: quantise in a separate environment, compare in the project's.

    python -m venv /tmp/nncfenv && /tmp/nncfenv/bin/pip install nncf "openvino==<the project's version>"
    python experiments/benchmarks/static_int8_avx2.py batches /tmp/spd            # project venv
    /tmp/nncfenv/bin/python experiments/benchmarks/static_int8_avx2.py quantise /tmp/spd
    python experiments/benchmarks/static_int8_avx2.py compare /tmp/spd --rounds 5  # project venv
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time
from pathlib import Path

import numpy as np

MODEL = Path("models/default")


def batches(work: Path) -> None:
    from ml.data.records import load_labelled
    from ml.modeling.scorer import Scorer

    scorer = Scorer.load(MODEL, runtime="portable")
    evaluation = load_labelled(["data/split/test.jsonl", "data/split/validation.jsonl"])
    train = load_labelled(["data/split/train.jsonl"]).shuffle(seed=0).select(range(512))
    for name, data in (("batches", evaluation), ("calibration", train)):
        found = [batch for _, batch in scorer.model_batches(list(data["text"]), list(data["context"]))]
        (work / f"{name}.pkl").write_bytes(pickle.dumps(found))


def quantise(work: Path) -> None:
    import nncf
    import openvino

    model = openvino.Core().read_model(str(MODEL / "openvino" / "model.xml"))
    names = [i.get_any_name() for i in model.inputs]
    calibration = [{n: b[n] for n in names} for b in pickle.loads((work / "calibration.pkl").read_bytes())]
    for preset in ("performance", "mixed"):
        quantised = nncf.quantize(
            model,
            nncf.Dataset(calibration),
            model_type=nncf.ModelType.TRANSFORMER,
            preset=getattr(nncf.QuantizationPreset, preset.upper()),
            subset_size=len(calibration),
        )
        openvino.save_model(quantised, str(work / f"ov_int8_{preset}" / "model.xml"))


def compare(work: Path, rounds: int, threads: int) -> None:
    from ml.modeling.backends import OnnxBackend, OpenVinoBackend

    inputs = pickle.loads((work / "batches.pkl").read_bytes())
    replies = sum(b["input_ids"].shape[0] for b in inputs)
    backends = {
        "onnx int8 dynamic (shipped)": OnnxBackend(MODEL / "onnx" / "model.int8.onnx", "int8", threads),
        "openvino fp32": OpenVinoBackend(MODEL / "openvino" / "model.xml", "fp32", threads),
        "openvino int8 static, performance": OpenVinoBackend(
            work / "ov_int8_performance" / "model.xml", "fp32", threads
        ),
        "openvino int8 static, mixed": OpenVinoBackend(work / "ov_int8_mixed" / "model.xml", "fp32", threads),
    }
    logits = {name: np.concatenate([run(b) for b in inputs]) for name, run in backends.items()}
    rates: dict[str, list[float]] = {name: [] for name in backends}
    for _ in range(rounds):  # in turns, so the machine's drift falls on every variant alike
        for name, run in backends.items():
            started = time.perf_counter()
            for batch in inputs:
                run(batch)
            rates[name].append(replies / (time.perf_counter() - started))
    reference = logits["openvino fp32"]
    for name, values in rates.items():
        flips = 100 * ((logits[name] > 0) != (reference > 0)).mean()
        gap = np.abs(logits[name] - reference).max()
        print(
            f"{name:36s} {[round(v) for v in values]} median {statistics.median(values):.0f} replies/s; "
            f"against fp32: max logit gap {gap:.3f}, sign flips {flips:.3f}%"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=("batches", "quantise", "compare"))
    parser.add_argument("work", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    {
        "batches": lambda: batches(args.work),
        "quantise": lambda: quantise(args.work),
        "compare": lambda: compare(args.work, args.rounds, args.threads),
    }[args.step]()
