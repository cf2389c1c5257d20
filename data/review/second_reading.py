"""A blind second reading of a seeded sample of labelled records, and the agreement it reaches.

    python data/review/second_reading.py sample data/labelled/v3*.jsonl --share 0.1 \
        --out data/review/v3_second_reading_blind.jsonl
    (a reader who sees only the guide and the blind file writes <name>_labels.jsonl: id, labels, reason)
    python data/review/second_reading.py agreement data/labelled/v3*.jsonl data/review/v3_second_reading_labels.jsonl

`sample` writes id, text, context, scenario and channel only (no labels, notes or pair ids);
`agreement` prints Cohen's kappa, raw agreement and the disagreements per label, and writes the
disagreements (first and second label) beside the labels file for adjudication.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from sklearn.metrics import cohen_kappa_score

from ml.data.records import expand_paths, load_records
from ml.labels import LABELS


def sample(files: list[str], share: float, out: Path, seed: int) -> None:
    records = load_records(expand_paths(files)).records
    picked = sorted(random.Random(seed).sample(records, round(share * len(records))), key=lambda r: r.id)
    with out.open("w", encoding="utf-8") as handle:
        for r in picked:
            row = {"id": r.id, "text": r.text, "context": r.context, "scenario": r.scenario, "channel": r.channel}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{out}: {len(picked)} of {len(records)} records")


def agreement(files: list[str], second: Path) -> None:
    first = {r.id: r for r in load_records(expand_paths(files)).records}
    readings = [json.loads(line) for line in second.read_text(encoding="utf-8").splitlines() if line.strip()]
    disagreements = []
    print("| label | Cohen's kappa | raw agreement | disagreements |\n|---|---|---|---|")
    for label in LABELS:
        a = [getattr(first[r["id"]].labels, label) for r in readings]
        b = [r["labels"][label] for r in readings]
        differ = [r for r, x, y in zip(readings, a, b) if x != y]
        kappa = cohen_kappa_score(a, b)
        print(f"| {label} | {kappa:.3f} | {1 - len(differ) / len(readings):.1%} | {len(differ)} |")
        for r in differ:
            record = first[r["id"]]
            disagreements.append(
                {
                    "id": r["id"],
                    "label": label,
                    "first": getattr(record.labels, label),
                    "second": r["labels"][label],
                    "reason": r.get("reason", ""),
                    "text": record.text,
                    "context": record.context,
                }
            )
    out = second.with_name(second.name.replace("_labels", "_disagreements"))
    out.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in disagreements), encoding="utf-8")
    print(f"{len(readings)} records read twice; {len(disagreements)} disagreements in {out}")


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("sample")
    one.add_argument("files", nargs="+")
    one.add_argument("--share", type=float, default=0.1)
    one.add_argument("--seed", type=int, default=13)
    one.add_argument("--out", type=Path, required=True)
    two = commands.add_parser("agreement")
    two.add_argument("files", nargs="+")
    two.add_argument("second", type=Path)
    args = parser.parse_args()
    if args.command == "sample":
        sample(args.files, args.share, args.out, args.seed)
    else:
        agreement(args.files, args.second)


if __name__ == "__main__":
    main()
