"""The train stage's last step (`ml.modeling.train.describe_model`: CPU exports and their gates, test
report, card) run again on the committed default's weights, without retraining them: what the train
stage would write now that the export also makes the OpenVINO graph and measures its bf16 gate.

    python experiments/openvino_bf16/describe_default.py
"""

from pathlib import Path

from ml.cli import DEFAULT_CONFIG, project_config
from ml.modeling.train import describe_model

settings = project_config(DEFAULT_CONFIG)
cpu_runtime, report = describe_model(Path(settings.train.output_dir), settings.train, settings.scoreboard)
print(
    {k: v for k, v in cpu_runtime.items() if not k.endswith("_gate")}, "bf16 gate", cpu_runtime["bf16_gate"]["passed"]
)
print("test macro-F1", report["macro_f1"])
