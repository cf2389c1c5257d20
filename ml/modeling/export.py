"""Export a trained model directory for the CPU: the ONNX fp32 graph, its dynamically quantised int8
copy (`onnx/`), and the same graph for OpenVINO (`openvino/`, run in bfloat16 where the CPU has it).
Which one the CPU path runs is decided by measurement (`ml.evaluation.evaluate.runtime_gates`) and
recorded in labels.json by the train stage."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ml.modeling.backends import ONNX_FILES, onnx_path, openvino_path
from ml.modeling.encoding import MODEL_INPUTS, ReplyEncoder
from ml.modeling.model_info import ModelInfo


def export_fp32(model_dir: Path, target: Path | None = None) -> Path:
    """The model's forward pass as an ONNX graph with dynamic batch and sequence axes."""
    import torch
    from transformers import AutoModelForSequenceClassification

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


def export_openvino(fp32: Path, model_dir: Path) -> Path:
    """The fp32 ONNX graph in OpenVINO's format, weights stored as fp16 (half the size; lossless for
    weights saved in fp16, which is the default), for the bf16 path."""
    import openvino

    target = openvino_path(model_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    openvino.save_model(openvino.Core().read_model(str(fp32)), str(target), compress_to_fp16=True)
    return target


def export_onnx(model_dir: Path) -> tuple[Path, Path]:
    """onnx/model.onnx (fp32) and onnx/model.int8.onnx beside the weights."""
    fp32 = export_fp32(model_dir)
    return fp32, quantise_int8(fp32, onnx_path(model_dir, "int8"))


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
