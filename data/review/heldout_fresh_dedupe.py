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

from pathlib import Path

from v8_dedupe import drop_and_log  # data/review/, the script's own folder

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

    if not dropped:
        print("nothing to drop; data/heldout_fresh and the log are left as they are")  # already deduplicated
        return
    drop_and_log(fresh, dropped, sorted(FRESH.glob("*.jsonl")), LOG)
    print(f"dropped {len(dropped)} of {len(fresh)} records; log: {LOG}")


if __name__ == "__main__":
    main()
