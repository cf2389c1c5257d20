"""How faithful is the occlusion evidence? For every test reply that the model flags correctly as
threatening or privacy_risk, delete the evidence spans and re-score; compare with deleting random
spans of the same total length. Usage: python experiments/benchmarks/evidence_faithfulness.py [MODEL]"""

import json
import random
import sys
import time

import numpy as np

from ml import Scorer
from ml.data.records import load_labelled
from ml.labels import LABELS

scorer = Scorer.load(sys.argv[1] if len(sys.argv) > 1 else "models/default")
test = load_labelled(["data/split/test.jsonl"])
rng = random.Random(0)
rows = {label: {"evidence": [], "random": [], "flipped": 0, "n": 0} for label in ("threatening", "privacy_risk")}
seconds = []
for text, context, *truth in zip(test["text"], test["context"], *(test[label] for label in LABELS)):
    started = time.perf_counter()
    result = scorer.score(text, context, explain=True)
    seconds.append(time.perf_counter() - started)
    for label, stats in rows.items():
        if not (result.decisions[label] and truth[LABELS.index(label)]):
            continue
        spans = result.evidence[label]
        keep = [True] * len(text)
        for span in spans:
            keep[span.start : span.end] = [False] * (span.end - span.start)
        removed = keep.count(False)
        without = "".join(ch for ch, k in zip(text, keep) if k) or "。"
        start = rng.randrange(0, max(1, len(text) - removed + 1))
        random_cut = (text[:start] + text[start + removed :]) or "。"
        p_without, p_random = scorer.predict_proba([without, random_cut], [context, context])[:, LABELS.index(label)]
        stats["evidence"].append(result.probabilities[label] - p_without)
        stats["random"].append(result.probabilities[label] - p_random)
        stats["flipped"] += int(p_without < scorer.info.thresholds[label])
        stats["n"] += 1
report = {
    label: {
        "true_positives": s["n"],
        "mean_drop_deleting_evidence": round(float(np.mean(s["evidence"])), 3),
        "mean_drop_deleting_random_span": round(float(np.mean(s["random"])), 3),
        "decision_flipped_by_deleting_evidence": round(s["flipped"] / max(s["n"], 1), 3),
    }
    for label, s in rows.items()
}
report["explain_seconds_per_reply_median"] = round(float(np.median(seconds)), 3)
print(json.dumps(report, indent=2))
