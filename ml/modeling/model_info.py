"""What a model directory holds beside its weights (labels.json: label order, thresholds, identity,
inputs, metrics, CPU runtime), and where a model comes from (a directory, MLflow, or the hub)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ml.labels import LABELS, is_share_per_label

MODEL_INFO_FILE = "labels.json"
TRAINING_IDS_FILE = "training_ids.json"  # the record ids a model was trained and tuned on


class ModelLoadError(ValueError):
    """A model directory or checkpoint that cannot be used as it is (the message says why, in one line)."""


@dataclass
class ModelInfo:
    """What labels.json holds beside the weights: label order, thresholds, identity, inputs, metrics."""

    labels: list[str] = field(default_factory=lambda: list(LABELS))
    thresholds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LABELS, 0.5))
    name: str = "replyqa"
    version: str = "unversioned"
    use_context: bool = True
    max_length: int = 160
    threshold_objective: dict[str, str] = field(default_factory=dict)
    # 5th-95th percentile of each cut-off over bootstrap resamples of validation (written by `replyqa train`)
    threshold_spread: dict[str, list[float]] = field(default_factory=dict)
    test_metrics: dict[str, Any] = field(default_factory=dict)
    cpu_runtime: dict[str, Any] = field(
        default_factory=dict
    )  # written by ml/modeling/export.py: runtime, precision, gate
    card_examples: list[dict[str, Any]] = field(default_factory=list)
    # A stacked model (`replyqa stack`): the BERT's share per label; the rest is the n-gram part's.
    ngram_weights: dict[str, float] = field(default_factory=dict)
    # ... and per label the BERT probability under which the n-grams have no say (absent: no floor).
    ngram_floor: dict[str, float] = field(default_factory=dict)

    @classmethod
    def read(cls, model_dir: Path) -> ModelInfo:
        path = model_dir / MODEL_INFO_FILE
        if not path.exists():
            raise ModelLoadError(
                f"{model_dir}: no {MODEL_INFO_FILE}, so label order and thresholds are unknown; "
                "this is not a model written by `replyqa train`"
            )
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise ModelLoadError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(raw, dict):
            raise ModelLoadError(f"{path}: expected a JSON object")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})

    def check_labels(self, id2label: list[str], where: str) -> None:
        """Refuse a label list, label order or thresholds that would silently mis-score; `id2label`
        is the model config's output order."""
        problems = []
        if sorted(self.labels) != sorted(LABELS):
            problems.append(f"labels {self.labels} are not the five replyqa labels {list(LABELS)}")
        if id2label != list(self.labels):
            problems.append(f"label order {self.labels} disagrees with config.json id2label {id2label}")
        if not isinstance(self.thresholds, dict) or set(self.thresholds) != set(LABELS):
            problems.append(f"thresholds must name each of {list(LABELS)} once")
        else:
            bad = {k: v for k, v in self.thresholds.items() if not _is_probability(v)}
            if bad:
                problems.append(f"thresholds outside (0, 1): {bad}")
        if self.ngram_weights and not is_share_per_label(self.ngram_weights):
            problems.append(f"ngram_weights must give each of {list(LABELS)} a share in [0, 1]")
        if self.ngram_floor and not is_share_per_label(self.ngram_floor):
            problems.append(f"ngram_floor must give each of {list(LABELS)} a probability in [0, 1]")
        if problems:
            raise ModelLoadError(f"{where}: " + "; ".join(problems))

    def write(self, model_dir: Path) -> None:
        fields = asdict(self)
        for optional in ("ngram_weights", "ngram_floor", "threshold_spread"):  # absent where empty: older files stay
            if not fields[optional]:
                del fields[optional]
        (model_dir / MODEL_INFO_FILE).write_text(json.dumps(fields, ensure_ascii=False, indent=2), encoding="utf-8")


def write_training_ids(model_dir: Path, trained_on: list[str], tuned_on: list[str]) -> None:
    """Record which labelled records fitted the weights (`trained_on`) and the cut-offs (`tuned_on`),
    so that an evaluation can refuse to measure fit (`training_ids`). Ids only: no text leaves the data."""
    ids = {"trained_on": sorted(set(trained_on)), "tuned_on": sorted(set(tuned_on))}
    (model_dir / TRAINING_IDS_FILE).write_text(json.dumps(ids, ensure_ascii=False) + "\n", encoding="utf-8")


def training_ids(model_dir: Path) -> frozenset[str] | None:
    """The ids a model directory says it was trained or tuned on; None where it does not say (a hub
    model, or one trained before the file existed)."""
    path = model_dir / TRAINING_IDS_FILE
    if not path.is_file():
        return None
    recorded = json.loads(path.read_text(encoding="utf-8"))
    return frozenset(recorded.get("trained_on", [])) | frozenset(recorded.get("tuned_on", []))


def _is_probability(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1


def resolve_model_source(source: str | Path) -> Path | str:
    """A local directory as is; `models:/NAME@ALIAS` or `runs:/...` downloaded from MLflow; else a hub name."""
    text = str(source)
    if text.startswith(("models:/", "runs:/")):
        import mlflow

        from ml.tracking import tracking_uri

        mlflow.set_tracking_uri(tracking_uri())
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=text))
        candidates = [p.parent for p in local.rglob(MODEL_INFO_FILE)]
        if not candidates:
            raise FileNotFoundError(f"{text}: no {MODEL_INFO_FILE} among the downloaded artifacts")
        return candidates[0]
    return Path(text) if Path(text).exists() else text
