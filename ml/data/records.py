"""Data stage: load, validate, describe and split labelled agent utterances.

Every record follows ../shared/LABELS.md. Files may be JSON Lines, CSV or Parquet; in CSV and
Parquet the labels may be five flat columns or one `labels` column holding a JSON object.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from datasets import Dataset, Features, Sequence, Value
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, ValidationError, field_validator
from rapidfuzz import fuzz
from rapidfuzz.process import cdist

from ml.data.tabular import cells_under_header, csv_rows_with_lines
from ml.data.text import SURROGATE
from ml.labels import LABELS, Channel, NoiseTag, Scenario

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


class Labels(BaseModel):
    model_config = ConfigDict(extra="forbid")
    polite: StrictInt
    clear: StrictInt
    empathetic: StrictInt
    threatening: StrictInt
    privacy_risk: StrictInt

    @field_validator("*")
    @classmethod
    def zero_or_one(cls, value: int) -> int:
        if value not in (0, 1):
            raise ValueError(f"must be 0 or 1, got {value}")
        return value


class Record(BaseModel):
    """One labelled agent utterance (the contract of LABELS.md plus optional project fields)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    text: str
    context: str = ""
    scenario: Scenario
    channel: Channel
    labels: Labels
    source: str = "written"
    boundary: StrictBool = False
    pair: str = ""
    notes: str = ""
    noise: list[NoiseTag] = []

    @field_validator("id", "text")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("text", "context")
    @classmethod
    def valid_unicode(cls, value: str) -> str:
        if SURROGATE.search(value):
            raise ValueError("is not valid Unicode (it holds a lone surrogate)")
        return value


@dataclass
class RecordError:
    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.message}"


@dataclass
class LoadResult:
    records: list[Record] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)


# ---------------------------------------------------------------- reading raw rows


