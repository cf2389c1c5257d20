"""The rule of README.md applied to the four scoreboards (default and V; sealed set + data/ood, and data/ood_fresh).

python experiments/data_volume/judge.py      # prints the table and the verdict
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "stack_distill"))  # the same table and verdict as D's rule
from judge import print_verdict  # noqa: E402

HERE = Path(__file__).parent
OOD_KEYS = ("threatening_fpr", "privacy_risk_fpr", "empathetic_fpr", "polite_f1", "clear_f1")


def board(name: str) -> dict:
    return json.loads((HERE / name / "scoreboard.json").read_text(encoding="utf-8"))


def rows(main: dict, ood_fresh: dict) -> dict[str, float]:
    """The figures the rule reads, from one model's two scoreboards."""
    pooled = main["held_out_writers"]["pooled"]
    out = {"sealed macro-F1": pooled["model"]["macro_f1"], "sealed TF-IDF macro-F1": pooled["tfidf_logreg"]["macro_f1"]}
    for label in ("threatening", "privacy_risk"):
        out[f"sealed R@P85 {label}"] = pooled["model"][label]["recall_at_precision_0.85"]
    for tag, b in (("ood", main), ("ood_fresh", ood_fresh)):
        for key in OOD_KEYS:
            out[f"{tag} {key}"] = b["out_of_domain"]["model"][key]
    swap = main["invariance"]["model"]["context_swap"]
    out["swap threatening"] = swap["threatening_on_neutral_replies"]
    out["swap privacy_risk"] = swap["privacy_risk_on_neutral_replies"]
    out["noise"] = main["invariance"]["model"]["surface_noise"]["all_labels_all_kinds"]
    return out


def checks(default: dict[str, float], v: dict[str, float]) -> list[tuple[str, bool]]:
    result = [
        ("1 sealed macro-F1 >= default + 0.010", v["sealed macro-F1"] >= default["sealed macro-F1"] + 0.010),
        ("1 sealed macro-F1 > TF-IDF on V's split", v["sealed macro-F1"] > v["sealed TF-IDF macro-F1"]),
    ]
    for tag in ("ood", "ood_fresh"):
        result += [
            (f"2 {tag} threatening FPR <= 1%", v[f"{tag} threatening_fpr"] <= 0.01),
            (f"2 {tag} privacy_risk FPR <= 1%", v[f"{tag} privacy_risk_fpr"] <= 0.01),
            (f"2 {tag} empathetic FPR <= 5%", v[f"{tag} empathetic_fpr"] <= 0.05),
            (f"2 {tag} polite F1 >= default - 0.01", v[f"{tag} polite_f1"] >= default[f"{tag} polite_f1"] - 0.01),
            (f"2 {tag} clear F1 >= default - 0.01", v[f"{tag} clear_f1"] >= default[f"{tag} clear_f1"] - 0.01),
        ]
    for label in ("threatening", "privacy_risk"):
        key = f"swap {label}"
        result.append((f"3 {key} <= default + 0.002", v[key] <= default[key] + 0.002))
    result.append(("3 noise <= max(2%, default)", v["noise"] <= max(0.02, default["noise"])))
    return result


def main() -> None:
    default = rows(board("scoreboard_default"), board("scoreboard_default_ood_fresh"))
    v = rows(board("scoreboard"), board("scoreboard_ood_fresh"))
    print_verdict("V", default, v, checks(default, v))


if __name__ == "__main__":
    main()
