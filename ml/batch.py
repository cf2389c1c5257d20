"""Score stage for archives: stream a CSV / JSONL / Parquet file through the Scorer in chunks.

Every input row reaches the output, in order, with its columns, the scores (`p_<label>`, `<label>`)
and an `error` column that says why a row could not be scored. Chunks are written as numbered part
files (each one complete or absent), so `resume=True` continues after the last finished part;
the parts are joined into OUTPUT at the end and renamed into place atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ml.labels import LABELS
from ml.scorer import InvalidReply, Scorer

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
SCORE_COLUMNS = [f"p_{label}" for label in LABELS] + list(LABELS) + ["error"]


def file_format(path: str) -> str:
    if path == "-":
        return "jsonl"
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unsupported format {suffix!r}; use .csv, .jsonl or .parquet (or - for JSONL)")
    return FORMATS[suffix]


# ---------------------------------------------------------------- reading


def read_chunks(path: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Chunks of at most `chunk_rows` rows, every value kept. Bytes that are not UTF-8 survive as
    surrogate escapes, so the row can be reported instead of the whole file failing."""
    kind = file_format(path)
    if kind == "csv":
        yield from pd.read_csv(
            path,
            dtype=object,
            keep_default_na=False,
            chunksize=chunk_rows,
            encoding="utf-8",
            encoding_errors="surrogateescape",
        )
    elif kind == "parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    else:
        yield from _jsonl_chunks(sys.stdin.buffer if path == "-" else open(path, "rb"), chunk_rows)


def _jsonl_chunks(handle, chunk_rows: int) -> Iterator[pd.DataFrame]:
    rows: list[dict] = []
    with handle:
        for raw in handle:
            line = raw.decode("utf-8", errors="surrogateescape").strip()
            if not line:
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("line is not a JSON object")
            except ValueError as error:
                row = {"_raw": line, "_parse_error": f"bad JSON line: {error}"}
            rows.append(row)
            if len(rows) == chunk_rows:
                yield pd.DataFrame(rows)
                rows = []
    if rows:
        yield pd.DataFrame(rows)


