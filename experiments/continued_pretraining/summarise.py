"""The table and the rule of experiments/continued_pretraining/README.md, from the scoreboards. The same
rule judges other candidates of the teacher recipe against the same reference runs:

    python experiments/continued_pretraining/summarise.py [CANDIDATE_DIR NAME [MEAN_BAR MIN_BAR]]

where CANDIDATE_DIR holds scoreboard_seed13/ and scoreboard_seed14/ (e.g. experiments/reply_max_pool).
MEAN_BAR and MIN_BAR replace the held-out macro-F1 bars of rule 1 (0.814 and 0.804) for a candidate whose
README set others before its runs (experiments/data_v8). The references are matched to the held-out writers
the candidate was measured on; on the twelve writers of 2026-12-01 (the seed-13 reference: 0.8313) the bars
must be given."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ml.evaluation.scoreboard import JUDGED_METRICS as ROWS

HERE = Path(__file__).parent
SEEDS = (13, 14)
# The v1 encoder's runs of the same teacher recipe: seed 13 on this machine kind (its scoreboard is
# re-run here), seed 14 on the AMD machine (a recorded scoreboard). Each is listed per held-out set
# it was measured on: the first four writers, and since 2026-12-01 the twelve (with data/v8).
BASE = "v1 encoder, seed 13, Xeon (698f15bf7a03)"
REFERENCES = {
    BASE: [HERE / "scoreboard_v1_teacher_seed13", HERE / "scoreboard_v1_teacher_seed13_twelve_writers"],
    "v1 encoder, seed 14, AMD": [HERE.parent / "seed_spread" / "scoreboard"],
}
FOUR_WRITERS_BARS = (0.814, 0.804)  # rule 1's held-out bars, set for the first four writers


def metrics(folder: Path) -> dict[str, float]:
    return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def held_out_files(folder: Path) -> list[str]:
    board = json.loads((folder / "scoreboard.json").read_text(encoding="utf-8"))
    return [Path(f).name for f in board["held_out_writers"]["files"]]


def main(
    candidate: Path = HERE, label: str = "continued", mean_bar: float | None = None, min_bar: float | None = None
) -> None:
    runs_at = {f"{label}, seed {seed}": candidate / f"scoreboard_seed{seed}" for seed in SEEDS}
    sets = {tuple(held_out_files(folder)) for folder in runs_at.values()}
    if len(sets) > 1:
        sys.exit("the candidate's seeds were measured on different held-out writers")
    (files,) = sets
    # Compare like with like: a reference counts only where it was measured on the candidate's writers.
    references = {
        name: next((f for f in folders if tuple(held_out_files(f)) == files), None)
        for name, folders in REFERENCES.items()
    }
    if references[BASE] is None:
        sys.exit(f"no scoreboard of the seed-13 reference on these held-out writers: {list(files)}")
    if mean_bar is None:
        if references[BASE] != REFERENCES[BASE][0]:  # not the first four writers
            sys.exit("give MEAN_BAR and MIN_BAR: the default bars were set for the first four held-out writers")
        mean_bar, min_bar = FOUR_WRITERS_BARS
    columns = {name: metrics(folder) for name, folder in references.items() if folder}
    columns |= {name: metrics(folder) for name, folder in runs_at.items()}
    print("| | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, key in ROWS.items():
        print(f"| {name} | " + " | ".join(f"{m[key]:.4f}" for m in columns.values()) + " |")

    base = columns[BASE]
    runs = [columns[f"{label}, seed {seed}"] for seed in SEEDS]

    def values(row: str) -> list[float]:
        return [m[ROWS[row]] for m in runs]

    checks = {
        f"1 held-out macro-F1 mean ≥ {mean_bar}, both seeds ≥ {min_bar}": mean(values("held-out macro-F1")) >= mean_bar
        and min(values("held-out macro-F1")) >= min_bar,
        "2 risk R@P85 mean ≥ seed-13 Xeon run - 1 pt": all(
            mean(values(row)) >= base[ROWS[row]] - 0.01
            for row in ("held-out threatening R@P≥0.85", "held-out privacy_risk R@P≥0.85")
        ),
        "3a OOD threat/privacy FPR mean ≤ seed-13 Xeon run + 0.5 pt": all(
            mean(values(row)) <= base[ROWS[row]] + 0.005 for row in ("OOD threatening FPR", "OOD privacy_risk FPR")
        ),
        "3b OOD empathetic FPR ≤ 5% both seeds": max(values("OOD empathetic FPR")) <= 0.05,
        "3c OOD polite/clear F1 mean ≥ seed-13 Xeon run - 2 pt": all(
            mean(values(row)) >= base[ROWS[row]] - 0.02 for row in ("OOD polite F1", "OOD clear F1")
        ),
        "4 surface noise ≤ 2.5% both seeds": max(values("surface noise")) <= 0.025,
    }
    print()
    for name, passed in checks.items():
        print(f"- {name}: {'passes' if passed else 'FAILS'}")
    print(f"\nAdopt: {all(checks.values())}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(*([Path(args[0]), args[1], *map(float, args[2:4])] if len(args) > 1 else []))
