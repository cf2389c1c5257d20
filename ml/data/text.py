"""The one text normalisation that pretraining, training and scoring share."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

WHITESPACE = re.compile(r"\s+")
SURROGATE = re.compile("[\ud800-\udfff]")  # lone surrogates: not text, cannot be encoded as UTF-8


@lru_cache(maxsize=2)
def _opencc(config: str):
    import opencc

    return opencc.OpenCC(config)


@lru_cache(maxsize=1)
def _t2s_changes() -> frozenset[str]:
    """The characters without which OpenCC's t2s dictionaries cannot change a text: the differing
    characters of every entry whose Simplified form differs (all of an entry's characters when the
    lengths differ). OpenCC's pure-Python converter costs about 50 us a reply even on Simplified
    text, which nearly all replies are; with none of these characters it would return the text as is."""
    import opencc

    folder = Path(opencc.__file__).parent / "dictionary"
    changes: set[str] = set()
    for name in ("TSCharacters.txt", "TSPhrases.txt"):  # the dictionaries of opencc's t2s.json
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            key, _, values = line.partition("\t")
            value = values.split(" ")[0]
            if len(key) == len(value):
                changes.update(k for k, v in zip(key, value) if k != v)
            else:
                changes.update(key)
    return frozenset(changes)


def to_simplified(text: str) -> str:
    if _t2s_changes().isdisjoint(text):
        return text
    return _opencc("t2s").convert(text)


def to_traditional(text: str) -> str:
    return _opencc("s2t").convert(text)


def normalise_for_model(text: str) -> str:
    """NFKC (full-width letters and digits to half-width), Traditional to Simplified characters
    (the vocabulary is built from Simplified text), whitespace runs collapsed to one space."""
    text = unicodedata.normalize("NFKC", text)
    text = to_simplified(text)
    return WHITESPACE.sub(" ", text).strip()
