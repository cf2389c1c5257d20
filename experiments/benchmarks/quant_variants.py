"""Model-only replies/s of int8 variants of one model's ONNX graph on the same length batches,
in turns: the shipped dynamic int8 (per channel), int8 attention products too
(MatMulConstBOnly False), uint8 weights, per-tensor weights; prints the largest logit difference
from the shipped file. The fp32 export and the variants go to /tmp/qvar/<model name>/.

    python experiments/benchmarks/quant_variants.py models/default 5
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np
from onnxruntime.quantization import QuantType, quantize_dynamic

from ml.modeling.backends import OnnxBackend
from ml.modeling.export import export_fp32

model = Path(sys.argv[1])
out = Path("/tmp/qvar") / model.name
out.mkdir(parents=True, exist_ok=True)
fp32 = out / "model.onnx"
if not fp32.exists():
    export_fp32(model, fp32)
variants = {
    "shipped": (model / "onnx/model.int8.onnx", None),
    "attn_int8": (
        out / "attn.onnx",
        dict(weight_type=QuantType.QInt8, per_channel=True, extra_options={"MatMulConstBOnly": False}),
    ),
    "u8w": (out / "u8w.onnx", dict(weight_type=QuantType.QUInt8, per_channel=True)),
    "pertensor": (out / "pt.onnx", dict(weight_type=QuantType.QInt8, per_channel=False)),
}
for name, (path, kw) in variants.items():
    if kw is not None and not path.exists():
        quantize_dynamic(str(fp32), str(path), **kw)
from ml.data.records import load_labelled
from ml.modeling.scorer import Scorer, length_batches

data = load_labelled(["data/split/test.jsonl", "data/split/validation.jsonl"])
texts, contexts = list(data["text"]), list(data["context"])
s = Scorer.load(model)
enc = s.encoder.encode(texts, [(c or "")[: s.context_chars] for c in contexts])
pads = [s.encoder.pad([enc[i] for i in b]) for b in length_batches([len(e.ids) for e in enc], 32)]
backs = {n: OnnxBackend(p, "int8", 2) for n, (p, _) in variants.items()}
ref = np.concatenate([backs["shipped"](p) for p in pads])
th = s.thresholds
for n, b in backs.items():
    o = np.concatenate([b(p) for p in pads])
    print(n, "max|dlogit|", float(np.abs(o - ref).max()))
rates = {n: [] for n in backs}
for r in range(int(sys.argv[2]) if len(sys.argv) > 2 else 5):
    for n, b in backs.items():
        t = time.perf_counter()
        for p in pads:
            b(p)
        rates[n].append(len(texts) / (time.perf_counter() - t))
for n, v in rates.items():
    print(n, [round(x) for x in v], "median", round(statistics.median(v)))
