"""The one Scorer that the library, the CLI, the HTTP API and the batch jobs share.

from ml import Scorer
scorer = Scorer.load("models/default")
scorer.score("王先生您好，您本期应还1,280元。")  # -> ReplyScore
"""

from __future__ import annotations

import json
import logging
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jieba
import numpy as np

from ml.data.pii import Finding, find_pii
from ml.data.text import SURROGATE
from ml.labels import LABELS
from ml.modeling.backends import (
    OnnxBackend,
    OpenVinoBackend,
    TorchBackend,
    cpu_has_amx_bf16,
    gpu_present,
    onnx_path,
    openvino_path,
)
from ml.modeling.encoding import ReplyEncoder
from ml.modeling.model_info import MODEL_INFO_FILE, ModelInfo, ModelLoadError, resolve_model_source
from ml.modeling.ngrams import NGRAM_DIR, CharNgrams, mix

jieba.setLogLevel(logging.WARNING)
DEFAULT_MAX_CHARS = 2000
DEFAULT_MAX_CONTEXT_CHARS = 20_000
DEFAULT_EXPLAIN_UNITS = 64
PRECISIONS = {"onnx": ("fp32", "int8"), "openvino": ("bf16", "fp32")}  # what each CPU runtime offers
CONTEXT_CHARS_PER_TOKEN = 8  # a context longer than this many characters per token budget cannot all be read


class InvalidReply(ValueError):
    """A reply that cannot be scored (empty, too long, not text); `index` is its position in the request."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class DeadlineExceeded(TimeoutError):
    """Scoring stopped between two batches because the caller's deadline had passed."""


# A character that counts as content: not whitespace, not a control character, not a zero-width or
# direction mark. The API's OpenAPI document publishes the same pattern for `text`.
VISIBLE_CHAR = r"[^\s\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]"
_VISIBLE = re.compile(VISIBLE_CHAR)


def is_blank(text: str) -> bool:
    """True for text with no visible character (only whitespace, NUL and other controls, zero-width marks)."""
    return _VISIBLE.search(text) is None


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
    pii: list[Finding] = field(default_factory=list)  # identifiers and requests for secrets, by rule


