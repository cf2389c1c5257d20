"""Stage-1 bar 3c re-judged with balanced polite cut-offs on both sides (README.md, last sections):
the seed-13 Xeon reference against the two v8 + courtesy teachers, on data/ood and data/ood_fresh."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("polite_cutoff", HERE.parent / "polite_cutoff" / "run.py")
polite_cutoff = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(polite_cutoff)

REFERENCE = ("models/teacher", "data/split")  # 698f15bf7a03, seed 13, Xeon
CANDIDATES = {
    seed: (f"experiments/v8_courtesy/teacher_seed{seed}", "experiments/v8_courtesy/split") for seed in (13, 14)
}
MAX_DROP = 0.02


def main() -> None:
    reference = polite_cutoff.measure(*REFERENCE)
    candidates = {seed: polite_cutoff.measure(*where) for seed, where in CANDIDATES.items()}
    verdict = {}
    for name in ("ood", "ood_fresh"):
        bar = reference[name]["balanced"]["polite_f1"] - MAX_DROP
        mean = sum(c[name]["balanced"]["polite_f1"] for c in candidates.values()) / len(candidates)
        verdict[name] = {
            "reference": reference[name]["balanced"]["polite_f1"],
            "bar": round(bar, 4),
            "candidates_mean": round(mean, 4),
            "passes": mean >= bar,
        }
        print(name, verdict[name])
    verdict["passes"] = all(v["passes"] for v in verdict.values())
    print("bar 3c with balanced cut-offs passes:", verdict["passes"])
    results = {"reference": reference, "candidates": candidates, "verdict": verdict}
    (HERE / "rejudge.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
