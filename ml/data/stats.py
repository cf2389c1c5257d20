"""Describe a labelled corpus and check it against the coverage targets in configs/."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from ml.config import CoverageTargets
from ml.data.records import Record, unintended_duplicates
from ml.data.text import to_simplified
from ml.labels import CHANNELS, LABELS, SCENARIOS

EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
HALF_WIDTH_PUNCT = re.compile(r"[\u4e00-\u9fff][,.?!:;]|[,.?!:;][\u4e00-\u9fff]")
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
PRODUCT_WORDS = {"app", "id"}  # "App" and "ID" are ordinary in Chinese agent speech, not mixed English


def has_traditional(text: str) -> bool:
    return to_simplified(text) != text


def noise_kinds(record: Record) -> set[str]:
    """The record's own noise tags plus the kinds that can be detected from the text."""
    text = record.text
    kinds = set(record.noise)
    if 2 <= len(text) <= 6:
        kinds.add("short")
    if len(text) > 150:
        kinds.add("long")
    if EMOJI.search(text):
        kinds.add("emoji")
    if HALF_WIDTH_PUNCT.search(text):
        kinds.add("halfwidth")
    if any(word.lower() not in PRODUCT_WORDS for word in LATIN_WORD.findall(text)):
        kinds.add("english")
    if has_traditional(text):
        kinds.add("traditional")
    return kinds


def corpus_stats(records: list[Record], near_duplicate_threshold: float = 0.85) -> dict[str, Any]:
    """Counts, label rates, co-occurrence, shares, lengths, boundary/noise/context and near-duplicates."""
    n = len(records)
    matrix = np.array([[getattr(r.labels, label) for label in LABELS] for r in records]).reshape(n, len(LABELS))
    lengths = np.array([len(r.text) for r in records]) if n else np.zeros(1)
    noise = [noise_kinds(r) for r in records]
    duplicates = unintended_duplicates(records, near_duplicate_threshold)
    return {
        "records": n,
        "label_positives": {label: int(matrix[:, i].sum()) for i, label in enumerate(LABELS)},
        "label_rates": {label: round(float(matrix[:, i].mean()), 4) if n else 0.0 for i, label in enumerate(LABELS)},
        "co_occurrence": {
            a: {b: int((matrix[:, i] & matrix[:, j]).sum()) for j, b in enumerate(LABELS)} for i, a in enumerate(LABELS)
        },
        "label_combinations": {"".join(map(str, k)): v for k, v in Counter(map(tuple, matrix.tolist())).most_common()},
        "scenario_share": _shares([r.scenario for r in records], SCENARIOS),
        "channel_share": _shares([r.channel for r in records], CHANNELS),
        "length": {
            "min": int(lengths.min()),
            "p10": int(np.percentile(lengths, 10)),
            "median": int(np.median(lengths)),
            "p90": int(np.percentile(lengths, 90)),
            "max": int(lengths.max()),
            "mean": round(float(lengths.mean()), 1),
            "short_2_6": int(((lengths >= 2) & (lengths <= 6)).sum()),
            "over_150": int((lengths > 150).sum()),
        },
        "with_context": sum(bool(r.context.strip()) for r in records),
        "context_share": round(sum(bool(r.context.strip()) for r in records) / max(n, 1), 4),
        "boundary": sum(r.boundary for r in records),
        "minimal_pairs": len({r.pair for r in records if r.pair}),
        "noisy": sum(bool(kinds) for kinds in noise),
        "noise_kinds": dict(Counter(kind for kinds in noise for kind in kinds).most_common()),
        "sources": dict(Counter(r.source for r in records).most_common()),
        "near_duplicate_threshold": near_duplicate_threshold,
        "near_duplicate_method": "rapidfuzz ratio (normalised Indel similarity) on NFKC-lowercased text "
        "without punctuation or spaces",
        "near_duplicates": len(duplicates),
        "near_duplicate_examples": [[a.id, b.id, round(s, 3)] for a, b, s in duplicates[:20]],
    }


def _shares(values: list[str], names: tuple[str, ...]) -> dict[str, float]:
    counts = Counter(values)
    return {name: round(counts[name] / max(len(values), 1), 4) for name in names}


def coverage_failures(stats: dict[str, Any], targets: CoverageTargets) -> list[str]:
    """Every way the corpus misses its coverage targets; empty when it meets them all."""
    failures = []
    if stats["records"] < targets.min_records:
        failures.append(f"records {stats['records']} < {targets.min_records}")
    for name, minimum in targets.min_scenario_share.items():
        if stats["scenario_share"].get(name, 0) < minimum:
            failures.append(f"scenario {name} share {stats['scenario_share'].get(name, 0):.1%} < {minimum:.0%}")
    for name, minimum in targets.min_channel_share.items():
        if stats["channel_share"].get(name, 0) < minimum:
            failures.append(f"channel {name} share {stats['channel_share'].get(name, 0):.1%} < {minimum:.0%}")
    low, high = targets.label_rate_range
    for label, rate in stats["label_rates"].items():
        if not low <= rate <= high:
            failures.append(f"label {label} rate {rate:.1%} outside {low:.0%}-{high:.0%}")
    for label, minimum in targets.min_positives.items():
        if stats["label_positives"][label] < minimum:
            failures.append(f"label {label} positives {stats['label_positives'][label]} < {minimum}")
    checks = [("boundary", targets.min_boundary), ("noisy", targets.min_noisy)]
    failures += [f"{key} {stats[key]} < {minimum}" for key, minimum in checks if stats[key] < minimum]
    if stats["context_share"] < targets.min_context_share:
        failures.append(f"context share {stats['context_share']:.1%} < {targets.min_context_share:.0%}")
    if stats["near_duplicates"] > targets.max_near_duplicates:
        failures.append(f"near-duplicates {stats['near_duplicates']} > {targets.max_near_duplicates}")
    return failures
