"""Write an N-row synthetic archive for throughput and memory benchmarks of `replyqa score`.

Rows are the labelled corpus's replies and contexts (data/labelled), each drawn at random and, half
of the time, perturbed the way other channels write (punctuation width or removal, ASR spaces, an
emoji, Traditional characters; ml/data/augment.py), with agents, teams, conversation ids and two
weeks of timestamps. Parquet (or CSV) by extension; `--files K` splits it into K files in a folder
(for `--engine ray`).

    python experiments/benchmarks/make_archive.py 1000000 /tmp/archive_1m.parquet
    python experiments/benchmarks/make_archive.py 1000000 /tmp/archive_1m/ --files 20
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data.augment import NOISE
from ml.data.records import expand_paths, load_records


def archive(rows: int, seed: int = 13) -> pd.DataFrame:
    records = load_records(expand_paths(["data/labelled"])).records
    rng, generator = random.Random(seed), np.random.default_rng(seed)
    picks = generator.integers(0, len(records), rows)
    kinds = sorted(NOISE)
    texts, contexts = [], []
    for index in picks:
        record = records[index]
        text = record.text
        if rng.random() < 0.5:
            text = NOISE[rng.choice(kinds)](text, rng) or record.text
        texts.append(text)
        contexts.append(record.context)
    seconds = generator.integers(0, 14 * 24 * 3600, rows)
    stamps = pd.Timestamp("2026-11-16T00:00:00+08:00") + pd.to_timedelta(np.sort(seconds), unit="s")
    return pd.DataFrame(
        {
            "id": [f"b-{i:08d}" for i in range(rows)],
            "conversation_id": [f"bc-{i // 6:07d}" for i in range(rows)],
            "turn": [i % 6 + 1 for i in range(rows)],
            "agent_id": [f"A{a:03d}" for a in generator.integers(0, 200, rows)],
            "team": [f"T{t:02d}" for t in generator.integers(0, 12, rows)],
            "timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
            "context": contexts,
            "text": texts,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("output")
    parser.add_argument("--files", type=int, default=1)
    args = parser.parse_args()
    frame = archive(args.rows)
    if args.files == 1:
        writer = frame.to_parquet if args.output.endswith(".parquet") else frame.to_csv
        writer(args.output, index=False)
        return
    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)
    for k, part in enumerate(np.array_split(np.arange(args.rows), args.files)):
        frame.iloc[part].to_parquet(folder / f"part-{k:03d}.parquet", index=False)


if __name__ == "__main__":
    main()