class Scorer:
    """Scores replies with a model `backend` (ONNX Runtime or PyTorch) and the model's `ReplyEncoder`."""

    def __init__(
        self,
        backend: OnnxBackend | TorchBackend,
        encoder: ReplyEncoder,
        info: ModelInfo,
        *,
        max_chars: int = DEFAULT_MAX_CHARS,
        max_context_chars: int = DEFAULT_MAX_CONTEXT_CHARS,
        explain_units: int = DEFAULT_EXPLAIN_UNITS,
        batch_size: int = 32,
        source: str = "",
        location: Path | None = None,
        ngrams: CharNgrams | None = None,
    ) -> None:
        self.source = source  # where the model was loaded from, for reports
        self.location = location  # its local directory; None for a hub model
        self.backend = backend
        self.ngrams = ngrams  # a stacked model's character n-gram part (reads the reply only)
        # The n-gram part is Python work that runs while the BERT's runtime, which releases the GIL, computes:
        # 5-7% more replies/s than one after the other (experiments/benchmarks/README.md, stacked default).
        self._ngram_worker = ThreadPoolExecutor(1, thread_name_prefix="ngrams") if ngrams else None
        self.encoder = encoder
        self.info = info
        self.max_chars = max_chars
        self.max_context_chars = max_context_chars
        self.explain_units = explain_units
        self.context_chars = CONTEXT_CHARS_PER_TOKEN * info.max_length  # what the model can read of a context
        self.batch_size = batch_size
        self.thresholds = np.array([info.thresholds[label] for label in LABELS])
        self._label_order = [info.labels.index(label) for label in LABELS]
        self._bert_share = np.array([info.ngram_weights[label] for label in LABELS]) if ngrams else None
        self._bert_floor = np.array([info.ngram_floor[label] for label in LABELS]) if info.ngram_floor else None

    @classmethod
    def load(
        cls,
        source: str | Path = "models/default",
        *,
        runtime: str = "auto",
        precision: str | None = None,
        threads: int | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        max_context_chars: int = DEFAULT_MAX_CONTEXT_CHARS,
        explain_units: int = DEFAULT_EXPLAIN_UNITS,
        batch_size: int = 32,
        device: str | None = None,
    ) -> Scorer:
        """Load from a model directory, a Hugging Face hub name, or an MLflow `models:/` URI.
        `runtime`: "onnx" (ONNX Runtime, CPU), "openvino" (CPU), "torch", "portable" or "auto".
        "portable" is what the export recorded (labels.json `cpu_runtime`: ONNX, int8 when it passed
        its gate), the same on every CPU; "auto" is that, or OpenVINO bf16 where the CPU has AMX bf16
        and the model passed its bf16 gate; both mean torch with a GPU or without an export.
        `precision`: "fp32" or "int8" (ONNX), "bf16" or "fp32" (OpenVINO); ONNX defaults to the gated one.
        Raises ModelLoadError when the source is missing, unreadable or inconsistent."""
        location = resolve_model_source(source)
        info = ModelInfo.read(location) if isinstance(location, Path) else None
        runtime, precision = choose_runtime(runtime, precision, info, device)
        try:
            if runtime in ("onnx", "openvino"):
                if info is None:
                    raise ModelLoadError(f"{source}: the {runtime} runtime needs a local model directory")
                if precision not in (None, *PRECISIONS[runtime]):
                    offered = " or ".join(PRECISIONS[runtime])
                    raise ModelLoadError(f"{source}: the {runtime} runtime runs {offered}, not {precision}")
                if runtime == "openvino":
                    backend = OpenVinoBackend(_openvino_graph(location), precision or "bf16", threads)
                else:
                    precision = precision or info.cpu_runtime.get("precision", "fp32")
                    backend = OnnxBackend(_onnx_graph(location, precision), precision, threads)
                encoder = ReplyEncoder.from_pretrained(location, info.max_length, info.use_context)
                info.check_labels(_config_labels(location), str(source))
            else:
                backend, encoder, info = _torch_parts(location, info, device, threads)
                info.check_labels([backend.config.id2label[i] for i in range(backend.config.num_labels)], str(source))
            ngrams = _ngram_part(location, info)
        except (OSError, ValueError) as error:
            if isinstance(error, ModelLoadError):
                raise
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelLoadError(f"{source}: cannot load the model ({first_line})") from None
        return cls(
            backend,
            encoder,
            info,
            max_chars=max_chars,
            max_context_chars=max_context_chars,
            explain_units=explain_units,
            batch_size=batch_size,
            source=str(source),
            location=location if isinstance(location, Path) else None,
            ngrams=ngrams,
        )

    def load_options(self) -> dict[str, Any]:
        """The `Scorer.load` keyword arguments that rebuild this scorer (for worker processes)."""
        return {
            "runtime": self.backend.name,
            "precision": self.backend.precision if self.backend.name != "torch" else None,
            "max_chars": self.max_chars,
            "max_context_chars": self.max_context_chars,
            "explain_units": self.explain_units,
            "batch_size": self.batch_size,
        }

    @property
    def runtime(self) -> str:
        """What runs the model, e.g. "onnx-int8", "torch-fp32", or "onnx-int8+ngrams" when stacked."""
        return f"{self.backend.name}-{self.backend.precision}" + ("+ngrams" if self.ngrams else "")

    # ------------------------------------------------------------ input rules

    def check_reply(self, text: Any, index: int | None = None) -> str:
        """The input rules for a reply, in one place: a string of valid Unicode, not blank (whitespace,
        control and zero-width characters do not count), at most `max_chars` characters once stripped."""
        where = f"item {index}: " if index is not None else ""
        if not isinstance(text, str):
            raise InvalidReply(f"{where}text must be a string, got {type(text).__name__}", index)
        if SURROGATE.search(text):
            raise InvalidReply(f"{where}text is not valid Unicode (it holds a lone surrogate)", index)
        if is_blank(text):
            raise InvalidReply(f"{where}text is empty", index)
        text = text.strip()
        if len(text) > self.max_chars:
            raise InvalidReply(f"{where}text has {len(text)} characters; the maximum is {self.max_chars}", index)
        return text

    def check_context(self, context: Any, index: int | None = None) -> str:
        """The input rules for a context: absent or a string of valid Unicode of at most
        `max_context_chars` characters; returned stripped ("" when absent)."""
        where = f"item {index}: " if index is not None else ""
        if context is None:
            return ""
        if not isinstance(context, str):
            raise InvalidReply(f"{where}context must be a string, got {type(context).__name__}", index)
        if SURROGATE.search(context):
            raise InvalidReply(f"{where}context is not valid Unicode (it holds a lone surrogate)", index)
        if len(context) > self.max_context_chars:
            raise InvalidReply(
                f"{where}context has {len(context)} characters; the maximum is {self.max_context_chars}", index
            )
        return context.strip()

    # ------------------------------------------------------------ scoring

    def predict_proba(
        self,
        texts: Sequence[str],
        contexts: Sequence[str | None] | None = None,
        deadline: float | None = None,
    ) -> np.ndarray:
        """Probabilities, shape (n, 5) in LABELS order, for replies that already passed `check_reply`.
        Contexts are cut to what the model can read before anything else is done with them.
        `deadline` (a time.monotonic() value) stops the work between batches with DeadlineExceeded."""
        if not texts:
            return np.zeros((0, len(LABELS)))
        probabilities = np.zeros((len(texts), len(LABELS)), dtype=np.float32)
        ngram_part = self._ngram_worker.submit(self.ngrams.predict_proba, texts) if self._ngram_worker else None
        done = 0
        for batch_indices, batch in self.model_batches(texts, contexts):
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineExceeded(f"stopped after {done} of {len(texts)} inputs: the deadline passed")
            probabilities[batch_indices] = _sigmoid(self.backend(batch))[:, self._label_order]
            done += len(batch_indices)
        if ngram_part is not None:
            probabilities = mix(probabilities, ngram_part.result(), self._bert_share, self._bert_floor).astype(
                np.float32
            )
        return probabilities

    def model_batches(
        self, texts: Sequence[str], contexts: Sequence[str | None] | None = None
    ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """What the model is run on: (row indices, padded input batch) per length batch, contexts cut
        to what the model can read first. Each batch is padded only when it is reached."""
        contexts = [(c or "")[: self.context_chars] for c in contexts] if contexts is not None else None
        encodings = self.encoder.encode(list(texts), contexts)
        for batch_indices in length_batches([len(e.ids) for e in encodings], self.batch_size):
            yield batch_indices, self.encoder.pad([encodings[i] for i in batch_indices], self.backend.pad_multiple)

    def score(
        self,
        texts: str | Sequence[str],
        contexts: str | Sequence[str | None] | None = None,
        explain: bool = False,
        deadline: float | None = None,
    ) -> ReplyScore | list[ReplyScore]:
        """Score one reply (returns a ReplyScore) or a list (returns a list). Raises InvalidReply, and
        DeadlineExceeded once `deadline` (time.monotonic()) has passed. Evidence offsets index the
        text as given (leading whitespace included)."""
        single = isinstance(texts, str)
        raw_texts = [texts] if single else list(texts)
        raw_contexts = ([contexts] if single else list(contexts)) if contexts is not None else [None] * len(raw_texts)
        if len(raw_contexts) != len(raw_texts):
            raise InvalidReply(f"{len(raw_texts)} texts but {len(raw_contexts)} contexts")
        where = [None] * len(raw_texts) if single else list(range(len(raw_texts)))
        text_list = [self.check_reply(text, i) for text, i in zip(raw_texts, where)]
        context_list = [self.check_context(context, i) for context, i in zip(raw_contexts, where)]
        results = self.results(self.predict_proba(text_list, context_list, deadline), raw_texts)
        if explain:
            for result, raw, text, context in zip(results, raw_texts, text_list, context_list):
                positives = [label for label, decided in result.decisions.items() if decided]
                evidence = self.explain(text, context, positives, result.probabilities, deadline=deadline)
                shift = len(raw) - len(raw.lstrip())
                result.evidence = {
                    label: [Span(s.start + shift, s.end + shift, s.text, s.weight) for s in spans]
                    for label, spans in evidence.items()
                }
        return results[0] if single else results

    def results(self, probabilities: np.ndarray, raw_texts: Sequence[str]) -> list[ReplyScore]:
        """ReplyScores (probabilities, decisions, PII findings) from `predict_proba`'s rows."""
        return [
            ReplyScore(
                probabilities={label: round(float(p), 4) for label, p in zip(LABELS, row)},
                decisions={label: bool(p >= t) for label, p, t in zip(LABELS, row, self.thresholds)},
                model=self.info.name,
                version=self.info.version,
                pii=find_pii(raw),
            )
            for row, raw in zip(probabilities, raw_texts)
        ]

    # ------------------------------------------------------------ evidence

    def explain(
        self,
        text: str,
        context: str | None,
        labels: list[str],
        base: dict[str, float],
        top_k: int = 3,
        min_drop: float = 0.2,
        deadline: float | None = None,
    ) -> dict[str, list[Span]]:
        """Occlusion evidence: delete each jieba word of the reply in turn and re-score; the words whose
        removal lowers a label's log-odds most (by at least `min_drop`) are its evidence spans, adjacent
        words merged; `weight` is that drop. Log-odds, not probability: a reply scored 0.99 barely moves
        in probability when one word goes, but its log-odds still do. A reply of more than
        `explain_units` words is occluded in that many runs of adjacent words, so the cost is bounded.
        Offsets index the stripped reply."""
        if not labels:
            return {}
        offsets = _occlusion_units(text, self.explain_units)
        words = [text[start:end] for start, end in offsets]
        variants = [text[:start] + text[end:] for start, end in offsets]
        occluded = self.predict_proba(variants, [context or ""] * len(variants), deadline)
        evidence = {}
        for label in labels:
            column = LABELS.index(label)
            drops = _log_odds(np.array(base[label])) - _log_odds(occluded[:, column])
            chosen = sorted(i for i in np.argsort(-drops)[:top_k] if drops[i] >= min_drop and words[i].strip())
            evidence[label] = _merge_spans(text, [(offsets[i], float(drops[i])) for i in chosen])
        return evidence


def length_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices sorted by length and cut into batches of at most `batch_size`. A batch also ends
    before a reply much longer than its shortest member (over 1.5x and over 8 tokens more): every
    member is padded to the longest, and padding costs as much as text. On the test split's replies
    in random groups of 32 this doubles replies/s (experiments/benchmarks/README.md)."""
    batches: list[list[int]] = []
    for index in np.argsort(lengths, kind="stable"):
        length = lengths[index]
        if batches and len(batches[-1]) < batch_size:
            shortest = lengths[batches[-1][0]]
            if length <= 1.5 * shortest or length <= shortest + 8:
                batches[-1].append(index)
                continue
        batches.append([index])
    return [np.array(batch) for batch in batches]


def _occlusion_units(text: str, max_units: int) -> list[tuple[int, int]]:
    """(start, end) of each jieba word, or of `max_units` runs of adjacent words when there are more."""
    bounds, position = [], 0
    for word in jieba.lcut(text):
        bounds.append((position, position + len(word)))
        position += len(word)
    if len(bounds) <= max_units:
        return bounds
    runs = np.array_split(np.arange(len(bounds)), max_units)
    return [(bounds[run[0]][0], bounds[run[-1]][1]) for run in runs]


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


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float32)))


def choose_runtime(
    runtime: str, precision: str | None, info: ModelInfo | None, device: str | None
) -> tuple[str, str | None]:
    """`runtime` "auto" or "portable" resolved to what runs (see `Scorer.load`); others pass through."""
    if runtime not in ("auto", "portable"):
        return runtime, precision
    if runtime == "auto" and precision == "bf16":  # only OpenVINO computes in bf16
        return "openvino", precision
    on_cpu = device == "cpu" or (device is None and not gpu_present())
    recorded = info.cpu_runtime if info else {}
    if not on_cpu or recorded.get("runtime") != "onnx":
        return "torch", None
    bf16_passed = recorded.get("bf16_gate", {}).get("passed", False)
    if runtime == "auto" and precision is None and bf16_passed and cpu_has_amx_bf16():
        return "openvino", "bf16"
    return "onnx", precision


def _onnx_graph(location: Path, precision: str) -> Path:
    path = onnx_path(location, precision)
    if path.exists():
        return path
    from ml.modeling.export import ensure_onnx

    return ensure_onnx(location, precision)


def _openvino_graph(location: Path) -> Path:
    """The shipped OpenVINO graph, else the fp32 ONNX graph (OpenVINO reads both)."""
    path = openvino_path(location)
    return path if path.exists() else _onnx_graph(location, "fp32")


def _ngram_part(location: Path | str, info: ModelInfo) -> CharNgrams | None:
    """A stacked model's n-gram part, when labels.json gives n-gram weights."""
    if not info.ngram_weights:
        return None
    if not isinstance(location, Path) or not (location / NGRAM_DIR).is_dir():
        raise ModelLoadError(f"{location}: labels.json gives ngram_weights but there is no {NGRAM_DIR}/ folder")
    return CharNgrams.load(location)


def _config_labels(model_dir: Path) -> list[str]:
    """config.json's output order, read without importing transformers."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    id2label = config.get("id2label") or {}
    return [id2label.get(str(i)) for i in range(len(id2label))]


def _torch_parts(location: Path | str, info: ModelInfo | None, device: str | None, threads: int | None = None):
    from transformers import AutoTokenizer

    backend = TorchBackend.from_pretrained(location, device, threads)
    info = info or _hub_model_info(str(location), backend.model)
    encoder = ReplyEncoder.from_pretrained(AutoTokenizer.from_pretrained(location), info.max_length, info.use_context)
    return backend, encoder, info


def _hub_model_info(name: str, model) -> ModelInfo:
    """labels.json from the hub when the checkpoint has one; else the model config's label names at 0.5."""
    try:
        from huggingface_hub import hf_hub_download

        return ModelInfo.read(Path(hf_hub_download(name, MODEL_INFO_FILE)).parent)
    except Exception:  # no labels.json on the hub (or no hub at all): fall back to the config
        labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if sorted(labels) != sorted(LABELS):
            raise ModelLoadError(f"{name}: model labels {labels} are not the five replyqa labels") from None
        warnings.warn(
            f"{name}: no {MODEL_INFO_FILE} on the hub; using config.json's label order and thresholds of 0.5",
            stacklevel=3,
        )
        return ModelInfo(labels=labels, name=name)
