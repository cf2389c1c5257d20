"""Deterministic, seeded train/validation/test split that stays put when the data changes.

Minimal pairs (shared `pair` id) and near-duplicates form groups that always land in one split,
so no test record has a near-twin in training. Reviewed records go to train only.

Each group's split is drawn from a hash of its first id and the seed, not from its labels or its
neighbours: correcting a label moves nothing, and adding a file moves only the groups its records
join. (The split stratified by label combination until 2026-12-01; 40 audited labels then moved
about 1,570 records between training and evaluation, `experiments/pipeline_v9/`.)
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

from ml.data.records import Record, near_duplicate_pairs

SPLITS = ("train", "validation", "test")
# Records imported from QA review (`replyqa review import`) train the model but never evaluate it,
# with their near-duplicates; mark them `reviewed:eval` to let them into evaluation.
TRAIN_ONLY_SOURCE = "reviewed"


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def record_groups(records: list[Record], threshold: float = 0.85) -> list[list[int]]:
    """Indices grouped so that minimal pairs and near-duplicates share a group (union-find)."""
    parent = list(range(len(records)))
    links = [(a, b) for a, b, _ in near_duplicate_pairs([r.text for r in records], threshold)]
    first_of_pair: dict[str, int] = {}
    for i, record in enumerate(records):
        if record.pair:
            links.append((first_of_pair.setdefault(record.pair, i), i))
    for a, b in links:
        parent[_find(parent, a)] = _find(parent, b)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(records)):
        groups[_find(parent, i)].append(i)
    return sorted(groups.values())


def hash_share(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by key and seed alone (uniform over keys)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(key: str, fractions: tuple[float, float, float], seed: int) -> str:
    share = hash_share(key, seed) * sum(fractions)
    for name, upper in zip(SPLITS, (fractions[0], fractions[0] + fractions[1])):
        if share < upper:
            return name
    return SPLITS[-1]


def split_records(
    records: list[Record],
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 13,
    threshold: float = 0.85,
) -> dict[str, list[Record]]:
    """Assign whole groups to splits by a hash of the group's smallest id; records in id order."""
    records = sorted(records, key=lambda r: r.id)  # the split depends on ids and seed, not on file order
    assignment: dict[str, list[int]] = {name: [] for name in SPLITS}
    for group in record_groups(records, threshold):
        if any(records[i].source == TRAIN_ONLY_SOURCE for i in group):  # QA corrections: training data
            assignment["train"] += group
        else:
            assignment[split_of(records[group[0]].id, fractions, seed)] += group
    return {
        name: [records[i] for i in sorted(indices, key=lambda i: records[i].id)] for name, indices in assignment.items()
    }


def write_split(split: dict[str, list[Record]], out_dir: str | Path) -> dict[str, int]:
    """Write one JSONL per split (records in the LABELS.md format) and return the sizes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, records in split.items():
        with (out_dir / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record.model_dump(), ensure_ascii=False) + "\n")
    return {name: len(records) for name, records in split.items()}
