"""`replyqa score --engine ray`: archives of many files scored on a Ray cluster.

Ray Data schedules the work: the input files (a file, a folder, or a glob) become a dataset of
work items, and `map_batches` runs them on an actor pool whose actors each load the Scorer once.
The unit of work is one input file, scored chunk by chunk exactly as the local engine scores a file
(same columns, same per-row errors), so the two engines agree row for row. Guarantees:
- one Parquet file per input file, `OUTPUT/<input name>.parquet`, its rows in input order, with
  `_input_file` (the input's path) and `_row` (1-based row number in that file) added;
- resume at file granularity: an output that exists is complete (written to a temporary name and
  renamed), so a rerun skips it; `--no-resume` scores everything again;
- a single very large file is one work item: partition big archives into many files.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path
from typing import Any

from ml.data.tabular import detect_encoding, join_parts, read_chunks, write_part
from ml.serving.batch import RESERVED_COLUMNS, SCORE_COLUMNS, ChunkSettings, JobCounts, score_part

SUPPORTED = (".csv", ".jsonl", ".json", ".parquet")


def input_files(source: str) -> list[Path]:
    """A file, every supported file in a folder (recursively), or a glob; sorted."""
    path = Path(source)
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.suffix in SUPPORTED and p.is_file()]
    elif path.exists():
        files = [path]
    else:
        files = [Path(p) for p in glob.glob(source, recursive=True) if Path(p).suffix in SUPPORTED]
    if not files:
        raise ValueError(f"{source}: no CSV, JSONL or Parquet files found")
    return sorted(files)


def output_for(file: Path, output_dir: Path, inputs: list[Path]) -> Path:
    """OUTPUT/<name>.parquet; files of the same name in different folders keep their relative path."""
    root = Path(os.path.commonpath([p.parent for p in inputs])) if len(inputs) > 1 else file.parent
    relative = file.relative_to(root)
    return output_dir / relative.with_name(relative.name + ".parquet")


def score_file(scorer, file: Path, output: Path, settings: ChunkSettings, chunk_rows: int, encoding) -> JobCounts:
    """One input file through the local engine's chunk scoring and part files, joined into one
    Parquet file (written whole, then renamed into place)."""
    counts = JobCounts()
    file_settings = ChunkSettings(**{**settings.__dict__, "encoding": detect_encoding(str(file), encoding)})
    parts_dir = output.with_name(f".{output.name}.parts")
    shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir(parents=True)
    reserved = (*RESERVED_COLUMNS, "_row", "_input_file")
    for index, frame in enumerate(read_chunks(str(file), chunk_rows, file_settings.encoding, reserved)):
        scored, chunk_counts = score_part(scorer, frame, file_settings, counts.rows)
        scored.insert(0, "_row", range(counts.rows + 1, counts.rows + len(frame) + 1))
        scored.insert(0, "_input_file", str(file))
        write_part(scored, parts_dir / f"part-{index:06d}.parquet", "parquet")
        counts.add(chunk_counts)
        counts.rows += len(frame)
    join_parts(sorted(parts_dir.glob("part-*.parquet")), output, "parquet", SCORE_COLUMNS)
    shutil.rmtree(parts_dir)
    return counts


class FileScorer:
    """A Ray actor: loads the Scorer once, then scores whole files."""

    def __init__(self, source: str, options: dict, settings: dict, chunk_rows: int, encoding: str | None) -> None:
        from ml.modeling.scorer import Scorer

        self.scorer = Scorer.load(source, **options)
        self.settings = ChunkSettings(**settings)
        self.chunk_rows, self.encoding = chunk_rows, encoding

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        results: dict[str, list] = {"input": [], "rows": [], "scored": [], "errors": []}
        for file, output in zip(batch["input"], batch["output"]):
            counts = score_file(self.scorer, Path(file), Path(output), self.settings, self.chunk_rows, self.encoding)
            for key, value in (
                ("input", file),
                ("rows", counts.rows),
                ("scored", counts.scored),
                ("errors", counts.errors),
            ):
                results[key].append(value)
        return results


def score_on_ray(
    scorer,
    source: str,
    output_dir: str,
    settings: ChunkSettings,
    chunk_rows: int = 2000,
    encoding: str | None = None,
    address: str | None = None,
    num_actors: int = 2,
    resume: bool = True,
) -> dict[str, int]:
    """Score every input file on Ray (`address`: None starts a local cluster, "auto" or
    "ray://host:10001" joins one); return the job's counts. `scorer` names the model and options."""
    import ray

    files = input_files(source)
    out = Path(output_dir)
    if out.suffix in SUPPORTED:
        raise ValueError(f"{output_dir}: with --engine ray the output is a folder (one Parquet file per input file)")
    todo = [(f, output_for(f, out, files)) for f in files]
    done = [f for f, o in todo if resume and o.exists()]
    todo = [(f, o) for f, o in todo if not (resume and o.exists())]
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    counts = {"files": len(files), "resumed_files": len(done), "rows": 0, "scored": 0, "errors": 0}
    if not todo:
        return counts
    items = ray.data.from_items([{"input": str(f), "output": str(o)} for f, o in todo], override_num_blocks=len(todo))
    threads = max(1, int(ray.cluster_resources().get("CPU", 1)) // max(1, num_actors))
    scored = items.map_batches(
        FileScorer,
        fn_constructor_kwargs={
            "source": scorer.source,
            "options": scorer.load_options() | {"threads": threads},
            "settings": settings.__dict__,
            "chunk_rows": chunk_rows,
            "encoding": encoding,
        },
        batch_size=1,
        concurrency=num_actors,
        num_cpus=1,
    )
    for row in scored.iter_rows():
        for key in ("rows", "scored", "errors"):
            counts[key] += int(row[key])
    return counts
