"""Score stage for archives: stream a CSV / JSONL / Parquet file through the Scorer in chunks.

Guarantees (the README repeats them for users):
- Every input row reaches the output, in input order, with its columns, the scores (`p_<label>`,
  `<label>`) and an `error` column that says why a row could not be scored.
- Chunks are written as numbered part files (each complete or absent, fsynced), so `resume=True`
  continues after the last finished part, but only for the same job: the manifest records a hash
  of the input's content and every option that changes the output.
- One job per output: a lock file beside the output makes a second run on it fail at once.
- The parts are joined into OUTPUT under the union of their columns and renamed into place.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ml.data.pii import find_pii, redact
from ml.data.tabular import (
    BAD_ROW_COLUMNS,
    clean_text_values,
    count_rows,
    detect_encoding,
    file_format,
    fixed_columns,
    has_undecodable_bytes,
    is_missing,
    join_parts,
    read_chunks,
    write_part,
)
from ml.labels import LABELS
from ml.modeling.scorer import InvalidReply, Scorer

SCORE_COLUMNS = [f"p_{label}" for label in LABELS] + list(LABELS) + ["pii", "error"]
RESERVED_COLUMNS = (*SCORE_COLUMNS, *BAD_ROW_COLUMNS)  # an input column of one of these names would be lost


class JobError(ValueError):
    """A job that cannot run as asked (the message says why in one line); nothing was lost."""


class NothingScored(JobError):
    """Every row came out with an error for the same reason (a wrong column or encoding); the
    output was written all the same."""


@dataclass
class JobCounts:
    rows: int = 0
    scored: int = 0
    errors: int = 0
    resumed_rows: int = 0
    missing_text: int = 0  # rows without a value in the text column
    undecodable: int = 0  # rows whose text is not valid in the input encoding
    columns: list[str] = field(default_factory=list)

    def add(self, other: JobCounts) -> None:
        for name in ("scored", "errors", "missing_text", "undecodable"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.columns += [c for c in other.columns if c not in self.columns]

    def summary(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k in ("rows", "scored", "errors", "resumed_rows")}


# ---------------------------------------------------------------- scoring one chunk


def score_chunk(
    scorer: Scorer,
    frame: pd.DataFrame,
    text_col: str,
    context_col: str | None,
    id_col: str | None = None,
    first_row: int = 0,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """The chunk with score columns added; rows that break an input rule get `error` and no scores.
    When the input has no `id_col`, one is added holding the 1-based input row number."""
    errors: list[str | None] = [None] * len(frame)
    texts: list[str | None] = [None] * len(frame)
    contexts: list[str] = [""] * len(frame)
    parse_errors = frame["_parse_error"].tolist() if "_parse_error" in frame else [None] * len(frame)
    raw_texts = frame[text_col].tolist() if text_col in frame else [None] * len(frame)
    raw_contexts = frame[context_col].tolist() if context_col and context_col in frame else [None] * len(frame)
    for i, (raw, raw_context, parse_error) in enumerate(zip(raw_texts, raw_contexts, parse_errors)):
        try:
            if isinstance(parse_error, str):
                raise InvalidReply(parse_error)
            if is_missing(raw):
                raise InvalidReply(f"no {text_col!r} value in this row")
            for name, value in (("text", raw), ("context", raw_context)):
                if isinstance(value, str) and has_undecodable_bytes(value):
                    raise InvalidReply(f"{name} is not valid {encoding.upper()} (see --encoding)")
            text = scorer.check_reply(raw)
            context = scorer.check_context(None if is_missing(raw_context) else raw_context)
            texts[i], contexts[i] = text, context  # a row is scored only when both pass
        except InvalidReply as error:
            errors[i] = str(error)
    valid = [i for i, text in enumerate(texts) if text is not None]
    probabilities = scorer.predict_proba([texts[i] for i in valid], [contexts[i] for i in valid])
    probabilities = probabilities.astype(np.float64).round(4)  # 0.001, not float32's 0.0010000000474974513
    out = frame.drop(columns=[c for c in ("_parse_error",) if c in frame]).copy()
    if id_col and id_col not in out:
        out.insert(0, id_col, [str(first_row + i + 1) for i in range(len(out))])
    for j, label in enumerate(LABELS):
        column = pd.Series(pd.NA, index=out.index, dtype="Float64")
        column.iloc[valid] = probabilities[:, j]
        out[f"p_{label}"] = column
    for j, label in enumerate(LABELS):
        out[label] = (out[f"p_{label}"] >= scorer.thresholds[j]).astype("Int8")
    out["pii"] = [json.dumps([f.to_dict() for f in find_pii(raw)]) if isinstance(raw, str) else "" for raw in raw_texts]
    out["error"] = pd.Series(errors, index=out.index, dtype="string")
    return clean_text_values(out)


def redact_columns(frame: pd.DataFrame, columns: list[str | None]) -> pd.DataFrame:
    """Identifiers, phone numbers and codes in these text columns masked but for their last four
    characters (same length, so the `pii` offsets still point at them)."""
    for column in (c for c in columns if c and c in frame):
        frame[column] = frame[column].map(lambda v: redact(v) if isinstance(v, str) else v)
    return frame


@dataclass(frozen=True)
class ChunkSettings:
    text_col: str
    context_col: str | None
    id_col: str | None
    encoding: str
    redact: bool


def score_part(
    scorer: Scorer, frame: pd.DataFrame, settings: ChunkSettings, first_row: int
) -> tuple[pd.DataFrame, JobCounts]:
    """One chunk scored (and redacted when asked), with its error counts."""
    scored = score_chunk(
        scorer, frame, settings.text_col, settings.context_col, settings.id_col, first_row, settings.encoding
    )
    if settings.redact:
        scored = redact_columns(scored, [settings.text_col, settings.context_col])
    errors = [e for e in scored["error"] if isinstance(e, str)]
    counts = JobCounts(
        scored=len(scored) - len(errors),
        errors=len(errors),
        missing_text=sum(e.startswith(f"no {settings.text_col!r} value") for e in errors),
        undecodable=sum(e.startswith("text is not valid") for e in errors),
        columns=[c for c in frame.columns if c != "_parse_error"],
    )
    return scored, counts


# ---------------------------------------------------------------- worker processes

_worker_scorer: Scorer | None = None


def _start_worker(source: str, options: dict) -> None:
    global _worker_scorer
    _worker_scorer = Scorer.load(source, **options)


def _score_in_worker(frame: pd.DataFrame, settings: ChunkSettings, first_row: int, part: Path) -> JobCounts:
    scored, counts = score_part(_worker_scorer, frame, settings, first_row)
    write_part(scored, part, file_format(str(part)))
    return counts


class PartWriter:
    """Scores chunks into part files: in this process (`workers` 1), or in N worker processes, each
    with its own copy of the model and cores/N threads. Parts are named by chunk number, so the
    joined output is in input order whatever order the workers finish in; at most 2N chunks are in
    flight, so memory stays flat."""

    def __init__(self, job: ScoreJob, counts: JobCounts, progress: Progress) -> None:
        self.job, self.counts, self.progress = job, counts, progress
        self.task = None
        self.pool = None
        self.pending: list = []

    def __enter__(self) -> PartWriter:
        if self.job.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            from ml.modeling.backends import cpu_threads

            scorer = self.job.scorer
            options = scorer.load_options() | {"threads": max(1, cpu_threads() // self.job.workers)}
            self.pool = ProcessPoolExecutor(
                self.job.workers,
                mp_context=multiprocessing.get_context("spawn"),  # ONNX Runtime's threads do not survive fork
                initializer=_start_worker,
                initargs=(scorer.source, options),
            )
        return self

    def submit(self, frame: pd.DataFrame, first_row: int, part: Path) -> None:
        settings = self.job.chunk_settings()
        if self.pool is None:
            scored, counts = score_part(self.job.scorer, frame, settings, first_row)
            write_part(scored, part, file_format(str(part)))
            self._done(counts, len(frame))
            return
        self.pending.append((self.pool.submit(_score_in_worker, frame, settings, first_row, part), len(frame)))
        while len(self.pending) >= 2 * self.job.workers:
            self._collect_oldest()

    def _collect_oldest(self) -> None:
        future, rows = self.pending.pop(0)
        self._done(future.result(), rows)

    def _done(self, counts: JobCounts, rows: int) -> None:
        self.counts.add(counts)
        self.progress.update(self.task, advance=rows)

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if kind is None:
                while self.pending:
                    self._collect_oldest()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------- one job per output


class OutputLock:
    """An exclusive, non-blocking flock on `.OUTPUT.lock`; the kernel drops it if the process dies."""

    def __init__(self, output: Path) -> None:
        self.path = output.with_name(f".{output.name}.lock")
        self.descriptor: int | None = None

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            replaced = os.fstat(descriptor).st_ino != _inode(self.path)  # unlinked by a run that just ended
        except BlockingIOError:
            replaced = None
        if replaced is not False:
            holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(descriptor)
            raise JobError(
                f"another `replyqa score` ({holder}) is writing {self.path.name[1:-5]}; "
                "wait for it to finish or choose another output"
            )
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"pid {os.getpid()}".encode(), 0)
        self.descriptor = descriptor
        return self

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)  # unlink before unlocking, so a waiting run sees a new file
        os.close(self.descriptor)


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def content_hash(path: str) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        encoding: str | None = None,
        redact: bool = False,
        workers: int = 1,
    ) -> None:
        self.scorer, self.source, self.output = scorer, source, output
        self.workers = workers
        self.text_col, self.context_col, self.id_col = text_col, context_col, id_col
        self.chunk_rows = chunk_rows
        self.redact = redact
        self.encoding = detect_encoding(source, encoding)

    def run(self, resume: bool = False, show_progress: bool = True) -> JobCounts:
        """Score the whole input. Raises JobError (nothing written) when the input cannot be read as
        asked, and NothingScored (after writing the output) when no row could be scored."""
        self._check_text_column()
        if self.output == "-":
            counts = self._run_to_stdout()
        else:
            output = Path(self.output)
            with OutputLock(output):
                counts = self._run_to_file(output, resume, show_progress)
        self._check_something_scored(counts)
        return counts

    def manifest(self) -> dict:
        """Everything that decides the output: a resumed run must match it exactly."""
        source = Path(self.source)
        return {
            "input": str(source.resolve()),
            "input_bytes": source.stat().st_size,
            "input_hash": content_hash(self.source),
            "encoding": self.encoding,
            "chunk_rows": self.chunk_rows,
            "columns": {"text": self.text_col, "context": self.context_col, "id": self.id_col},
            "model": {"source": self.scorer.source, "name": self.scorer.info.name, "version": self.scorer.info.version},
            "runtime": self.scorer.runtime,  # onnx-int8 and openvino-bf16 differ in a few decisions
            "thresholds": self.scorer.info.thresholds,
            "limits": {"max_chars": self.scorer.max_chars, "max_context_chars": self.scorer.max_context_chars},
            "redact": self.redact,
        }

    def _run_to_file(self, output: Path, resume: bool, show_progress: bool) -> JobCounts:
        kind = file_format(self.output)
        parts_dir = output.with_name(f".{output.name}.parts")
        done = self._prepare_parts(parts_dir, self.manifest(), resume)
        counts = JobCounts()
        try:
            with _progress(show_progress) as progress, PartWriter(self, counts, progress) as writer:
                task = progress.add_task("scoring", total=count_rows(self.source, self.encoding))
                writer.task = task
                for index, frame in enumerate(self._chunks()):
                    if index < done:
                        counts.resumed_rows += len(frame)
                        progress.update(task, advance=len(frame))
                    else:
                        writer.submit(frame, counts.rows, parts_dir / f"part-{index:06d}.{kind}")
                    counts.rows += len(frame)
        except BaseException:
            if not any(parts_dir.glob(f"part-*.{kind}")):  # nothing to resume from: leave nothing behind
                shutil.rmtree(parts_dir, ignore_errors=True)
            raise
        join_parts(sorted(parts_dir.glob(f"part-*.{kind}")), output, kind, SCORE_COLUMNS)
        shutil.rmtree(parts_dir)
        return counts

    def _chunks(self) -> Iterator[pd.DataFrame]:
        return read_chunks(self.source, self.chunk_rows, self.encoding, RESERVED_COLUMNS)

    def chunk_settings(self) -> ChunkSettings:
        return ChunkSettings(self.text_col, self.context_col, self.id_col, self.encoding, self.redact)

    def _score(self, frame: pd.DataFrame, counts: JobCounts) -> pd.DataFrame:
        scored, chunk_counts = score_part(self.scorer, frame, self.chunk_settings(), counts.rows)
        counts.add(chunk_counts)
        return scored

    def _prepare_parts(self, parts_dir: Path, manifest: dict, resume: bool) -> int:
        """Number of finished parts to keep: those of an interrupted run of the same job when resuming."""
        manifest_path = parts_dir / "manifest.json"
        if resume and manifest_path.exists():
            if json.loads(manifest_path.read_text()) != manifest:
                raise JobError(
                    f"cannot resume: {parts_dir} belongs to another input (or the input changed), "
                    "other options or another model; run without --resume to start again"
                )
            for leftover in parts_dir.glob("*.tmp"):
                leftover.unlink()
            return len(list(parts_dir.glob(f"part-*.{file_format(self.output)}")))
        shutil.rmtree(parts_dir, ignore_errors=True)
        parts_dir.mkdir(parents=True)
        manifest_path.write_text(json.dumps(manifest))
        return 0

    def _run_to_stdout(self) -> JobCounts:
        counts = JobCounts()
        for frame in self._chunks():
            scored = self._score(frame, counts)
            sys.stdout.write(scored.to_json(orient="records", lines=True, force_ascii=False))
            sys.stdout.flush()
            counts.rows += len(frame)
        return counts

    def _check_text_column(self) -> None:
        columns = None if self.source == "-" else fixed_columns(self.source, self.encoding)
        if columns is not None and self.text_col not in columns:
            raise JobError(
                f"{self.source}: no column {self.text_col!r}; columns found: {', '.join(map(str, columns)) or 'none'} "
                "(choose one with --text-col)"
            )

    def _check_something_scored(self, counts: JobCounts) -> None:
        if counts.rows == 0 or counts.scored or counts.resumed_rows:
            return
        if counts.missing_text == counts.rows:
            found = ", ".join(map(str, counts.columns)) or "none"
            raise NothingScored(
                f"no row has a {self.text_col!r} value; columns found: {found} (choose one with --text-col)"
            )
        if counts.undecodable + counts.missing_text == counts.rows:
            raise NothingScored(f"no row could be read as {self.encoding}; try --encoding gbk, gb18030 or utf-16")


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.speed:>7.0f} rows/s" if enabled else ""),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )
