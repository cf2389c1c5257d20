"""Third question (README): BERT + character n-grams mixed on empathetic, threatening and
privacy_risk only, on today's default; polite and clear stay the BERT's. Weights chosen on the
writer-grouped out-of-fold predictions, cut-offs on the validation split.

    .venv/bin/python experiments/stacking/risk_only.py             # data/ood and the rest
    .venv/bin/python experiments/stacking/risk_only.py --confirm   # then, once, data/ood_fresh
"""

from __future__ import annotations

import json
import sys

import numpy as np
from run import FOLDS, HERE, Mix, choose_weights, fitted_ngrams, out_of_fold_ngrams

from ml.config import load_config
from ml.data.records import label_matrix, load_labelled, load_partially_labelled
from ml.evaluation.metrics import tune_thresholds
from ml.evaluation.scoreboard import _files, generalisation, invariance, model_system, out_of_domain, probes
from ml.labels import LABELS
from ml.modeling.scorer import Scorer

BERT_ONLY = ("polite", "clear")
FRESH = "data/ood_fresh/crosswoz_sys_fresh.jsonl"


def main(confirm: bool) -> None:
    config = load_config("configs/default.yaml")
    scorer = Scorer.load("models/default")
    objectives = scorer.info.threshold_objective

    truth, ngram_oof = out_of_fold_ngrams(load_partially_labelled(config.train.negatives))
    assert np.array_equal(truth, np.load(FOLDS / "oof_truth.npy")), "out-of-fold records are not aligned"
    weights, table = choose_weights(truth, np.load(FOLDS / "oof_probabilities.npy"), ngram_oof, objectives)
    risk_weights = {label: 1.0 if label in BERT_ONLY else weights[label] for label in LABELS}
    print("weights", weights, "risk-only", risk_weights, flush=True)

    ngrams = fitted_ngrams(config)
    validation = load_labelled([config.train.validation_file])
    systems = [model_system(scorer)]
    cutoffs = {}
    for name, w in (("mix_risk_only", risk_weights), ("mix_all_labels", weights)):
        mix = Mix(scorer, ngrams, w)
        mixed = mix.predict_proba(validation["text"], validation["context"])
        tuned = tune_thresholds(label_matrix(validation), mixed, objectives)
        if name == "mix_risk_only":
            tuned.update({label: scorer.info.thresholds[label] for label in BERT_ONLY})
        cutoffs[name] = tuned
        systems.append(mix.system(name, tuned))

    weights = {"risk_only": risk_weights, "all_labels": weights}
    found = {"model": scorer.info.version, "weights": weights, "weight_search_out_of_fold": table, "cutoffs": cutoffs}
    write_results(f"risk_only_{scorer.info.version}", systems, config, confirm, found)


def write_results(stem: str, systems, config, confirm: bool, found: dict) -> None:
    """The scoreboard of `systems` (or, with `confirm`, only the fresh off-domain sample) beside what
    the run chose, as results_<stem>[_ood_fresh].json."""
    if confirm:
        result = {"ood_fresh": out_of_domain(systems, [FRESH])}
        out = HERE / f"results_{stem}_ood_fresh.json"
    else:
        board = generalisation(systems, config.train.train_file, config.scoreboard)
        invariance_set = load_labelled([config.scoreboard.invariance_file])
        board["invariance"] = {s.name: invariance(s, invariance_set, config.scoreboard.context_swaps) for s in systems}
        board["probes"] = probes(systems, _files(config.scoreboard.probes))
        result = {**found, "board": board}
        out = HERE / f"results_{stem}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    print("wrote", out)


if __name__ == "__main__":
    main("--confirm" in sys.argv[1:])