def iter_raw_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Yield (line number, row) for each row; a row that is not a JSON object comes as an error string.

    Line numbers are 1-based file lines for JSONL and CSV (the header is line 1), row numbers for Parquet.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        with path.open("rb") as handle:  # decoded line by line: one bad byte costs its line, not the file
            for number, raw in enumerate(handle, 1):
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as error:
                    yield number, f"not valid UTF-8 (byte {error.start} of the line)"
                    continue
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    yield number, f"bad JSON: {error.msg} at column {error.colno}"
                    continue
                yield number, row if isinstance(row, dict) else "line is not a JSON object"
    elif suffix == ".csv":
        yield from _csv_rows(path)
    elif suffix == ".parquet":
        for number, row in enumerate(pd.read_parquet(path).to_dict(orient="records"), 1):
            yield number, _flat_row_to_record(row)
    else:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}")


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """CSV rows under the header's names, each with the file line it starts on (a quoted cell may
    hold line breaks); a row with more cells than the header, or broken quoting, is an error string."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        header = next(reader, [])
        for start, cells in csv_rows_with_lines(reader):
            if isinstance(cells, csv.Error):
                yield start, f"bad CSV: {cells}"
                return  # after broken quoting the rest of the file cannot be split into rows
            if not cells:
                continue
            row = cells_under_header(header, cells)
            yield start, _flat_row_to_record(row) if isinstance(row, dict) else row


def _flat_row_to_record(row: dict[str, Any]) -> dict[str, Any]:
    """CSV/Parquet rows: turn flat label columns (or a JSON `labels` cell) into the `labels` object."""
    row = {key: value for key, value in row.items() if not (isinstance(value, float) and np.isnan(value))}
    if isinstance(row.get("labels"), str):
        try:
            row["labels"] = json.loads(row["labels"])
        except json.JSONDecodeError:
            pass
    elif any(label in row for label in LABELS):
        row["labels"] = {label: _as_int(row.pop(label, None)) for label in LABELS}
    for key in ("boundary",):
        if isinstance(row.get(key), str):
            row[key] = {"true": True, "false": False, "1": True, "0": False, "": False}.get(row[key].lower(), row[key])
    if isinstance(row.get("noise"), str):
        row["noise"] = [tag for tag in re.split(r"[,;| ]+", row["noise"]) if tag]
    elif row.get("noise") is not None and not isinstance(row.get("noise"), list):
        row["noise"] = list(row["noise"])
    return row


def _as_int(value: Any) -> Any:
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):  # not "²" or "١", which isdigit() passes
        return int(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    return value


# ---------------------------------------------------------------- validation


def load_records(paths: Iterable[str | Path]) -> LoadResult:
    """Read and validate every row of every file; collect all errors, never stop at the first."""
    result = LoadResult()
    seen_ids: dict[str, str] = {}
    for path in paths:
        try:
            rows = list(iter_raw_rows(path))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            result.errors.append(RecordError(str(path), 0, "file", str(error)))
            continue
        for line, row in rows:
            if isinstance(row, str):
                result.errors.append(RecordError(str(path), line, "line", row))
                continue
            try:
                record = Record.model_validate(row)
            except ValidationError as error:
                for problem in error.errors():
                    where = ".".join(str(part) for part in problem["loc"]) or "record"
                    result.errors.append(RecordError(str(path), line, where, problem["msg"]))
                continue
            if record.id in seen_ids:
                result.errors.append(
                    RecordError(str(path), line, "id", f"duplicate id {record.id!r} (first in {seen_ids[record.id]})")
                )
                continue
            seen_ids[record.id] = f"{path}:{line}"
            result.records.append(record)
    return result


def expand_paths(patterns: Iterable[str]) -> list[Path]:
    """Expand glob patterns and directories into a sorted list of data files."""
    paths: list[Path] = []
    for pattern in patterns:
        candidate = Path(pattern)
        if candidate.is_dir():
            paths += sorted(p for p in candidate.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES)
        elif any(ch in pattern for ch in "*?["):
            root = Path(candidate.anchor or ".")  # Path.glob takes relative patterns only
            paths += sorted(root.glob(str(candidate.relative_to(root)) if candidate.anchor else pattern))
        else:
            paths.append(candidate)
    return paths


def record_ids(paths: Iterable[str]) -> list[str]:
    """The ids of the records in these data files (folders and globs allowed)."""
    return [
        row["id"]
        for path in expand_paths(paths)
        for _, row in iter_raw_rows(path)
        if isinstance(row, dict) and "id" in row
    ]


# ---------------------------------------------------------------- datasets

RECORD_FEATURES = Features(
    {
        "id": Value("string"),
        "text": Value("string"),
        "context": Value("string"),
        "scenario": Value("string"),
        "channel": Value("string"),
        **{label: Value("int8") for label in LABELS},
        "source": Value("string"),
        "boundary": Value("bool"),
        "pair": Value("string"),
        "notes": Value("string"),
        "noise": Sequence(Value("string")),
    }
)


def record_to_row(record: Record) -> dict[str, Any]:
    row = record.model_dump()
    row.update(row.pop("labels"))
    return row


def records_to_dataset(records: list[Record]) -> Dataset:
    """Labelled records as one `datasets.Dataset` with flat label columns (schema RECORD_FEATURES)."""
    rows = [record_to_row(record) for record in records]
    columns = {name: [row[name] for row in rows] for name in RECORD_FEATURES}
    return Dataset.from_dict(columns, features=RECORD_FEATURES)


def label_matrix(dataset: Dataset) -> np.ndarray:
    """The five labels as an (n, 5) float matrix in LABELS order."""
    return np.stack([np.asarray(dataset[label]) for label in LABELS], axis=1).astype(np.float32)


def load_labelled(paths: Iterable[str | Path]) -> Dataset:
    """Load labelled files into a Dataset; raise ValueError listing every bad record."""
    result = load_records(paths)
    if result.errors:
        listing = "\n".join(str(error) for error in result.errors[:50])
        raise ValueError(f"{len(result.errors)} invalid records:\n{listing}")
    return records_to_dataset(result.records)


UNKNOWN = -1  # a label the record does not give; the training loss ignores it


class PartialRecord(BaseModel):
    """A reply that gives only some labels (e.g. replies from another domain, risk-negative by nature)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    text: str
    context: str = ""
    labels: dict[Literal[LABELS], StrictInt]  # strict, as in Record: true is not a label
    source: str

    not_blank = field_validator("id", "text")(Record.not_blank.__func__)  # Record's own check, not a copy

    @field_validator("labels")
    @classmethod
    def zero_or_one(cls, labels: dict[str, int]) -> dict[str, int]:
        for value in labels.values():
            Labels.zero_or_one(value)
        return labels


