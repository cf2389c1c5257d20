"""Read again, blind, every record the guide's v9 decisions can touch (one-off, 2026-12-01).

The v8 writers decided four questions the guide left open; `data/GUIDELINES.md` now settles them
(tagged "v9 guide"). This script finds the records each question can touch by their wording, never by
their label, and hands them to readers who see the contract, the amended guide and the texts only:

| question | label read | records |
|---|---|---|
| q1: plan granted on request vs plan answering a hardship | empathetic | every reply naming a plan (v1-v6 + v8) |
| q2: 你好 as a courtesy marker | polite | every reply with 你好 (v1-v6 + v8) |
| q3: pushing the borrower to borrow elsewhere | threatening | every reply sending the borrower to borrow (v1-v6 + v8) |
| q4: courteous reminders vs steps meant to frighten | threatening | every v8 reply with a consequence/contact word |

Where a first reader disagrees with the writer, a second blind reader reads the record; the majority
of the writer and the readings stands (a record two questions touch is read twice; a tie keeps the
writer's label). Every disagreement is logged with every reading, changed or not.

    python data/review/v9_guide_audit.py candidates WORK_DIR   # blind files for the first readers
    python data/review/v9_guide_audit.py disputes WORK_DIR     # blind files of the disagreements, for second readers
    python data/review/v9_guide_audit.py apply WORK_DIR        # rewrites the data files, writes the log
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

FILES = sorted(Path("data/labelled").glob("*.jsonl")) + sorted(Path("data/v8").glob("*.jsonl"))
LOG = Path("data/review/v9_guide_audit.jsonl")
QUESTIONS = {  # name: (label, wording that makes the question apply, v8 only)
    "q1": ("empathetic", r"分期|延期|减免|停息|展期|缓[一几两]|宽限|延后", False),
    "q2": ("polite", r"你好", False),
    "q3": ("threatening", r"(找|去|跟|向|问).{0,8}(借|贷|套现|信用卡|花呗|借呗|口子)|以贷养贷|借新还旧|拆东墙", False),
    "q4": (
        "threatening",
        r"征信|起诉|诉讼|上门|法院|律师|外访|紧急联系人|单位|家里人|通讯录|继续联系|再联系|每天",
        True,
    ),
}
CHUNKS = {"q1": 4}  # q1 is read by four readers, a quarter each
BLIND_FIELDS = ("id", "scenario", "channel", "context", "text")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def records() -> dict[str, tuple[Path, dict]]:
    return {row["id"]: (path, row) for path in FILES for row in read_jsonl(path)}


def candidates(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    every = list(records().values())
    for name, (_, wording, v8_only) in QUESTIONS.items():
        found = [row for path, row in every if re.search(wording, row["text"]) and (not v8_only or "v8" in path.parts)]
        rng.shuffle(found)
        size = -(-len(found) // CHUNKS.get(name, 1))
        for i in range(CHUNKS.get(name, 1)):
            part = "abcd"[i] if name in CHUNKS else ""
            write_jsonl(
                work / f"{name}{part}.jsonl",
                [{k: row[k] for k in BLIND_FIELDS} for row in found[i * size : (i + 1) * size]],
            )
        print(name, len(found))


def readings(work: Path, prefix: str) -> dict[str, dict[str, dict]]:
    """{question: {id: reading}} from the readers' files `<prefix>_<question><part>.jsonl`."""
    out: dict[str, dict[str, dict]] = {name: {} for name in QUESTIONS}
    for path in sorted(work.glob(f"{prefix}_q*.jsonl")):
        question = path.stem.split("_")[-1][:2]
        out[question] |= {row["id"]: row for row in read_jsonl(path)}
    return out


def disputes(work: Path) -> None:
    data = records()
    first = readings(work, "out")
    for name, (label, _, _) in QUESTIONS.items():
        blind = [
            {k: data[i][1][k] for k in BLIND_FIELDS}
            for i, r in first[name].items()
            if r[label] != data[i][1]["labels"][label]
        ]
        write_jsonl(work / f"dispute_{name}.jsonl", blind)
        print(name, label, f"{len(blind)} of {len(first[name])} disagree with the writer")


def apply(work: Path) -> None:
    """Votes per (record, label): the writer's, every first reading (a record two questions touch is
    read twice) and the second reading of a dispute; the majority stands, a tie keeps the writer's."""
    data = records()
    first, second = readings(work, "out"), readings(work, "second")
    votes: dict[tuple[str, str], list[tuple[str, int, str]]] = {}
    for name, (label, _, _) in QUESTIONS.items():
        for record_id, reading in first[name].items():
            votes.setdefault((record_id, label), []).append(
                (f"{name} reader 1", reading[label], reading.get("why", ""))
            )
            if record_id in second[name]:
                tie = second[name][record_id]
                votes[(record_id, label)].append((f"{name} reader 2", tie[label], tie.get("why", "")))
    log, changed_files = [], set()
    for (record_id, label), readers in votes.items():
        path, row = data[record_id]
        writer = row["labels"][label]
        if all(value == writer for _, value, _ in readers):
            continue
        ones = sum(value for _, value, _ in readers) + writer
        final = writer if 2 * ones == len(readers) + 1 else int(2 * ones > len(readers) + 1)
        log.append(
            {
                "id": record_id,
                "file": str(path),
                "label": label,
                "writer": writer,
                "final": final,
                "readings": [{"who": who, label: value, "why": why} for who, value, why in readers],
            }
        )
        if final != writer:
            row["labels"][label] = final
            changed_files.add(path)
    for path in changed_files:
        write_jsonl(path, [data[row["id"]][1] for row in read_jsonl(path)])
    write_jsonl(LOG, log)
    counts = Counter((e["label"], e["writer"], e["final"]) for e in log)
    for (label, writer, final), n in sorted(counts.items()):
        print(f"{label}: writer {writer} -> {final}: {n}")


if __name__ == "__main__":
    {"candidates": candidates, "disputes": disputes, "apply": apply}[sys.argv[1]](Path(sys.argv[2]))
