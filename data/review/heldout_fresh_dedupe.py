"""Drop the sealed held-out records that repeat a text the model was trained on (one-off, 2026-12-02).

A record of `data/heldout_fresh/` is dropped, in id order, when its text is a near-duplicate (the corpus
rule: rapidfuzz ratio >= 0.85 on normalised text) of a training record (`data/labelled/`, `data/negatives/`)
or of an earlier kept record of another fresh writer: short stock replies (好的, 稍等) recur between
writers, and a held-out score should not rest on texts the model has seen. The writers' own files
have no near-duplicates outside their minimal pairs (`replyqa data stats`). A dropped record's pair
partner keeps its labels and loses the pair id. Every drop is logged.

    python data/review/heldout_fresh_dedupe.py   # rewrites data/heldout_fresh/*.jsonl, logs the drops
"""

from __future__ import annotations

import json
from pathlib import Path

from ml.data.records import expand_paths, load_records, near_duplicate_pairs

FRESH = Path("data/heldout_fresh")
TRAINING = ["data/labelled", "data/negatives"]
LOG = Path("data/review/heldout_fresh_dedupe_log.jsonl")


def writer(record_id: str) -> str:
    return record_id.split("-")[0]


def main() -> None:
    training = load_records(expand_paths(TRAINING)).records
    fresh = sorted(load_records(expand_paths([str(FRESH)])).records, key=lambda r: r.id)
    texts = [r.text for r in training] + [r.text for r in fresh]
    first_fresh = len(training)
    links: dict[int, list[int]] = {}
    for a, b, _ in near_duplicate_pairs(texts, 0.85):
        links.setdefault(a, []).append(b)
        links.setdefault(b, []).append(a)

    dropped: dict[str, str] = {}
    for i, record in enumerate(fresh, start=first_fresh):
        for j in links.get(i, []):
            if j < first_fresh:
                dropped[record.id] = f"training:{training[j].id}"
                break
            other = fresh[j - first_fresh]
            if j < i and writer(other.id) != writer(record.id) and other.id not in dropped:
                dropped[record.id] = f"heldout_fresh:{other.id}"
                break

    partners = {r.pair for r in fresh if r.id in dropped and r.pair}
    with LOG.open("w", encoding="utf-8") as log:
        for record in fresh:
            if record.id in dropped:
                log.write(
                    json.dumps(
                        {"id": record.id, "text": record.text, "matches": dropped[record.id]}, ensure_ascii=False
                    )
                    + "\n"
                )
    for path in sorted(FRESH.glob("*.jsonl")):
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row["id"] in dropped:
                continue
            if row.get("pair") in partners:
                row["pair"] = ""
            kept.append(json.dumps(row, ensure_ascii=False))
        path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    print(f"dropped {len(dropped)} of {len(fresh)} records; log: {LOG}")


if __name__ == "__main__":
    main()
