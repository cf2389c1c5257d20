"""The one Scorer that the library, the CLI, the HTTP API and the batch jobs share.

from ml import Scorer
scorer = Scorer.load("models/default")
scorer.score("王先生您好，您本期应还1,280元。")  # -> ReplyScore
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jieba
import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ml.encoding import encode_replies
from ml.labels import LABELS
from ml.runtime import best_device, configure_cpu_threads

jieba.setLogLevel(logging.WARNING)
MODEL_INFO_FILE = "labels.json"
DEFAULT_MAX_CHARS = 2000


class InvalidReply(ValueError):
    """A reply that cannot be scored (empty or too long); `index` is its position in the request."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


@dataclass
class Span:
    start: int
    end: int
    text: str
    weight: float


@dataclass
class ReplyScore:
    probabilities: dict[str, float]
    decisions: dict[str, bool]
    model: str
    version: str
    evidence: dict[str, list[Span]] | None = None


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
    test_metrics: dict[str, Any] = field(default_factory=dict)
    card_examples: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, model_dir: Path) -> ModelInfo:
        path = model_dir / MODEL_INFO_FILE
        if not path.exists():
            return cls(name=model_dir.name)
        known = set(cls.__dataclass_fields__)
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{k: v for k, v in raw.items() if k in known})

    def write(self, model_dir: Path) -> None:
        (model_dir / MODEL_INFO_FILE).write_text(
            json.dumps(asdict(self), ensure_ascii=False, indent=2), encoding="utf-8"
        )


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


