"""The one text normalisation that pretraining, training and scoring share."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

WHITESPACE = re.compile(r"\s+")
SURROGATE = re.compile("[\ud800-\udfff]")  # lone surrogates: not text, cannot be encoded as UTF-8


@lru_cache(maxsize=1)
def _to_simplified():
    import opencc

    return opencc.OpenCC("t2s")


def normalise_for_model(text: str) -> str:
    """NFKC (full-width letters and digits to half-width), Traditional to Simplified characters
    (the vocabulary is built from Simplified text), whitespace runs collapsed to one space."""
    text = unicodedata.normalize("NFKC", text)
    text = _to_simplified().convert(text)
    return WHITESPACE.sub(" ", text).strip()
