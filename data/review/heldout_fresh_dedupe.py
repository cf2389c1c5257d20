"""Drop the sealed held-out records that repeat a text the model was trained on (run once per sealed set).

A record of a sealed set (`data/heldout_fresh/` to `data/heldout_fresh4/`) is
dropped, in id order, when its text is a near-duplicate (the corpus rule: rapidfuzz ratio >= 0.85 on
normalised text) of a training record (`data/labelled/`, `data/negatives/`), of a record of an earlier
sealed set, or of an earlier kept record of another writer of the same set: short stock replies (好的,
稍等) recur between writers, and a held-out score should not rest on texts the model has seen. The
writers' own files have no near-duplicates outside their minimal pairs (`replyqa data stats`). A
dropped record's pair partner keeps its labels and loses the pair id. Every drop is logged.

    python data/review/heldout_fresh_dedupe.py                       # data/heldout_fresh
    python data/review/heldout_fresh_dedupe.py data/heldout_fresh2   # rewrites its *.jsonl, logs the drops
    python data/review/heldout_fresh_dedupe.py data/heldout_fresh3
    python data/review/heldout_fresh_dedupe.py data/heldout_fresh4
"""

from __future__ import annotations

import sys
from pathlib import Path

from v8_dedupe import drop_and_log  # data/review/, the script's own folder

from ml.data.records import expand_paths, load_records, near_duplicate_pairs

# in the order they were written
SEALED = ["data/heldout_fresh", "data/heldout_fresh2", "data/heldout_fresh3", "data/heldout_fresh4"]
TRAINING = ["data/labelled", "data/negatives"]


def writer(record_id: str) -> str:
    return record_id.split("-")[0]


def main() -> None:
    fresh_dir = Path(sys.argv[1] if len(sys.argv) > 1 else SEALED[0])
    log_path = Path(f"data/review/{fresh_dir.name}_dedupe_log.jsonl")
    earlier = SEALED[: SEALED.index(fresh_dir.as_posix())]
    earlier_records = load_records(expand_paths(earlier)).records if earlier else []
    reference = load_records(expand_paths(TRAINING)).records + earlier_records  # what a sealed record may not repeat
    earlier_writers = {writer(r.id) for r in earlier_records}
    fresh = sorted(load_records(expand_paths([str(fresh_dir)])).records, key=lambda r: r.id)
    texts = [r.text for r in reference] + [r.text for r in fresh]
    first_fresh = len(reference)
    links: dict[int, list[int]] = {}
    for a, b, _ in near_duplicate_pairs(texts, 0.85):
        links.setdefault(a, []).append(b)
        links.setdefault(b, []).append(a)

    dropped: dict[str, str] = {}
    for i, record in enumerate(fresh, start=first_fresh):
        for j in links.get(i, []):
            if j < first_fresh:
                kind = "earlier sealed set" if writer(reference[j].id) in earlier_writers else "training"
                dropped[record.id] = f"{kind}:{reference[j].id}"
                break
            other = fresh[j - first_fresh]
            if j < i and writer(other.id) != writer(record.id) and other.id not in dropped:
                dropped[record.id] = f"{fresh_dir.name}:{other.id}"
                break

    if not dropped:
        print(f"nothing to drop; {fresh_dir} and its log are left as they are")  # already deduplicated
        return
    drop_and_log(fresh, dropped, sorted(fresh_dir.glob("*.jsonl")), log_path)
    print(f"dropped {len(dropped)} of {len(fresh)} records; log: {log_path}")


if __name__ == "__main__":
    main()
