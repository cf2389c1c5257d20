"""Where the model's forward pass runs: PyTorch (training, GPU), ONNX Runtime (the CPU default), or
OpenVINO in bfloat16 (on CPUs with AMX bf16, when the model passed its bf16 gate).

A backend takes one padded batch of int64 arrays (input_ids, attention_mask, token_type_ids) and
returns logits as float32 numpy, in the model's own label order; its `pad_multiple` says to what
multiple of tokens the Scorer rounds a batch's width. The ONNX and OpenVINO backends
import neither torch nor transformers, which keeps a CPU scoring process quick to start.
"""

from __future__ import annotations

import os
import threading
from functools import cache
from pathlib import Path

import numpy as np

ONNX_DIR = "onnx"
ONNX_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
OPENVINO_FILE = "openvino/model.xml"  # the fp32 graph in OpenVINO's format, weights stored as fp16


def cpu_threads() -> int:
    """REPLYQA_THREADS, else OMP_NUM_THREADS, else the cores this process may use."""
    for name in ("REPLYQA_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(name, "").isdigit() and int(os.environ[name]) > 0:
            return int(os.environ[name])
    return max(1, len(os.sched_getaffinity(0)))


def gpu_present() -> bool:
    """An NVIDIA GPU is visible (checked without importing torch, which takes seconds)."""
    return Path("/proc/driver/nvidia/gpus").is_dir() and os.environ.get("CUDA_VISIBLE_DEVICES") != ""


def onnx_path(model_dir: Path, precision: str) -> Path:
    return model_dir / ONNX_DIR / ONNX_FILES[precision]


def openvino_path(model_dir: Path) -> Path:
    return model_dir / OPENVINO_FILE


@cache
def cpu_has_amx_bf16() -> bool:
    """OpenVINO is installed and the CPU has AMX bf16 tiles (Intel Xeon since Sapphire Rapids): where
    OpenVINO bf16 was measured faster than ONNX Runtime int8 (experiments/openvino_bf16/). CPUs with
    AVX512-BF16 alone have not been measured, so they keep ONNX Runtime unless asked otherwise."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


class OnnxBackend:
    name = "onnx"
    pad_multiple = 1  # batches padded to their longest member only

    def __init__(self, path: Path, precision: str, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads steal a shared machine's cores from the other workers.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for unreadable graphs
            raise ValueError(f"{path.name} is not a usable ONNX model: {error}") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.precision = precision
        self.device = "cpu"

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, {name: batch[name] for name in self.inputs})[0]


class OpenVinoBackend:
    """OpenVINO on the CPU: "bf16" computes in bfloat16 where the CPU can (1.3-1.7x ONNX Runtime int8
    on AMX CPUs), "fp32" in float32. `precision` reports what the CPU really runs."""

    name = "openvino"
    # OpenVINO prepares each new input shape on its first call (about 2x slower than a repeat): widths
    # rounded up to 16 tokens leave ~10 widths instead of ~160, so a fresh server or job meets few new
    # shapes (experiments/benchmarks/README.md). ONNX Runtime has no such cost and gains nothing.
    pad_multiple = 16

    def __init__(self, path: Path, precision: str, threads: int | None = None) -> None:
        import openvino

        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads or cpu_threads(),
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "ENABLE_CPU_PINNING": False,  # pinned threads of several workers would fight over the same cores
        }
        try:
            self.model = openvino.Core().compile_model(str(path), "CPU", config)
        except RuntimeError as error:
            raise ValueError(f"{path.name} is not a usable OpenVINO model: {str(error).splitlines()[0]}") from None
        self.inputs = [i.get_any_name() for i in self.model.inputs]
        computes_in = self.model.get_property("INFERENCE_PRECISION_HINT")
        self.precision = "bf16" if computes_in == openvino.Type.bf16 else "fp32"
        self.device = "cpu"
        self._requests = threading.local()  # an infer request serves one call at a time

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.model.create_infer_request()
        return request.infer({name: batch[name] for name in self.inputs})[0]


class TorchBackend:
    name = "torch"
    pad_multiple = 1

    def __init__(self, model, device=None, threads: int | None = None) -> None:
        import torch

        from ml.modeling.runtime import best_device, configure_cpu_threads

        configure_cpu_threads()
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.device = torch.device(device) if device else best_device()
        self.model = model.to(self.device).eval()
        self.precision = "fp32"

    @classmethod
    def from_pretrained(cls, location, device=None, threads: int | None = None) -> TorchBackend:
        import torch
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(location, dtype=torch.float32)
        return cls(model, device, threads)

    @property
    def config(self):
        return self.model.config

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            tensors = {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}
            return self.model(**tensors).logits.float().cpu().numpy()
