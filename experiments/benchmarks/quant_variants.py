"""Model-only replies/s of int8 variants of one model's ONNX graph on the same length batches, in
turns: the shipped dynamic int8 (per channel), int8 attention products too (MatMulConstBOnly off),
uint8 weights, per-tensor weights; prints the largest logit difference from the shipped file. The
fp32 export and the variants go to /tmp/qvar/<model name>/.

    python experiments/benchmarks/quant_variants.py models/default 5
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
from onnxruntime.quantization import QuantType, quantize_dynamic

from ml.data.records import load_labelled
from ml.modeling.backends import OnnxBackend
from ml.modeling.export import export_fp32
from ml.modeling.scorer import Scorer

model = Path(sys.argv[1])
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
out = Path("/tmp/qvar") / model.name
out.mkdir(parents=True, exist_ok=True)
fp32 = out / "model.onnx"
if not fp32.exists():
    export_fp32(model, fp32)
per_channel = {"weight_type": QuantType.QInt8, "per_channel": True}
variants = {
    "shipped": (model / "onnx" / "model.int8.onnx", None),
    "attn_int8": (out / "attn.onnx", {**per_channel, "extra_options": {"MatMulConstBOnly": False}}),
    "u8w": (out / "u8w.onnx", {"weight_type": QuantType.QUInt8, "per_channel": True}),
    "pertensor": (out / "pt.onnx", {"weight_type": QuantType.QInt8, "per_channel": False}),
}
for path, options in variants.values():
    if options is not None and not path.exists():
        quantize_dynamic(str(fp32), str(path), **options)

data = load_labelled(["data/split/test.jsonl", "data/split/validation.jsonl"])
texts, contexts = list(data["text"]), list(data["context"])
scorer = Scorer.load(model)
batches = [batch for _, batch in scorer.model_batches(texts, contexts)]
backends = {name: OnnxBackend(path, "int8", 2) for name, (path, _) in variants.items()}
reference = np.concatenate([backends["shipped"](b) for b in batches])
for name, backend in backends.items():
    logits = np.concatenate([backend(b) for b in batches])
    print(name, "max |logit difference|", float(np.abs(logits - reference).max()))
rates = {name: [] for name in backends}
for _ in range(rounds):
    for name, backend in backends.items():
        started = time.perf_counter()
        for batch in batches:
            backend(batch)
        rates[name].append(len(texts) / (time.perf_counter() - started))
for name, values in rates.items():
    print(name, [round(v) for v in values], "median", round(statistics.median(values)))
