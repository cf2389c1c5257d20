"""Join the annotators' labels (one JSON line per id: labels, boundary, notes) with the drawn turns
into data/ood_fresh/crosswoz_sys_fresh.jsonl, in the project's record format, noise kinds detected
as `replyqa data stats` detects them.

    python data/ood_fresh/assemble.py /tmp/oodf/sample.jsonl labels_part1.jsonl labels_part2.jsonl ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ml.data.records import Record
from ml.data.stats import noise_kinds

HERE = Path(__file__).parent


def main(sample: Path, label_files: list[str]) -> None:
    labels = {}
    for path in label_files:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            labels[row["id"]] = row
    turns = [json.loads(line) for line in sample.read_text(encoding="utf-8").splitlines()]
    missing = [t["id"] for t in turns if t["id"] not in labels]
    if missing:
        raise SystemExit(f"no labels for {len(missing)} turns, e.g. {missing[:5]}")
    out = HERE / "crosswoz_sys_fresh.jsonl"
    with out.open("w", encoding="utf-8") as handle:
        for turn in turns:
            given = labels[turn["id"]]
            record = Record(
                **turn,
                scenario="other",
                channel="chat",
                labels=given["labels"],
                boundary=bool(given.get("boundary", False)),
                notes=given.get("notes", ""),
            )
            record.noise = sorted(noise_kinds(record))
            handle.write(record.model_dump_json() + "\n")
    print(f"{out}: {len(turns)} records")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
