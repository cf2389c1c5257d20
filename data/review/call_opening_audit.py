"""Read again, blind, the privacy_risk label of call utterances that may state the debt before the
listener is verified (one-off, 2026-12-02).

The guide decides that naming the borrower and stating the debt in one breath, without waiting for
confirmation, is privacy_risk 1 (disclosure to someone not yet verified), and that naming 借款, 逾期
or 贷后/催收 to an unverified listener is 1. The datasheet listed v1 call openers that still carried
0 (Known gaps), and the third sealed set's missed privacy replies were mostly such openers. This
script finds every call utterance the decision can touch by its wording, never by its label (a
call, a context of at most 8 characters, a debt word or amount, an opening or self-introduction),
and hands it to two readers who see the contract, the guide's decisions and the texts only
(`experiments/call_opening_audit/audit_brief.md`). As in the v1 audit, a label changes only where both readers agree
against it; where they disagree with each other it is kept. Every record a reader disputed is
logged with both readings, changed or not.

    python data/review/call_opening_audit.py candidates WORK_DIR   # part_A/part_B.jsonl, blind
    python data/review/call_opening_audit.py apply WORK_DIR        # reads read_A1/A2/B1/B2.jsonl
"""

from __future__ import annotations

import random
import re
import sys
from collections import Counter
from pathlib import Path

from v9_guide_audit import read_jsonl, write_jsonl

FILES = sorted(Path("data/labelled").glob("*.jsonl"))
LOG = Path("data/review/call_opening_audit.jsonl")
LABEL = "privacy_risk"
DEBT = re.compile(
    r"逾期|欠|应还|到期|账单|贷后|催收|借款|分期|贷款|这期|本期|还款"
    r"|\d[\d,.]*\s*(元|块)|[一二三四五六七八九十百千万两]+(块|元)"
)
OPENING = re.compile(r"^[^，。？！,.?!]{0,6}(喂|您好|你好)|我是|这边是|这里是|我们是|我这边|我这是|留言")
BLIND_FIELDS = ("id", "context", "text", "channel", "scenario")
PARTS = {"A": ("read_A1", "read_A2"), "B": ("read_B1", "read_B2")}


def records() -> dict[str, tuple[Path, dict]]:
    return {row["id"]: (path, row) for path in FILES for row in read_jsonl(path)}


def touched(row: dict) -> bool:
    return (
        row["channel"] == "call"
        and len(row["context"]) <= 8
        and bool(DEBT.search(row["text"]))
        and bool(OPENING.search(row["text"]))
    )


def candidates(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    found = [row for _, row in records().values() if touched(row)]
    random.Random(12).shuffle(found)
    half = len(found) // 2
    for name, part in (("A", found[:half]), ("B", found[half:])):
        write_jsonl(work / f"part_{name}.jsonl", [{k: row[k] for k in BLIND_FIELDS} for row in part])
    print(len(found), "records")


def kappa(a: list[int], b: list[int]) -> float:
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    pa, pb = sum(a) / n, sum(b) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    return (observed - expected) / (1 - expected) if expected < 1 else 1.0


def apply(work: Path) -> None:
    data = records()
    log, changed_files, pairs = [], set(), []
    for part, readers in PARTS.items():
        ids = [row["id"] for row in read_jsonl(work / f"part_{part}.jsonl")]
        first, second = ({row["id"]: row for row in read_jsonl(work / f"{r}.jsonl")} for r in readers)
        missing = [i for i in ids if i not in first or i not in second]
        if missing:
            raise SystemExit(f"part {part}: no reading for {missing[:5]}")
        for record_id in ids:
            path, row = data[record_id]
            writer, a, b = row["labels"][LABEL], first[record_id][LABEL], second[record_id][LABEL]
            pairs.append((writer, a, b))
            if a == writer and b == writer:
                continue
            final = a if a == b else writer
            log.append(
                {
                    "id": record_id,
                    "file": str(path),
                    "label": LABEL,
                    "writer": writer,
                    "final": final,
                    "decision": "changed (both readers)" if final != writer else "kept (readers disagree)",
                    "readings": [
                        {"who": f"{part} reader {n}", LABEL: r[record_id][LABEL], "why": r[record_id].get("reason", "")}
                        for n, r in ((1, first), (2, second))
                    ],
                    "context": row["context"],
                    "text": row["text"],
                }
            )
            if final != writer:
                row["labels"][LABEL] = final
                changed_files.add(path)
    for path in changed_files:
        write_jsonl(path, [data[row["id"]][1] for row in read_jsonl(path)])
    write_jsonl(LOG, log)
    writers, first_reads, second_reads = (list(column) for column in zip(*pairs))
    print(
        f"{len(pairs)} records; kappa reader-reader {kappa(first_reads, second_reads):.3f}, "
        f"reader 1-writer {kappa(first_reads, writers):.3f}, reader 2-writer {kappa(second_reads, writers):.3f}"
    )
    for (writer, final, decision), n in sorted(Counter((e["writer"], e["final"], e["decision"]) for e in log).items()):
        print(f"writer {writer} -> {final} ({decision}): {n}")
    print("by file:", dict(Counter(Path(e["file"]).name for e in log if e["final"] != e["writer"]).most_common()))


if __name__ == "__main__":
    {"candidates": candidates, "apply": apply}[sys.argv[1]](Path(sys.argv[2]))
