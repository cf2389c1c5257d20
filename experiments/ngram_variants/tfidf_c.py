"""Information only, run after candidate N was judged: the scoreboard's TF-IDF baseline with C 4 (as
shipped) and C 64 (what the n-gram variants chose on training-writer folds) on the held-out writers,
with the scoreboard's split, cut-off objectives and exclusions, and their false alarms on `data/ood`.

    python experiments/ngram_variants/tfidf_c.py
"""

from ml.config import load_config
from ml.data.records import expand_paths, label_matrix, load_labelled
from ml.evaluation.baselines import TfidfLogReg
from ml.evaluation.metrics import tune_thresholds
from ml.evaluation.scoreboard import System, held_out_writers, out_of_domain, shared_with_training

OBJECTIVES = load_config("configs/default.yaml").train.threshold_objective  # the scoreboard's, not a copy

train, validation = load_labelled(["data/split/train.jsonl"]), load_labelled(["data/split/validation.jsonl"])
sets = {path: load_labelled([path]) for path in expand_paths(["data/heldout_writers", "data/v8"])}
systems = []
for c in (4.0, 64.0):
    baseline = TfidfLogReg()
    baseline.pipeline.set_params(onevsrestclassifier__estimator__C=c)
    baseline.fit(train["text"], label_matrix(train))
    cutoffs = tune_thresholds(label_matrix(validation), baseline.predict_proba(validation["text"]), OBJECTIVES)
    systems.append(System(f"tfidf_C{int(c)}", lambda t, _, b=baseline: b.predict_proba(t), cutoffs, False))
report = held_out_writers(systems, sets, shared_with_training("data/split/train.jsonl", sets))
for system in systems:
    pooled = report["pooled"][system.name]
    f1 = {label: pooled[label]["f1"] for label in ("empathetic", "threatening", "privacy_risk")}
    at_p85 = [pooled[label]["recall_at_precision_0.85"] for label in ("threatening", "privacy_risk")]
    print(system.name, "macro-F1", pooled["macro_f1"], "F1", f1, "R@P85 threat/privacy", at_p85)
off_domain = out_of_domain(systems, expand_paths(["data/ood"]))
for system in systems:
    print(system.name, "data/ood", off_domain[system.name])
