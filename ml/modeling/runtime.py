"""Where and how models run: device choice, precision, CPU threads, time limits."""

from __future__ import annotations

import os
import time

import torch
from transformers import TrainerCallback


def best_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_precision(cpu_bf16: bool = False) -> dict[str, bool]:
    """TrainingArguments precision flags: bf16 where the GPU supports it, else fp16 on CUDA; on the CPU
    fp32, or bfloat16 autocast when asked."""
    if not torch.cuda.is_available():
        return {"use_cpu": True, "bf16": cpu_bf16}
    if torch.cuda.is_bf16_supported():
        return {"bf16": True}
    return {"fp16": True}


def configure_cpu_threads() -> None:
    """Use the cores we have (torch sometimes sees the host's, not the container's), unless the user chose."""
    if not torch.cuda.is_available() and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))


class TimeLimitCallback(TrainerCallback):
    """Stops training cleanly once `minutes` have passed (the schedule still decays by max_steps)."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60
        self.started = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if time.monotonic() - self.started > self.seconds:
            control.should_training_stop = True
        return control
