"""Collect experiments/encoder/runs/*/result.json into results.json and print the README table."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
results = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(HERE.glob("runs/*/result.json"))]
(HERE / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")

print(
    "| candidate | objective | seed | steps | tokens | held-out macro-F1 | threat R | privacy R | "
    "OOD threat FPR | OOD privacy FPR | OOD empathetic FPR | ctx swap threat/privacy | noise | test macro-F1 |"
)
print("|" + "---|" * 14)
for r in results:
    p, held, ood, swap = r["pretraining"], r["held_out_writers"], r["out_of_domain"], r["context_swap"]
    print(
        f"| {r['name']} | {p['objective']} | {p['embedding_seed'] or '-'} | {p['steps']} "
        f"| {p['tokens_seen'] / 1e6:.1f} M "
        f"| {held['macro_f1']:.3f} | {held['threatening']['recall']:.3f} | {held['privacy_risk']['recall']:.3f} "
        f"| {ood['threatening_fpr']:.3f} | {ood['privacy_risk_fpr']:.3f} | {ood['empathetic_fpr']:.3f} "
        f"| {swap['threatening_on_neutral_replies']:.3f} / {swap['privacy_risk_on_neutral_replies']:.3f} "
        f"| {r['surface_noise_changed']:.3f} | {r['test_macro_f1']:.3f} |"
    )
