"""Tabular files in and out: CSV / JSONL / Parquet read in chunks, written as parts, joined.

Reading keeps every value: bytes that are not valid in the input encoding survive as surrogate
escapes, and a CSV row or JSONL line that cannot be parsed comes as its text (`_raw`) and the
reason, so one bad row can be reported instead of the whole file failing. Writing is durable
(fsync before rename) and the join tolerates parts whose columns differ (JSONL keys that change
from row to row): the output has the union of the columns, missing values empty.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import shutil
import sys
from collections.abc import Collection, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml.data.text import SURROGATE

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
ENCODINGS = ("utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16")


def file_format(path: str) -> str:
    if path == "-":
        return "jsonl"
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unsupported format {suffix!r}; use .csv, .jsonl or .parquet (or - for JSONL)")
    return FORMATS[suffix]


def detect_encoding(path: str, encoding: str | None = None) -> str:
    """The encoding to read a text file with: the one asked for, else from its byte-order mark, else UTF-8."""
    if encoding is not None:
        if encoding.lower() not in ENCODINGS:
            raise ValueError(f"unsupported encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")
        return encoding.lower()
    if path == "-" or file_format(path) == "parquet":
        return "utf-8"
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8"


def has_undecodable_bytes(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def is_missing(value) -> bool:
    """An absent value: a JSON null, a key a JSONL row lacks (NaN), a Parquet null."""
    return pd.api.types.is_scalar(value) and bool(pd.isna(value))


# ---------------------------------------------------------------- reading


BAD_ROW_COLUMNS = ("_raw", "_parse_error")  # a row that cannot be read: its text as in the file, and why


def read_chunks(
    path: str, chunk_rows: int, encoding: str = "utf-8", reserved: Collection[str] = ()
) -> Iterator[pd.DataFrame]:
    """Chunks of at most `chunk_rows` rows, every value kept as read (CSV values as strings). A CSV
    row or JSONL line that cannot be read comes as `_raw` (its text) and `_parse_error` (why).
    `reserved`: column names the caller writes itself. A CSV or Parquet file with such a column is
    refused before any row is read; a JSONL line with such a key is a bad line."""
    refuse_reserved(path, fixed_columns(path, encoding), reserved)
    kind = file_format(path)
    if kind == "parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
        return
    raw = sys.stdin.buffer if path == "-" else open(path, "rb")
    if kind == "csv":
        yield from _csv_chunks(_text(raw, encoding, newline=""), chunk_rows)
    else:
        yield from _jsonl_chunks(_text(raw, encoding), chunk_rows, set(reserved))


def refuse_reserved(path: str, columns: list[str] | None, reserved: Collection[str]) -> None:
    if clashes := [c for c in columns or [] if c in reserved]:
        names = ", ".join(map(repr, clashes))
        raise ValueError(f"{path}: the output writes its own column {names}; rename it in the input")


def _text(raw, encoding: str, newline: str | None = None) -> io.TextIOWrapper:
    return io.TextIOWrapper(raw, encoding=encoding, errors="surrogateescape", newline=newline)


def _jsonl_chunks(handle, chunk_rows: int, reserved: set[str]) -> Iterator[pd.DataFrame]:
    rows: list[dict] = []
    with handle:
        for number, raw in enumerate(handle):
            line = raw.strip().removeprefix("\ufeff") if number == 0 else raw.strip()  # a BOM on stdin
            if not line:
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("line is not a JSON object")
                if clashes := [key for key in row if key in reserved]:
                    raise ValueError(f"key {', '.join(map(repr, clashes))} is a name the output uses; rename it")
            except ValueError as error:
                row = {"_raw": line, "_parse_error": f"bad JSON line: {error}"}
            rows.append(row)
            if len(rows) == chunk_rows:
                yield pd.DataFrame(rows, dtype=object)  # object: 12 stays 12 when other rows lack the key
                rows = []
    if rows:
        yield pd.DataFrame(rows, dtype=object)


class _TakenLines:
    """The lines a csv reader takes from a file, kept until taken back: each row's text as written."""

    def __init__(self, handle) -> None:
        self.handle, self.lines = handle, []

    def __iter__(self) -> _TakenLines:
        return self

    def __next__(self) -> str:
        line = next(self.handle)
        self.lines.append(line)
        return line

    def take(self) -> str:
        text = "".join(self.lines)
        self.lines.clear()
        return text


