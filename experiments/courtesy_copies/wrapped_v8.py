"""Diagnostic (experiments/courtesy_copies/README.md): does a service greeting or sign-off take a threat
away from the model? The replies of data/v8/ (no model that ships trained on them; a scoreboard set
only since 2026-12-01, after this ran) are scored as written and wrapped in an opener and/or closer drawn from the
scoreboard's courtesy probe lists, which training never sees (ml/data/augment.py has its own).
Reported: the share flagged threatening at the model's own cut-off, for v8's threats and for its
non-threats, as written and wrapped.

    python experiments/courtesy_copies/wrapped_v8.py MODEL_DIR... > wrapped_v8.json
"""

from __future__ import annotations

import json
import sys

import numpy as np

from ml.data.records import expand_paths, load_labelled
from ml.evaluation.scoreboard import courtesy_wrapped
from ml.labels import LABELS
from ml.modeling.scorer import Scorer

THREAT = LABELS.index("threatening")


def main(models: list[str]) -> None:
    v8 = load_labelled(expand_paths(["data/v8"]))
    threat = np.array(v8["threatening"]) == 1
    texts, contexts = list(v8["text"]), list(v8["context"])
    results = {}
    for model in models:
        scorer = Scorer.load(model)
        cut = scorer.info.thresholds["threatening"]
        plain = scorer.predict_proba(texts, contexts)[:, THREAT] >= cut
        wrap = scorer.predict_proba(courtesy_wrapped(texts), contexts)[:, THREAT] >= cut
        results[f"{model} ({scorer.info.version})"] = {
            "threats_flagged_as_written": round(float(plain[threat].mean()), 4),
            "threats_flagged_wrapped": round(float(wrap[threat].mean()), 4),
            "non_threats_flagged_as_written": round(float(plain[~threat].mean()), 4),
            "non_threats_flagged_wrapped": round(float(wrap[~threat].mean()), 4),
        }
    print(json.dumps({"threats": int(threat.sum()), "non_threats": int((~threat).sum()), "models": results}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
