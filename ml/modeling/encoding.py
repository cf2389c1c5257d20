"""Turning (context, reply) into model inputs, identically for training, scoring and export.

Text normalisation (NFKC, Traditional to Simplified characters) lives inside the tokenizer's own
normalizer (`with_model_normaliser`), so that any consumer of a saved model directory (the Scorer,
a plain transformers `pipeline`, the ONNX session) reads text the same way. Encoding uses the
`tokenizers` library directly: one batched call per kind of input, no transformers import needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer, normalizers

CHARSMAP = Path(__file__).parent / "resources" / "nfkc_t2s.charsmap"
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def model_normaliser(existing: normalizers.Normalizer | None) -> normalizers.Normalizer:
    """NFKC plus a one-to-one Traditional-to-Simplified character map (OpenCC's TSCharacters, first
    choice), compiled into one SentencePiece charsmap (`ml/modeling/resources/nfkc_t2s.charsmap`), then `existing`."""
    mapped = normalizers.Precompiled(CHARSMAP.read_bytes())
    return normalizers.Sequence([mapped, existing]) if existing is not None else mapped


def has_model_normaliser(tokenizer: Tokenizer) -> bool:
    return '"Precompiled"' in tokenizer.to_str()


def with_model_normaliser(tokenizer):
    """A transformers fast tokenizer whose backend normalises as the model expects; saved with
    `save_pretrained`, it loads back (AutoTokenizer) with that normalizer intact."""
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    if not has_model_normaliser(backend):
        backend.normalizer = model_normaliser(backend.normalizer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        model_input_names=list(MODEL_INPUTS),
        model_max_length=tokenizer.model_max_length,
        **{key: value for key, value in tokenizer.special_tokens_map.items() if isinstance(value, str)},
    )


class ReplyEncoder:
    """`[CLS] context [SEP] reply [SEP]` within `max_length` tokens: the context is trimmed first, and
    the reply (read alone) only when it alone is too long. Thread-safe: it keeps its own tokenizers."""

    def __init__(self, tokenizer: Tokenizer, max_length: int, use_context: bool = True) -> None:
        self.max_length = max_length
        self.use_context = use_context
        self.pad_id = tokenizer.token_to_id("[PAD]") or 0
        self._bare = self._copy(tokenizer, None)
        self._pairs = self._copy(tokenizer, "only_first")
        self._single = self._copy(tokenizer, "longest_first")

    def _copy(self, tokenizer: Tokenizer, strategy: str | None) -> Tokenizer:
        copy = Tokenizer.from_str(tokenizer.to_str())
        copy.no_padding()
        if strategy:
            copy.enable_truncation(self.max_length, strategy=strategy)
        else:
            copy.no_truncation()
        return copy

    @classmethod
    def from_pretrained(cls, tokenizer, max_length: int, use_context: bool = True) -> ReplyEncoder:
        """From a transformers fast tokenizer, or a model directory holding tokenizer.json."""
        if isinstance(tokenizer, str | Path):
            return cls(Tokenizer.from_file(str(Path(tokenizer) / "tokenizer.json")), max_length, use_context)
        return cls(tokenizer.backend_tokenizer, max_length, use_context)

    def encode(self, texts: list[str], contexts: list[str] | None = None) -> list[Encoding]:
        texts = list(texts)
        contexts = list(contexts) if contexts is not None and self.use_context else [""] * len(texts)
        reply_lengths = [len(e.ids) for e in self._bare.encode_batch(texts, add_special_tokens=False)]
        paired = [bool(c) and n + 4 <= self.max_length for c, n in zip(contexts, reply_lengths)]
        pair_rows = [i for i, p in enumerate(paired) if p]
        single_rows = [i for i, p in enumerate(paired) if not p]
        encodings: list[Encoding | None] = [None] * len(texts)
        for i, encoding in zip(pair_rows, self._pairs.encode_batch([(contexts[i], texts[i]) for i in pair_rows])):
            encodings[i] = encoding
        for i, encoding in zip(single_rows, self._single.encode_batch([texts[i] for i in single_rows])):
            encodings[i] = encoding
        return encodings

    def features(self, texts: list[str], contexts: list[str] | None = None) -> dict[str, list[list[int]]]:
        """Unpadded model inputs per reply (for a `datasets.Dataset`)."""
        encodings = self.encode(texts, contexts)
        return {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }

    def pad(self, encodings: list[Encoding], multiple: int = 1) -> dict[str, np.ndarray]:
        """One padded int64 batch: to the longest member, rounded up to `multiple` tokens."""
        width = -(-max(len(e.ids) for e in encodings) // multiple) * multiple
        batch = {name: np.zeros((len(encodings), width), dtype=np.int64) for name in MODEL_INPUTS}
        batch["input_ids"].fill(self.pad_id)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            batch["input_ids"][row, :n] = e.ids
            batch["attention_mask"][row, :n] = 1
            batch["token_type_ids"][row, :n] = e.type_ids
        return batch
