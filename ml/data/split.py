"""Deterministic, seeded train/validation/test split, stratified over label combinations.

Minimal pairs (shared `pair` id) and near-duplicates form groups that always land in one split,
so no test record has a near-twin in training. Reviewed records go to train only.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

from ml.data.records import Record, near_duplicate_pairs
from ml.labels import LABELS

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


def label_key(record: Record) -> str:
    return "".join(str(getattr(record.labels, label)) for label in LABELS)


def split_records(
    records: list[Record],
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 13,
    threshold: float = 0.85,
) -> dict[str, list[Record]]:
    """Assign whole groups to splits, stratum by stratum (label combination of the group's first
    record), always to the split furthest below its target share in that stratum."""
    records = sorted(records, key=lambda r: r.id)  # the split depends on ids and seed, not on file order
    rng = random.Random(seed)
    strata: dict[str, list[list[int]]] = defaultdict(list)
    assignment: dict[str, list[int]] = {name: [] for name in SPLITS}
    for group in record_groups(records, threshold):
        if any(records[i].source == TRAIN_ONLY_SOURCE for i in group):  # QA corrections: training data
            assignment["train"] += group
        else:
            strata[label_key(records[group[0]])].append(group)
    for key in sorted(strata):
        groups = strata[key]
        rng.shuffle(groups)
        filled = dict.fromkeys(SPLITS, 0)
        total = sum(len(g) for g in groups)
        for group in groups:
            deficit = {name: fraction * total - filled[name] for name, fraction in zip(SPLITS, fractions)}
            target = max(SPLITS, key=lambda name: (deficit[name], -SPLITS.index(name)))
            assignment[target] += group
            filled[target] += len(group)
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
