"""The one text normalisation that pretraining, training and scoring share."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

WHITESPACE = re.compile(r"\s+")
SURROGATE = re.compile("[\ud800-\udfff]")  # lone surrogates: not text, cannot be encoded as UTF-8


@lru_cache(maxsize=2)
def _opencc(config: str):
    import opencc

    return opencc.OpenCC(config)


def to_simplified(text: str) -> str:
    return _opencc("t2s").convert(text)


def to_traditional(text: str) -> str:
    return _opencc("s2t").convert(text)


def normalise_for_model(text: str) -> str:
    """NFKC (full-width letters and digits to half-width), Traditional to Simplified characters
    (the vocabulary is built from Simplified text), whitespace runs collapsed to one space."""
    text = unicodedata.normalize("NFKC", text)
    text = to_simplified(text)
    return WHITESPACE.sub(" ", text).strip()
