"""Fourth question (README): the risk-only mix with n-grams that read the normalised text, mixed
geometrically (judged) or arithmetically (information). Same protocol as `risk_only.py`.

    .venv/bin/python experiments/stacking/conjunctive.py             # data/ood and the rest
    .venv/bin/python experiments/stacking/conjunctive.py --confirm   # then, once, data/ood_fresh
"""

from __future__ import annotations

import sys

import numpy as np
from risk_only import BERT_ONLY, write_results
from run import FOLDS, Mix, Ngrams, arithmetic, choose_weights, fitted_ngrams, geometric, out_of_fold_ngrams

from ml.config import load_config
from ml.data.records import label_matrix, load_labelled, load_partially_labelled
from ml.evaluation.metrics import tune_thresholds
from ml.evaluation.scoreboard import model_system
from ml.labels import LABELS
from ml.modeling.ngrams import as_model_reads
from ml.modeling.scorer import Scorer


class NormalisedNgrams(Ngrams):
    def fit(self, texts, y) -> NormalisedNgrams:
        return super().fit([as_model_reads(t) for t in texts], y)

    def predict_proba(self, texts) -> np.ndarray:
        return super().predict_proba([as_model_reads(t) for t in texts])


def main(confirm: bool) -> None:
    config = load_config("configs/default.yaml")
    scorer = Scorer.load("models/default")
    objectives = scorer.info.threshold_objective
    truth, ngram_oof = out_of_fold_ngrams(load_partially_labelled(config.train.negatives), NormalisedNgrams)
    assert np.array_equal(truth, np.load(FOLDS / "oof_truth.npy")), "out-of-fold records are not aligned"
    bert_oof = np.load(FOLDS / "oof_probabilities.npy")

    ngrams = fitted_ngrams(config, NormalisedNgrams)
    validation = load_labelled([config.train.validation_file])
    systems, weights, cutoffs, tables = [model_system(scorer)], {}, {}, {}
    for name, combine in (("geometric_risk_only", geometric), ("arithmetic_risk_only_normalised", arithmetic)):
        chosen, tables[name] = choose_weights(truth, bert_oof, ngram_oof, objectives, combine)
        weights[name] = {label: 1.0 if label in BERT_ONLY else chosen[label] for label in LABELS}
        print(name, weights[name], flush=True)
        mix = Mix(scorer, ngrams, weights[name], combine)
        mixed = mix.predict_proba(validation["text"], validation["context"])
        tuned = tune_thresholds(label_matrix(validation), mixed, objectives)
        tuned.update({label: scorer.info.thresholds[label] for label in BERT_ONLY})
        cutoffs[name] = tuned
        systems.append(mix.system(name, tuned))

    found = {"model": scorer.info.version, "weights": weights, "weight_search_out_of_fold": tables, "cutoffs": cutoffs}
    write_results(f"conjunctive_{scorer.info.version}", systems, config, confirm, found)


if __name__ == "__main__":
    main("--confirm" in sys.argv[1:])
