"""The table and the rule of experiments/weight_averaging/README.md, from the four scoreboards."""

from __future__ import annotations

import json
from pathlib import Path

from ml.evaluation.scoreboard import JUDGED_METRICS as ROWS

HERE = Path(__file__).parent
SEEDS = (13, 14)


def metrics(arm: str, seed: int) -> dict[str, float]:
    return json.loads((HERE / f"scoreboard_{arm}_seed{seed}" / "metrics.json").read_text(encoding="utf-8"))


def main() -> None:
    m = {(arm, seed): metrics(arm, seed) for arm in ("best", "averaged") for seed in SEEDS}
    print(
        "| | " + " | ".join(f"{arm} seed {seed}" for arm in ("best", "averaged") for seed in SEEDS) + " | mean change |"
    )
    print("|---" * 6 + "|")
    for name, key in ROWS.items():
        values = [m[(arm, seed)][key] for arm in ("best", "averaged") for seed in SEEDS]
        change = sum(m[("averaged", s)][key] - m[("best", s)][key] for s in SEEDS) / len(SEEDS)
        print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in values) + f" | {change:+.4f} |")

    def delta(key: str) -> list[float]:
        return [m[("averaged", s)][key] - m[("best", s)][key] for s in SEEDS]

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    checks = {
        "1 held-out macro-F1 mean ≥ +0.5 pt, no seed < -0.5 pt": mean(delta(ROWS["held-out macro-F1"])) >= 0.005
        and min(delta(ROWS["held-out macro-F1"])) >= -0.005,
        "2 risk R@P85 mean ≥ -1 pt each": all(
            mean(delta(ROWS[k])) >= -0.01 for k in ("held-out threatening R@P≥0.85", "held-out privacy_risk R@P≥0.85")
        ),
        "3a OOD threat/privacy FPR ≤ 1% both seeds, mean rise ≤ 0.5 pt": all(
            m[("averaged", s)][ROWS[k]] <= 0.01 for s in SEEDS for k in ("OOD threatening FPR", "OOD privacy_risk FPR")
        )
        and all(mean(delta(ROWS[k])) <= 0.005 for k in ("OOD threatening FPR", "OOD privacy_risk FPR")),
        "3b OOD empathetic FPR ≤ 5%": all(m[("averaged", s)][ROWS["OOD empathetic FPR"]] <= 0.05 for s in SEEDS),
        "3c OOD polite/clear F1 mean ≥ -1 pt": all(
            mean(delta(ROWS[k])) >= -0.01 for k in ("OOD polite F1", "OOD clear F1")
        ),
        "4 surface noise ≤ 2% both seeds": all(m[("averaged", s)][ROWS["surface noise"]] <= 0.02 for s in SEEDS),
    }
    for name, passed in checks.items():
        print(f"- {name}: {'pass' if passed else 'FAIL'}")
    print("verdict:", "adopt" if all(checks.values()) else "not adopted")


if __name__ == "__main__":
    main()
