"""Second readers against first readers, and the default model against both, on the same replies.
See README.md. Writes results.json; prints the tables."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.metrics import cohen_kappa_score, f1_score

from ml.data.records import load_records
from ml.evaluation.scoreboard import baseline_systems, model_system
from ml.labels import LABELS
from ml.modeling.scorer import Scorer

REVIEW = Path("data/review")
GROUPS = {
    "training slices": ["data/labelled"],
    "held-out writers": ["data/heldout_writers", "data/v8", "data/heldout_fresh", "data/heldout_fresh2"],
    "third sealed set (readers only)": ["data/heldout_fresh3"],
    "v7, outside training (readers only)": ["data/v7"],
}
OUT = Path(__file__).with_name("results.json")


def records_by_id() -> dict[str, tuple[str, object]]:
    found = {}
    for group, folders in GROUPS.items():
        for folder in folders:
            for record in load_records(sorted(Path(folder).glob("*.jsonl"))).records:
                found[record.id] = (group, record)
    return found


def first_readings() -> dict[tuple[str, str], int]:
    """(id, label) -> the writer's label before adjudication, where an adjudication file records it."""
    first = {}
    for path in REVIEW.glob("*adjudication.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                first[(row["id"], row["label"])] = int(row["first"])
    return first


def second_readings() -> dict[str, dict[str, int]]:
    second = {}
    for path in sorted(REVIEW.glob("*second_reading_labels.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                second[row["id"]] = row["labels"]
    return second


def agreement(reference: np.ndarray, other: np.ndarray) -> dict:
    per_label = {}
    for i, label in enumerate(LABELS):
        per_label[label] = {
            "f1": round(float(f1_score(reference[:, i], other[:, i], zero_division=0)), 4),
            "kappa": round(float(cohen_kappa_score(reference[:, i], other[:, i])), 4),
            "positives": int(reference[:, i].sum()),
        }
    macro = float(np.mean([per_label[label]["f1"] for label in LABELS]))
    return {"macro_f1": round(macro, 4), "records": len(reference), "per_label": per_label}


def main() -> None:
    found, first, second = records_by_id(), first_readings(), second_readings()
    missing = sorted(set(second) - set(found))
    rows = defaultdict(list)
    for record_id, labels in second.items():
        if record_id in found:
            rows[found[record_id][0]].append((found[record_id][1], labels))
    results: dict = {"missing_ids": missing, "groups": {}}
    for group, pairs in [("all", [p for ps in rows.values() for p in ps]), *rows.items()]:
        final = np.array([[getattr(r.labels, label) for label in LABELS] for r, _ in pairs])
        before = np.array([[first.get((r.id, label), getattr(r.labels, label)) for label in LABELS] for r, _ in pairs])
        reader2 = np.array([[s[label] for label in LABELS] for _, s in pairs])
        results["groups"][group] = {
            "reader2_vs_reader1": agreement(before, reader2),
            "reader2_vs_final": agreement(final, reader2),
        }
    held_out = rows["held-out writers"]
    texts = [r.text for r, _ in held_out]
    contexts = [r.context for r, _ in held_out]
    final = np.array([[getattr(r.labels, label) for label in LABELS] for r, _ in held_out])
    scorer = Scorer.load("models/default", runtime="portable")
    systems = [
        model_system(scorer),
        *baseline_systems("data/split/train.jsonl", "data/split/validation.jsonl", scorer.info.threshold_objective),
    ]
    results["held_out_systems_vs_final"] = {
        "model_version": scorer.info.version,
        **{s.name: agreement(final, s.decide(texts, contexts).astype(int)) for s in systems},
    }
    OUT.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    print_tables(results)


def print_tables(results: dict) -> None:
    columns = "".join(f" {label} (r2 vs r1) |" for label in LABELS)
    print("| group | replies | reader 2 vs reader 1 | reader 2 vs final |" + columns)
    print("|---" * (4 + len(LABELS)) + "|")
    for group, g in results["groups"].items():
        a, b = g["reader2_vs_reader1"], g["reader2_vs_final"]
        cells = "".join(f" {a['per_label'][label]['f1']:.3f} |" for label in LABELS)
        print(f"| {group} | {a['records']} | {a['macro_f1']:.3f} | {b['macro_f1']:.3f} |{cells}")
    print("\nHeld-out second-read replies, against the final labels:")
    systems = {"reader 2": results["groups"]["held-out writers"]["reader2_vs_final"]}
    systems.update({k: v for k, v in results["held_out_systems_vs_final"].items() if k != "model_version"})
    print("| who | macro-F1 |" + "".join(f" {label} |" for label in LABELS))
    print("|---" * (2 + len(LABELS)) + "|")
    for name, a in systems.items():
        cells = "".join(f" {a['per_label'][label]['f1']:.3f} |" for label in LABELS)
        print(f"| {name} | {a['macro_f1']:.3f} |{cells}")


if __name__ == "__main__":
    main()
