"""The rule of README.md applied to the four scoreboards (default and D; headline and sealed sets).

python experiments/stack_distill/judge.py      # prints the table and the verdict
"""

import json
from pathlib import Path

HERE = Path(__file__).parent


def board(name: str) -> dict:
    return json.loads((HERE / name / "scoreboard.json").read_text(encoding="utf-8"))


def rows(headline: dict, sealed: dict) -> dict[str, float]:
    """The figures the rule reads, from one model's two scoreboards."""
    out = {}
    for tag, b in (("sealed", sealed), ("headline", headline)):
        pooled = b["held_out_writers"]["pooled"]
        out[f"{tag} macro-F1"] = pooled["model"]["macro_f1"]
        out[f"{tag} TF-IDF macro-F1"] = pooled["tfidf_logreg"]["macro_f1"]
        ood = b["out_of_domain"]["model"]
        for key in ("threatening_fpr", "privacy_risk_fpr", "empathetic_fpr", "polite_f1", "clear_f1"):
            out[f"{tag} ood {key}"] = ood[key]
        swap = b["invariance"]["model"]["context_swap"]
        out[f"{tag} swap threatening"] = swap["threatening_on_neutral_replies"]
        out[f"{tag} swap privacy_risk"] = swap["privacy_risk_on_neutral_replies"]
        out[f"{tag} noise"] = b["invariance"]["model"]["surface_noise"]["all_labels_all_kinds"]
    return out


def checks(default: dict[str, float], d: dict[str, float]) -> list[tuple[str, bool]]:
    result = [
        ("1 sealed macro-F1 >= default + 0.005", d["sealed macro-F1"] >= default["sealed macro-F1"] + 0.005),
        ("1 sealed macro-F1 > TF-IDF", d["sealed macro-F1"] > d["sealed TF-IDF macro-F1"]),
        ("2 headline macro-F1 >= default", d["headline macro-F1"] >= default["headline macro-F1"]),
    ]
    for tag in ("headline", "sealed"):
        result += [
            (f"3 {tag} ood threatening FPR <= 1%", d[f"{tag} ood threatening_fpr"] <= 0.01),
            (f"3 {tag} ood privacy_risk FPR <= 1%", d[f"{tag} ood privacy_risk_fpr"] <= 0.01),
            (f"3 {tag} ood empathetic FPR <= 5%", d[f"{tag} ood empathetic_fpr"] <= 0.05),
            (
                f"3 {tag} ood polite F1 >= default - 0.01",
                d[f"{tag} ood polite_f1"] >= default[f"{tag} ood polite_f1"] - 0.01,
            ),
            (
                f"3 {tag} ood clear F1 >= default - 0.01",
                d[f"{tag} ood clear_f1"] >= default[f"{tag} ood clear_f1"] - 0.01,
            ),
            (
                f"4 {tag} swap threatening <= default + 0.002",
                d[f"{tag} swap threatening"] <= default[f"{tag} swap threatening"] + 0.002,
            ),
            (
                f"4 {tag} swap privacy_risk <= default + 0.002",
                d[f"{tag} swap privacy_risk"] <= default[f"{tag} swap privacy_risk"] + 0.002,
            ),
            (f"4 {tag} noise <= max(2%, default)", d[f"{tag} noise"] <= max(0.02, default[f"{tag} noise"])),
        ]
    return result


def print_verdict(name: str, default: dict[str, float], candidate: dict[str, float], verdict) -> None:
    """The measures side by side, each check, and the rule's outcome (also used by experiments/data_volume/)."""
    print(f"| measure | default | {name} |\n|---|---|---|")
    for key in default:
        print(f"| {key} | {default[key]:.4f} | {candidate[key]:.4f} |")
    print()
    for check, passed in verdict:
        print(f"{'PASS' if passed else 'FAIL'}  {check}")
    adopted = all(p for _, p in verdict)
    print(f"\n{name} becomes the default" if adopted else f"\n{name} fails the rule: the default stays")


def main() -> None:
    default = rows(board("scoreboard_default"), board("scoreboard_sealed_default"))
    d = rows(board("scoreboard"), board("scoreboard_sealed_d"))
    print_verdict("D", default, d, checks(default, d))


if __name__ == "__main__":
    main()
