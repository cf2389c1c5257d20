"""Diagnostic (experiments/courtesy_copies/README.md): does a service greeting or sign-off take a threat
away from the model? The replies of data/v8/ (no model that ships trained on them, and no scoreboard
set holds them) are scored as written and wrapped in an opener and/or closer drawn from lists that
training never sees (ml/data/augment.py has its own). Reported: the share flagged threatening at the
model's own cut-off, for v8's threats and for its non-threats, as written and wrapped.

    python experiments/courtesy_copies/wrapped_v8.py MODEL_DIR... > wrapped_v8.json
"""

from __future__ import annotations

import json
import random
import sys

import numpy as np

from ml.data.records import expand_paths, load_labelled
from ml.labels import LABELS
from ml.modeling.scorer import Scorer

OPENERS = [
    "王经理您好，",
    "非常抱歉打扰到您，",
    "感谢您一直以来的支持，",
    "您好呀，",
    "尊敬的用户：",
    "哈喽您好，",
    "您好 这里是还款提醒 ",
]
CLOSERS = [
    "期待您的回复。",
    "祝您身体健康。",
    "如有疑问请拨打客服热线。",
    "谢谢您哈～",
    "感谢配合，祝好！",
    "好的 谢谢您 再见",
]
THREAT = LABELS.index("threatening")


def wrapped(texts: list[str], seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    out = []
    for text in texts:
        opener, closer = rng.choice([(True, False), (False, True), (True, True)])
        out.append((rng.choice(OPENERS) if opener else "") + text + (rng.choice(CLOSERS) if closer else ""))
    return out


def main(models: list[str]) -> None:
    v8 = load_labelled(expand_paths(["data/v8"]))
    threat = np.array(v8["threatening"]) == 1
    texts, contexts = list(v8["text"]), list(v8["context"])
    results = {}
    for model in models:
        scorer = Scorer.load(model)
        cut = scorer.info.thresholds["threatening"]
        plain = scorer.predict_proba(texts, contexts)[:, THREAT] >= cut
        wrap = scorer.predict_proba(wrapped(texts), contexts)[:, THREAT] >= cut
        results[f"{model} ({scorer.info.version})"] = {
            "threats_flagged_as_written": round(float(plain[threat].mean()), 4),
            "threats_flagged_wrapped": round(float(wrap[threat].mean()), 4),
            "non_threats_flagged_as_written": round(float(plain[~threat].mean()), 4),
            "non_threats_flagged_wrapped": round(float(wrap[~threat].mean()), 4),
        }
    print(json.dumps({"threats": int(threat.sum()), "non_threats": int((~threat).sum()), "models": results}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