class Scorer:
    def __init__(
        self,
        model,
        tokenizer,
        info: ModelInfo,
        *,
        max_chars: int = DEFAULT_MAX_CHARS,
        batch_size: int = 32,
        device: torch.device | None = None,
        source: str = "",
    ) -> None:
        self.source = source  # where the model was loaded from, for reports
        self.device = device or best_device()
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.info = info
        self.max_chars = max_chars
        self.batch_size = batch_size
        self.thresholds = np.array([info.thresholds[label] for label in LABELS])
        self._label_order = [info.labels.index(label) for label in LABELS]

    @classmethod
    def load(
        cls,
        source: str | Path = "models/default",
        *,
        max_chars: int = DEFAULT_MAX_CHARS,
        batch_size: int = 32,
        device: str | None = None,
    ) -> Scorer:
        """Load from a model directory, a Hugging Face hub name, or an MLflow `models:/` URI."""
        configure_cpu_threads()
        location = resolve_model_source(source)
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModelForSequenceClassification.from_pretrained(location, dtype=torch.float32)
        info = ModelInfo.read(location) if isinstance(location, Path) else _hub_model_info(str(location), model)
        return cls(
            model,
            tokenizer,
            info,
            max_chars=max_chars,
            batch_size=batch_size,
            device=torch.device(device) if device else None,
            source=str(source),
        )

    # ------------------------------------------------------------ input rules

    def check_reply(self, text: Any, index: int | None = None) -> str:
        """The input rules, in one place: a string, stripped, not empty, at most `max_chars` characters."""
        where = f"item {index}: " if index is not None else ""
        if not isinstance(text, str):
            raise InvalidReply(f"{where}text must be a string, got {type(text).__name__}", index)
        text = text.strip()
        if not text:
            raise InvalidReply(f"{where}text is empty", index)
        if len(text) > self.max_chars:
            raise InvalidReply(f"{where}text has {len(text)} characters; the maximum is {self.max_chars}", index)
        return text

    # ------------------------------------------------------------ scoring

    def predict_proba(self, texts: Sequence[str], contexts: Sequence[str | None] | None = None) -> np.ndarray:
        """Probabilities, shape (n, 5) in LABELS order, for replies that already passed `check_reply`."""
        if not texts:
            return np.zeros((0, len(LABELS)))
        contexts = [c or "" for c in contexts] if contexts is not None else None
        encodings = encode_replies(self.tokenizer, list(texts), contexts, self.info.max_length, self.info.use_context)
        order = np.argsort([len(e["input_ids"]) for e in encodings], kind="stable")  # length bucketing
        probabilities = np.zeros((len(texts), len(LABELS)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch_indices = order[start : start + self.batch_size]
                batch = self.tokenizer.pad([encodings[i] for i in batch_indices], return_tensors="pt").to(self.device)
                logits = self.model(**batch).logits.float()
                probabilities[batch_indices] = torch.sigmoid(logits).cpu().numpy()[:, self._label_order]
        return probabilities

    def score(
        self, texts: str | Sequence[str], contexts: str | Sequence[str | None] | None = None, explain: bool = False
    ) -> ReplyScore | list[ReplyScore]:
        """Score one reply (returns a ReplyScore) or a list (returns a list). Raises InvalidReply."""
        single = isinstance(texts, str)
        text_list = [texts] if single else list(texts)
        context_list = ([contexts] if single else list(contexts)) if contexts is not None else [""] * len(text_list)
        if len(context_list) != len(text_list):
            raise InvalidReply(f"{len(text_list)} texts but {len(context_list)} contexts")
        text_list = [self.check_reply(text, None if single else i) for i, text in enumerate(text_list)]
        probabilities = self.predict_proba(text_list, context_list)
        results = [self._result(row) for row in probabilities]
        if explain:
            for result, text, context in zip(results, text_list, context_list):
                positives = [label for label, decided in result.decisions.items() if decided]
                result.evidence = self.explain(text, context, positives, result.probabilities)
        return results[0] if single else results

    def _result(self, row: np.ndarray) -> ReplyScore:
        return ReplyScore(
            probabilities={label: round(float(p), 4) for label, p in zip(LABELS, row)},
            decisions={label: bool(p >= t) for label, p, t in zip(LABELS, row, self.thresholds)},
            model=self.info.name,
            version=self.info.version,
        )

    # ------------------------------------------------------------ evidence

    def explain(
        self,
        text: str,
        context: str | None,
        labels: list[str],
        base: dict[str, float],
        top_k: int = 3,
        min_drop: float = 0.2,
    ) -> dict[str, list[Span]]:
        """Occlusion evidence: delete each jieba word of the reply in turn and re-score; the words whose
        removal lowers a label's log-odds most (by at least `min_drop`) are its evidence spans, adjacent
        words merged; `weight` is that drop. Log-odds, not probability: a reply scored 0.99 barely moves
        in probability when one word goes, but its log-odds still do. Offsets index the stripped reply."""
        if not labels:
            return {}
        words, offsets, position = jieba.lcut(text), [], 0
        for word in words:
            offsets.append((position, position + len(word)))
            position += len(word)
        variants = [text[:start] + text[end:] for start, end in offsets]
        occluded = self.predict_proba(variants, [context or ""] * len(variants))
        evidence = {}
        for label in labels:
            column = LABELS.index(label)
            drops = _log_odds(np.array(base[label])) - _log_odds(occluded[:, column])
            chosen = sorted(i for i in np.argsort(-drops)[:top_k] if drops[i] >= min_drop and words[i].strip())
            evidence[label] = _merge_spans(text, [(offsets[i], float(drops[i])) for i in chosen])
        return evidence


def _log_odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)  # probabilities are reported to 4 decimals
    return np.log(p / (1 - p))


def _merge_spans(text: str, pieces: list[tuple[tuple[int, int], float]]) -> list[Span]:
    spans: list[Span] = []
    for (start, end), weight in pieces:
        if spans and spans[-1].end == start:
            spans[-1] = Span(spans[-1].start, end, text[spans[-1].start : end], round(max(spans[-1].weight, weight), 4))
        else:
            spans.append(Span(start, end, text[start:end], round(weight, 4)))
    return spans


def _hub_model_info(name: str, model) -> ModelInfo:
    """labels.json from the hub when the checkpoint has one; else the model config's label names at 0.5."""
    try:
        from huggingface_hub import hf_hub_download

        return ModelInfo.read(Path(hf_hub_download(name, MODEL_INFO_FILE)).parent)
    except Exception:  # no labels.json on the hub (or no hub at all): fall back to the config
        labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if sorted(labels) != sorted(LABELS):
            raise ValueError(f"{name}: model labels {labels} are not the five replyqa labels") from None
        return ModelInfo(labels=labels, name=name)
