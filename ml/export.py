"""Export a trained model directory to ONNX (fp32) and dynamically quantised int8, and decide with
measurements which one the CPU scoring path uses by default.

The quality gate: int8 becomes the CPU default only if, against the fp32 model on the same texts,
it keeps >= 99% of decisions identical and loses <= 0.5 macro-F1 points on each evaluation set
given; otherwise the default stays ONNX fp32 and labels.json says why.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from ml.backends import ONNX_FILES, onnx_path
from ml.encoding import MODEL_INPUTS, ReplyEncoder

MIN_DECISION_AGREEMENT = 0.99
MAX_MACRO_F1_LOSS = 0.005


def export_fp32(model_dir: Path, target: Path | None = None) -> Path:
    """The model's forward pass as an ONNX graph with dynamic batch and sequence axes."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from ml.scorer import ModelInfo

    info = ModelInfo.read(model_dir)
    # eager attention: the SDPA path's mask helpers branch on shapes, which a trace would freeze
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    encoder = ReplyEncoder.from_pretrained(model_dir, info.max_length, info.use_context)
    sample = encoder.pad(encoder.encode(["您好，请问有什么可以帮您？", "好的"], ["我想问一下还款", ""]))
    target = target or onnx_path(model_dir, "fp32")
    target.parent.mkdir(parents=True, exist_ok=True)
    axes = {name: {0: "batch", 1: "sequence"} for name in MODEL_INPUTS}
    with torch.no_grad():
        torch.onnx.export(
            model,
            tuple(torch.from_numpy(sample[name]) for name in MODEL_INPUTS),
            str(target),
            input_names=list(MODEL_INPUTS),
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return target


def quantise_int8(fp32: Path, target: Path) -> Path:
    """Dynamic int8 quantisation of the fp32 graph's matrix products, per output channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=True)
    return target


def quality_gate(model_dir: Path, evaluation_files: dict[str, Path]) -> dict[str, Any]:
    """fp32 vs int8 ONNX on each evaluation set: share of identical decisions, macro-F1 of both."""
    from ml.data import label_matrix, load_labelled
    from ml.metrics import label_metrics
    from ml.scorer import Scorer

    fp32 = Scorer.load(model_dir, runtime="onnx", precision="fp32")
    int8 = Scorer.load(model_dir, runtime="onnx", precision="int8")
    report: dict[str, Any] = {"sets": {}}
    for name, path in evaluation_files.items():
        data = load_labelled([path])
        truth = label_matrix(data).astype(int)
        p32 = fp32.predict_proba(data["text"], data["context"])
        p8 = int8.predict_proba(data["text"], data["context"])
        report["sets"][name] = {
            "records": len(data),
            "decisions_identical": round(float(np.mean((p32 >= fp32.thresholds) == (p8 >= int8.thresholds))), 5),
            "max_probability_difference": round(float(np.abs(p32 - p8).max()), 4),
            "macro_f1_fp32": label_metrics(truth, p32, fp32.info.thresholds)["macro_f1"],
            "macro_f1_int8": label_metrics(truth, p8, int8.info.thresholds)["macro_f1"],
        }
    sets = report["sets"].values()
    report["passed"] = all(
        s["decisions_identical"] >= MIN_DECISION_AGREEMENT
        and s["macro_f1_fp32"] - s["macro_f1_int8"] <= MAX_MACRO_F1_LOSS
        for s in sets
    )
    report["rule"] = (
        f">= {MIN_DECISION_AGREEMENT:.0%} identical decisions and <= {MAX_MACRO_F1_LOSS * 100} macro-F1 points lost"
    )
    return report


def export_model(model_dir: Path, evaluation_files: dict[str, Path]) -> dict[str, Any]:
    """Write onnx/model.onnx and onnx/model.int8.onnx, run the quality gate, and record in
    labels.json the CPU runtime and precision the Scorer uses by default."""
    from ml.scorer import ModelInfo

    fp32 = export_fp32(model_dir)
    quantise_int8(fp32, onnx_path(model_dir, "int8"))
    gate = quality_gate(model_dir, evaluation_files)
    info = ModelInfo.read(model_dir)
    info.cpu_runtime = {"runtime": "onnx", "precision": "int8" if gate["passed"] else "fp32", "int8_gate": gate}
    info.write(model_dir)
    if gate["passed"]:  # the directory ships what it runs; fp32 is rebuilt into a cache on request
        fp32.unlink()
    return info.cpu_runtime


def ensure_onnx(model_dir: Path, precision: str) -> Path:
    """The ONNX file for `precision`: the one shipped in the model directory, else one exported into
    the user's cache (REPLYQA_CACHE, default ~/.cache/replyqa), keyed by the weights' hash, so the
    model directory itself never changes."""
    shipped = onnx_path(model_dir, precision)
    if shipped.exists():
        return shipped
    weights = (model_dir / "model.safetensors").read_bytes()
    cache = Path(os.environ.get("REPLYQA_CACHE", Path.home() / ".cache" / "replyqa"))
    folder = cache / "onnx" / hashlib.sha256(weights).hexdigest()[:16]
    cached = folder / ONNX_FILES[precision]
    if not cached.exists():
        fp32 = folder / ONNX_FILES["fp32"]
        if not fp32.exists():
            export_fp32(model_dir, fp32)
        if precision == "int8":
            quantise_int8(fp32, cached)
    return cached
