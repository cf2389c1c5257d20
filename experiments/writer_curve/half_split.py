"""Half of each training slice's train-split records (a different random half per draw), for the
BERT's point on the volume curve (README.md here). Writes train_half_draw13.jsonl and
train_half_draw14.jsonl beside this file (not committed; this script rebuilds them).

    python experiments/writer_curve/half_split.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ml.data.records import writer_slice

HERE = Path(__file__).parent


def main() -> None:
    lines = Path("data/split/train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    by_slice: dict[str, list[int]] = {}
    for index, line in enumerate(lines):
        by_slice.setdefault(writer_slice(json.loads(line)["id"]), []).append(index)
    for draw in (13, 14):
        rng = random.Random(draw)
        kept = sorted(i for rows in by_slice.values() for i in rng.sample(rows, round(len(rows) / 2)))
        (HERE / f"train_half_draw{draw}.jsonl").write_text("".join(lines[i] for i in kept), encoding="utf-8")
        print(draw, len(kept))


if __name__ == "__main__":
    main()