def load_partially_labelled(paths: Iterable[str | Path]) -> Dataset:
    """JSONL files of `PartialRecord`s as a Dataset with text, context and the five label columns,
    each label 0, 1 or UNKNOWN. Raises ValueError naming the file and line of a bad record."""
    rows = []
    for path in expand_paths(str(p) for p in paths):
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = PartialRecord.model_validate_json(line)
            except ValidationError as error:
                raise ValueError(f"{path}:{number}: {error}") from error
            rows.append(
                {
                    "text": record.text,
                    "context": record.context,
                    **{label: record.labels.get(label, UNKNOWN) for label in LABELS},
                }
            )
    columns = {name: [row[name] for row in rows] for name in ("text", "context", *LABELS)}
    return Dataset.from_dict(columns)


def load_unlabelled(path: str | Path, text_col: str = "text", context_col: str | None = "context") -> Dataset:
    """Unlabelled replies (JSONL/CSV/Parquet, or .txt with one reply a line) with the same text schema."""
    path = Path(path)
    if path.suffix.lower() == ".txt":
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        frame = pd.DataFrame({"text": texts})
    elif path.suffix.lower() == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix.lower() == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    else:
        frame = pd.read_json(path, lines=True, dtype=False)
    if text_col not in frame:
        raise ValueError(f"{path}: no column {text_col!r} (columns: {', '.join(map(str, frame.columns))})")
    contexts = frame[context_col] if context_col and context_col in frame else [""] * len(frame)
    ids = frame["id"].astype(str) if "id" in frame else [str(i) for i in range(len(frame))]
    return Dataset.from_dict(
        {
            "id": list(ids),
            "text": [str(t) for t in frame[text_col]],
            "context": ["" if c is None else str(c) for c in contexts],
        }
    )


# ---------------------------------------------------------------- near-duplicates


def writer_slice(record_id: str) -> str:
    """The slice (one brief, one writer) a labelled record belongs to: its id's prefix, "v2b" of "v2b-0012"."""
    return record_id.rsplit("-", 1)[0]


def normalise_text(text: str) -> str:
    """NFKC, lower case, punctuation/whitespace/symbols removed: the form compared for near-duplicates."""
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[\W_]+", "", text)


def near_duplicate_pairs(texts: list[str], threshold: float = 0.85, block: int = 2000) -> list[tuple[int, int, float]]:
    """Index pairs (i < j) whose normalised texts have rapidfuzz `ratio` (normalised Indel
    similarity, 2*matches/(len_a+len_b)) above `threshold`. Computed in blocks to bound memory."""
    normalised = [normalise_text(t) for t in texts]
    cutoff = int(threshold * 100)
    pairs: list[tuple[int, int, float]] = []
    for start in range(0, len(normalised), block):
        rows = normalised[start : start + block]
        scores = cdist(rows, normalised, scorer=fuzz.ratio, dtype=np.float32, workers=-1, score_cutoff=cutoff)
        for i, j in zip(*np.nonzero(scores > threshold * 100)):
            a = start + int(i)
            if a < j:
                pairs.append((a, int(j), float(scores[i, j]) / 100))
    return pairs


def unintended_duplicates(records: list[Record], threshold: float = 0.85) -> list[tuple[Record, Record, float]]:
    """Near-duplicate pairs that are not minimal pairs written on purpose (which share a `pair` id)."""
    found = near_duplicate_pairs([r.text for r in records], threshold)
    return [
        (records[a], records[b], s) for a, b, s in found if not (records[a].pair and records[a].pair == records[b].pair)
    ]
