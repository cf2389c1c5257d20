"""Apply the README's rule: the pipeline's scoreboard metrics against the shipped default's (from git)."""

import json
import subprocess
import sys
from pathlib import Path

DEFAULT_COMMIT = "d5341c7"  # the last commit with 20656116bf1c's scoreboard
METRICS = "reports/scoreboard/metrics.json"


def default_metrics() -> dict:
    text = subprocess.run(["git", "show", f"{DEFAULT_COMMIT}:{METRICS}"], capture_output=True, check=True).stdout
    return json.loads(text)


def main(path: str = METRICS) -> None:
    old, new = default_metrics(), json.loads(Path(path).read_text())
    bars = [  # (metric, bar, higher_is_better)
        ("held_out_model_macro_f1", 0.823, True),
        ("held_out_model_threatening_recall_at_p85", 0.656, True),
        ("held_out_model_privacy_risk_recall_at_p85", 0.659, True),
        ("ood_model_threatening_fpr", 0.010, False),
        ("ood_model_privacy_risk_fpr", 0.010, False),
        ("ood_model_empathetic_fpr", 0.05, False),
        ("ood_model_polite_f1", 0.830, True),
        ("ood_model_clear_f1", 0.898, True),
        ("surface_noise_model_changed", 0.025, False),
        ("context_swap_model_threatening_on_neutral", old["context_swap_model_threatening_on_neutral"] + 0.01, False),
        ("context_swap_model_privacy_risk_on_neutral", old["context_swap_model_privacy_risk_on_neutral"] + 0.01, False),
    ]
    passed = True
    for name, bar, higher in bars:
        ok = new[name] >= bar if higher else new[name] <= bar
        passed &= ok
        sign = ">=" if higher else "<="
        verdict = "ok" if ok else "FAIL"
        print(f"{name:45s} default {old[name]:.4f}  pipeline {new[name]:.4f}  bar {sign} {bar:.4f}  {verdict}")
    print("PASS" if passed else "FAIL")


if __name__ == "__main__":
    main(*sys.argv[1:])