def count_rows(path: str) -> int | None:
    if path == "-":
        return None
    if file_format(path) == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    with open(path, "rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return max(lines - 1, 0) if file_format(path) == "csv" else lines


# ---------------------------------------------------------------- scoring one chunk


def score_chunk(
    scorer: Scorer,
    frame: pd.DataFrame,
    text_col: str,
    context_col: str | None,
    id_col: str | None = None,
    first_row: int = 0,
) -> pd.DataFrame:
    """The chunk with score columns added; rows that break an input rule get `error` and no scores.
    When the input has no `id_col`, one is added holding the 1-based input row number."""
    errors: list[str | None] = [None] * len(frame)
    texts: list[str | None] = [None] * len(frame)
    parse_errors = frame["_parse_error"].tolist() if "_parse_error" in frame else [None] * len(frame)
    raw_texts = frame[text_col].tolist() if text_col in frame else [None] * len(frame)
    for i, (raw, parse_error) in enumerate(zip(raw_texts, parse_errors)):
        try:
            if isinstance(parse_error, str):
                raise InvalidReply(parse_error)
            if raw is None or (isinstance(raw, float) and pd.isna(raw)):
                raise InvalidReply(f"no {text_col!r} value in this row")
            if isinstance(raw, str) and _has_undecodable_bytes(raw):
                raise InvalidReply("text is not valid UTF-8")
            texts[i] = scorer.check_reply(raw)
        except InvalidReply as error:
            errors[i] = str(error)
    valid = [i for i, text in enumerate(texts) if text is not None]
    contexts = None
    if context_col and context_col in frame:
        contexts = ["" if not isinstance(c, str) or _has_undecodable_bytes(c) else c for c in frame[context_col]]
    probabilities = scorer.predict_proba([texts[i] for i in valid], [contexts[i] for i in valid] if contexts else None)
    out = frame.drop(columns=[c for c in ("_parse_error",) if c in frame]).copy()
    if id_col and id_col not in out:
        out.insert(0, id_col, [str(first_row + i + 1) for i in range(len(out))])
    for j, label in enumerate(LABELS):
        column = pd.Series(pd.NA, index=out.index, dtype="Float64")
        column.iloc[valid] = probabilities[:, j].round(4)
        out[f"p_{label}"] = column
    for j, label in enumerate(LABELS):
        out[label] = (out[f"p_{label}"] >= scorer.thresholds[j]).astype("Int8")
    out["error"] = pd.Series(errors, index=out.index, dtype="string")
    return _clean_surrogates(out)


def _has_undecodable_bytes(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _clean_surrogates(frame: pd.DataFrame) -> pd.DataFrame:
    """Pass-through values with undecodable bytes are written with U+FFFD so the output stays UTF-8."""
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            frame[column] = frame[column].map(
                lambda v: v.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if isinstance(v, str) else v
            )
    return frame


# ---------------------------------------------------------------- writing


def write_part(frame: pd.DataFrame, path: Path, kind: str, header: bool) -> None:
    """Write one part completely, then rename it into place: a part either exists whole or not at all."""
    temporary = path.with_name(path.name + ".tmp")
    if kind == "csv":
        frame.to_csv(temporary, index=False, header=header)
    elif kind == "jsonl":
        frame.to_json(temporary, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(temporary, index=False)
    os.replace(temporary, path)


def join_parts(parts: list[Path], output: Path, kind: str) -> None:
    """Concatenate the parts into `output` atomically (temporary file in the same folder, then rename)."""
    temporary = output.with_name(f".{output.name}.tmp")
    if kind == "parquet":
        writer = None
        for part in parts:
            table = pq.read_table(part)
            if writer is None:
                writer = pq.ParquetWriter(temporary, table.schema)
            writer.write_table(table.cast(writer.schema))
        if writer is None:
            pq.write_table(pa.table({c: [] for c in SCORE_COLUMNS}), temporary)
        else:
            writer.close()
    else:
        with temporary.open("wb") as target:
            for part in parts:
                with part.open("rb") as source:
                    shutil.copyfileobj(source, target)
    os.replace(temporary, output)


class ScoreJob:
    """One run of `replyqa score`: INPUT -> OUTPUT through the shared Scorer."""

    def __init__(
        self,
        scorer: Scorer,
        source: str,
        output: str,
        text_col: str = "text",
        context_col: str | None = "context",
        id_col: str | None = "id",
        chunk_rows: int = 2000,
    ) -> None:
        self.scorer, self.source, self.output = scorer, source, output
        self.text_col, self.context_col, self.id_col = text_col, context_col, id_col
        self.chunk_rows = chunk_rows

    def run(self, resume: bool = False, show_progress: bool = True) -> dict[str, int]:
        if self.output == "-":
            return self._run_to_stdout()
        output, kind = Path(self.output), file_format(self.output)
        parts_dir = output.with_name(f".{output.name}.parts")
        manifest = {
            "input": str(Path(self.source).resolve()),
            "input_bytes": Path(self.source).stat().st_size,
            "chunk_rows": self.chunk_rows,
            "text_col": self.text_col,
            "model_version": self.scorer.info.version,
        }
        done = self._prepare_parts(parts_dir, manifest, resume)
        counts = {"rows": 0, "scored": 0, "errors": 0, "resumed_rows": 0}
        with _progress(show_progress) as progress:
            task = progress.add_task("scoring", total=count_rows(self.source))
            for index, frame in enumerate(read_chunks(self.source, self.chunk_rows)):
                part = parts_dir / f"part-{index:06d}.{kind}"
                if index < done:
                    counts["resumed_rows"] += len(frame)
                else:
                    scored = score_chunk(
                        self.scorer, frame, self.text_col, self.context_col, self.id_col, counts["rows"]
                    )
                    write_part(scored, part, kind, header=index == 0)
                    counts["errors"] += int(scored["error"].notna().sum())
                counts["rows"] += len(frame)
                progress.update(task, advance=len(frame))
        join_parts(sorted(parts_dir.glob(f"part-*.{kind}")), output, kind)
        shutil.rmtree(parts_dir)
        counts["scored"] = counts["rows"] - counts["resumed_rows"] - counts["errors"]
        return counts

    def _prepare_parts(self, parts_dir: Path, manifest: dict, resume: bool) -> int:
        """Number of finished parts to keep: those of an interrupted run of the same job when resuming."""
        manifest_path = parts_dir / "manifest.json"
        if resume and manifest_path.exists() and json.loads(manifest_path.read_text()) == manifest:
            for leftover in parts_dir.glob("*.tmp"):
                leftover.unlink()
            return len(list(parts_dir.glob("part-*")))
        if resume and parts_dir.exists():
            raise ValueError(f"cannot resume: {parts_dir} belongs to another input, chunk size or model")
        shutil.rmtree(parts_dir, ignore_errors=True)
        parts_dir.mkdir(parents=True)
        manifest_path.write_text(json.dumps(manifest))
        return 0

    def _run_to_stdout(self) -> dict[str, int]:
        counts = {"rows": 0, "errors": 0}
        for frame in read_chunks(self.source, self.chunk_rows):
            scored = score_chunk(self.scorer, frame, self.text_col, self.context_col, self.id_col, counts["rows"])
            sys.stdout.write(scored.to_json(orient="records", lines=True, force_ascii=False))
            sys.stdout.flush()
            counts["rows"] += len(frame)
            counts["errors"] += int(scored["error"].notna().sum())
        return counts


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.speed:>7.0f} rows/s" if enabled else ""),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=False,
    )
