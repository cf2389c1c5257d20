"""Drop the data v8 records that repeat a text the project already has (one-off, 2026-12-01).

Each v8 writer's file had no near-duplicates of its own, but short stock replies (您好，请问有什么可以帮您？,
这个不归我们管) recurred across writers and with v1-v6. A v8 record is dropped, in id order, when its text
is a near-duplicate (the corpus rule: rapidfuzz ratio >= 0.85 on normalised text) of a record in
data/labelled/ or of an earlier kept v8 record that is not its minimal-pair partner, or comes within 0.80
of any text in the evaluation sets (held-out writers, probes, both off-domain sets) or shares a
16-character run with one (the v6 and v7 checks), so that no evaluation text or formula is trained on.
A dropped record's pair partner keeps its labels and loses the pair id. Every drop is logged.

    python data/review/v8_dedupe.py    # rewrites data/v8/*.jsonl, writes data/review/v8_dedupe_log.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path

from ml.data.records import expand_paths, load_records, near_duplicate_pairs

V8 = Path("data/v8")
EVALUATION = ["data/heldout_writers", "data/probes", "data/ood", "data/ood_fresh"]
LOG = Path("data/review/v8_dedupe_log.jsonl")


def evaluation_texts() -> list[tuple[str, str]]:
    texts = []
    for path in expand_paths(EVALUATION):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts.append((f"{path}:{row.get('id', '')}", row["text"]))
    return texts


def shares_formula(text: str, runs: set[str], size: int = 16) -> bool:
    return any(text[i : i + size] in runs for i in range(len(text) - size + 1))


def drop_and_log(records: list, dropped: dict[str, str], files: list[Path], log_path: Path) -> set[str]:
    """Log each dropped record with what it matched, remove it from its file, and clear the pair id
    of its minimal-pair partner; returns the pair ids that lost a member. (Also used by
    heldout_fresh_dedupe.py.)"""
    partners = {r.pair for r in records if r.id in dropped and r.pair}
    with log_path.open("w", encoding="utf-8") as log:
        for record in records:
            if record.id in dropped:
                entry = {"id": record.id, "text": record.text, "matches": dropped[record.id]}
                log.write(json.dumps(entry, ensure_ascii=False) + "\n")
    for path in files:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        out = []
        for row in rows:
            if row["id"] in dropped:
                continue
            if row["pair"] in partners:
                row["pair"] = ""
            out.append(json.dumps(row, ensure_ascii=False))
        path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return partners


def main() -> None:
    kept = load_records(expand_paths(["data/labelled"])).records
    new = sorted(load_records(expand_paths([str(V8)])).records, key=lambda r: r.id)
    evaluation = evaluation_texts()
    texts = [r.text for r in kept] + [r.text for r in new] + [t for _, t in evaluation]
    owner = (
        [("labelled", r) for r in kept] + [("v8", r) for r in new] + [("evaluation", name) for name, _ in evaluation]
    )
    first_new, first_eval = len(kept), len(kept) + len(new)
    links: dict[int, list[int]] = {}
    for a, b, score in near_duplicate_pairs(texts, 0.80):
        if score < 0.85 and max(a, b) < first_eval:
            continue  # the corpus rule between training records; 0.80 only against evaluation texts
        links.setdefault(a, []).append(b)
        links.setdefault(b, []).append(a)

    runs = {text[i : i + 16] for _, text in evaluation for i in range(len(text) - 15)}
    dropped: dict[str, str] = {
        r.id: "evaluation: a shared 16-character run" for r in new if shares_formula(r.text, runs)
    }
    for i in range(first_new, first_eval):
        record = owner[i][1]
        if record.id in dropped:
            continue
        for j in links.get(i, []):
            kind, other = owner[j]
            if kind == "v8" and (j > i or other.id in dropped or (record.pair and other.pair == record.pair)):
                continue
            dropped[record.id] = other if kind == "evaluation" else f"{kind}:{other.id}"
            break

    if not dropped:
        print("nothing to drop; data/v8 and the log are left as they are")  # the files are already deduplicated
        return
    partners = drop_and_log(new, dropped, sorted(V8.glob("*.jsonl")), LOG)
    by_kind = {k: sum(1 for v in dropped.values() if v.startswith(k)) for k in ("labelled", "v8")}
    evaluation_drops = len(dropped) - sum(by_kind.values())
    print(f"dropped {len(dropped)} of {len(new)} v8 records {by_kind}, evaluation {evaluation_drops}; ", end="")
    print(f"{len(partners)} pairs lost a member")


if __name__ == "__main__":
    main()