def _csv_chunks(handle, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Rows under the header's names, short rows filled with "". A row with more fields than the
    header, or with quotes the CSV rules do not allow (strict: a quote never closed takes the rest
    of the file, up to csv's field size limit), is a bad row naming its line."""
    with handle:
        lines = _TakenLines(handle)
        reader = csv.reader(lines, strict=True)
        columns = _csv_header(reader)
        lines.take()
        rows: list[dict] = []
        chunks = 0
        for first_line, fields in csv_rows_with_lines(reader):
            text = lines.take()
            if not text.strip():
                continue  # blank lines are not rows
            where = f"line {first_line}" if reader.line_num == first_line else f"lines {first_line}-{reader.line_num}"
            rows.append(_csv_row(columns, fields, text, where))
            if len(rows) == chunk_rows:
                yield _csv_frame(rows, columns)
                rows, chunks = [], chunks + 1
    if rows or not chunks:  # a file of only a header is one empty chunk, so its columns reach the output
        yield _csv_frame(rows, columns)


def csv_rows_with_lines(reader) -> Iterator[tuple[int, list[str] | csv.Error]]:
    """(the file line a row starts on, its cells) for each row a csv reader gives, a quoted cell
    possibly spanning lines; a row the reader cannot split comes as its csv.Error."""
    while True:
        first_line = reader.line_num + 1
        try:
            yield first_line, next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield first_line, error


def cells_under_header(columns: list[str], cells: list[str]) -> dict[str, str] | str:
    """A CSV row's cells under the header's names, a short row padded with ""; a row with more cells
    than the header has names is not read: the problem, as a message."""
    if len(cells) > len(columns):
        return f"{len(cells)} cells where the header has {len(columns)}"
    return dict(zip(columns, cells + [""] * (len(columns) - len(cells))))


def _csv_row(columns: list[str], fields: list[str] | csv.Error, text: str, where: str) -> dict:
    row = str(fields) if isinstance(fields, csv.Error) else cells_under_header(columns, fields)
    if isinstance(row, dict):
        return row
    return {"_raw": text.rstrip("\r\n"), "_parse_error": f"bad CSV row at {where}: {row}"}


def _csv_frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, dtype=object)
    return frame.reindex(columns=[*columns, *(c for c in BAD_ROW_COLUMNS if c in frame)])


def _csv_header(reader) -> list[str]:
    """The header's names as pandas gives them: blanks `Unnamed: i`, repeats `name.1`, `name.2`."""
    try:
        header = next((row for row in reader if row), [])
    except csv.Error as error:
        raise ValueError(f"cannot read the CSV header at line {reader.line_num}: {error}") from None
    names: list[str] = []
    for i, name in enumerate(header):
        name, seen = name or f"Unnamed: {i}", 0
        unique = name
        while unique in names:
            seen += 1
            unique = f"{name}.{seen}"
        names.append(unique)
    return names


def fixed_columns(path: str, encoding: str = "utf-8") -> list[str] | None:
    """The header of a CSV or the schema of a Parquet file; None for JSONL (keys vary by row)."""
    kind = file_format(path)
    if kind == "parquet":
        return list(pq.ParquetFile(path).schema_arrow.names)
    if kind == "csv":
        with _text(open(path, "rb"), encoding, newline="") as handle:
            try:
                return _csv_header(csv.reader(handle, strict=True))
            except ValueError as error:
                raise ValueError(f"{path}: {error}") from None
    return None


def count_rows(path: str, encoding: str = "utf-8") -> int | None:
    """Rows in the file, for progress bars; None when it cannot be known cheaply."""
    if path == "-" or encoding.startswith("utf-16"):
        return None
    if file_format(path) == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    with open(path, "rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return max(lines - 1, 0) if file_format(path) == "csv" else lines


def clean_text_values(frame: pd.DataFrame) -> pd.DataFrame:
    """Undecodable bytes and lone surrogates in pass-through values are written as U+FFFD, so every
    output file is valid UTF-8."""
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            broken = values.map(lambda v: isinstance(v, str) and SURROGATE.search(v) is not None).astype(bool)
            if broken.any():  # touch only those values: mapping the whole column would retype it (12 -> 12.0)
                frame.loc[broken, column] = values[broken].map(lambda v: SURROGATE.sub("\ufffd", v))
    return frame


# ---------------------------------------------------------------- writing


def fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_part(frame: pd.DataFrame, path: Path, kind: str) -> None:
    """Write one part completely (its column list beside it), fsync, then rename it into place:
    a part either exists whole or not at all."""
    temporary = path.with_name(path.name + ".tmp")
    if kind == "csv":
        frame.to_csv(temporary, index=False, header=False)
    elif kind == "jsonl":
        frame.to_json(temporary, orient="records", lines=True, force_ascii=False)
    else:
        pq.write_table(_arrow_table(frame), temporary)
    fsync_file(temporary)
    _columns_file(path).write_text(json.dumps(list(map(str, frame.columns)), ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)


def _columns_file(part: Path) -> Path:
    return part.with_name(part.name + ".columns.json")


def _arrow_table(frame: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table; object columns that mix types (JSON values of several kinds) become text."""
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        mixed = frame.copy()
        for column in mixed.select_dtypes(include="object").columns:
            mixed[column] = mixed[column].map(_as_text)
        return pa.Table.from_pandas(mixed, preserve_index=False)


def _as_text(value) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def union_columns(column_lists: list[list[str]], last: list[str]) -> list[str]:
    """Every column in first-seen order, with the `last` columns (the scores) at the end."""
    seen = dict.fromkeys(c for columns in column_lists for c in columns if c not in last)
    return [*seen, *[c for c in last if any(c in columns for columns in column_lists)]]


def join_parts(parts: list[Path], output: Path, kind: str, last_columns: list[str]) -> None:
    """Concatenate the parts into `output` under the union of their columns; written to a temporary
    file in the same folder, fsynced, then renamed into place."""
    temporary = output.with_name(f".{output.name}.tmp")
    columns = [json.loads(_columns_file(part).read_text(encoding="utf-8")) for part in parts]
    union = union_columns(columns, last_columns) if parts else last_columns
    if kind == "parquet":
        _join_parquet(parts, temporary, union)
    elif kind == "csv":
        _join_csv(parts, columns, temporary, union)
    else:
        with temporary.open("wb") as target:
            for part in parts:
                with part.open("rb") as source:
                    shutil.copyfileobj(source, target)
    fsync_file(temporary)
    os.replace(temporary, output)


def _join_csv(parts: list[Path], columns: list[list[str]], temporary: Path, union: list[str]) -> None:
    with temporary.open("w", encoding="utf-8", newline="") as target:
        pd.DataFrame(columns=union).to_csv(target, index=False)
        for part, part_columns in zip(parts, columns):
            if part_columns == union:
                with part.open("r", encoding="utf-8", newline="") as source:
                    shutil.copyfileobj(source, target)
                continue
            frame = pd.read_csv(part, header=None, names=part_columns, dtype=object, keep_default_na=False)
            frame.reindex(columns=union, fill_value="").to_csv(target, index=False, header=False)


def _join_parquet(parts: list[Path], temporary: Path, union: list[str]) -> None:
    # One part in memory at a time: the output of a million-row job must not be held whole.
    schema = _unified_schema([pq.read_schema(part) for part in parts], union)
    with pq.ParquetWriter(temporary, schema) as writer:
        for part in parts:
            writer.write_table(_conform(pq.read_table(part), schema))


def _unified_schema(schemas: list[pa.Schema], names: list[str]) -> pa.Schema:
    fields = []
    for name in names:
        types = {s.field(name).type for s in schemas if name in s.names}
        typed = [t for t in types if not pa.types.is_null(t)]
        if len(typed) <= 1:
            fields.append(pa.field(name, typed[0] if typed else pa.string()))
            continue
        try:
            unified = pa.unify_schemas([pa.schema([(name, t)]) for t in typed], promote_options="permissive")
            fields.append(unified.field(name))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            fields.append(pa.field(name, pa.string()))  # e.g. numbers in one part, text in another
    return pa.schema(fields)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    arrays = []
    for field in schema:
        if field.name not in table.column_names:
            arrays.append(pa.nulls(len(table), field.type))
            continue
        column = table[field.name]
        if column.type == field.type:
            arrays.append(column)
        elif pa.types.is_string(field.type) and not pa.types.is_null(column.type):
            arrays.append(pa.array([_as_text(v) for v in column.to_pylist()], pa.string()))
        else:
            arrays.append(column.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
