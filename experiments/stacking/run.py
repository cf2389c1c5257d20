"""Experiment: BERT + character n-grams mixed per label, weights chosen on writer-grouped
out-of-fold predictions (see README.md). Evaluation sets are only measured.

    .venv/bin/python experiments/stacking/run.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.metrics import f1_score

from ml.config import load_config, parse_objective
from ml.data.records import UNKNOWN, label_matrix, load_labelled, load_partially_labelled
from ml.evaluation.baselines import TfidfLogReg
from ml.evaluation.metrics import recall_at_precision, tune_threshold, tune_thresholds
from ml.evaluation.scoreboard import System, _files, generalisation, invariance, model_system, probes
from ml.labels import LABELS
from ml.modeling.ngrams import mix
from ml.modeling.scorer import Scorer

HERE = Path(__file__).parent
FOLDS = HERE.parent / "grouped_thresholds"
WEIGHTS = np.round(np.linspace(0, 1, 11), 2)


class Ngrams:
    """The TF-IDF baseline's recipe (`ml.evaluation.baselines.TfidfLogReg`), with one logistic
    regression per label fitted on the rows that give its label (so partially labelled negatives
    count where they speak)."""

    def fit(self, texts: list[str], y: np.ndarray) -> Ngrams:
        vectorizer, one_vs_rest = TfidfLogReg().pipeline.named_steps.values()
        self.vectorizer = clone(vectorizer)
        x = self.vectorizer.fit_transform(texts)
        self.models = []
        for i in range(len(LABELS)):
            known = y[:, i] != UNKNOWN
            self.models.append(clone(one_vs_rest.estimator).fit(x[known], y[known, i]))
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        x = self.vectorizer.transform(texts)
        return np.stack([m.predict_proba(x)[:, 1] for m in self.models], axis=1)


def with_negatives(labelled, negatives) -> tuple[list[str], np.ndarray]:
    texts = list(labelled["text"]) + list(negatives["text"])
    return texts, np.vstack([label_matrix(labelled), label_matrix(negatives)])


def out_of_fold_ngrams(negatives, kind: type[Ngrams] = Ngrams) -> tuple[np.ndarray, np.ndarray]:
    truths, probabilities = [], []
    for k in range(3):
        work = FOLDS / f"fold_{k}"
        ngrams = kind().fit(*with_negatives(load_labelled([work / "train.jsonl"]), negatives))
        scored = load_labelled([work / "out_of_fold.jsonl"])
        truths.append(label_matrix(scored))
        probabilities.append(ngrams.predict_proba(list(scored["text"])))
    return np.vstack(truths), np.vstack(probabilities)


def best_f1(truth: np.ndarray, scores: np.ndarray) -> float:
    return float(f1_score(truth, scores >= tune_threshold(truth, scores, "f1")))


def arithmetic(w, bert: np.ndarray, ngrams: np.ndarray) -> np.ndarray:
    return mix(bert, ngrams, w)


def geometric(w, bert: np.ndarray, ngrams: np.ndarray) -> np.ndarray:
    return bert**w * ngrams ** (1 - w)


def choose_weights(truth, bert, ngrams, objectives, combine=arithmetic) -> tuple[dict[str, float], dict]:
    weights, table = {}, {}
    for i, label in enumerate(LABELS):
        kind, target = parse_objective(objectives.get(label, "f1"))
        scores = {}
        for w in WEIGHTS:
            mix = combine(w, bert[:, i], ngrams[:, i])
            if kind == "precision":
                scores[float(w)] = recall_at_precision(truth[:, i], mix, target) or 0.0
            else:
                scores[float(w)] = round(best_f1(truth[:, i], mix), 4)
        weights[label] = max(scores, key=lambda w: (scores[w], w))  # ties go to the BERT
        table[label] = scores
    return weights, table


class Mix:
    """`w · BERT + (1 − w) · n-grams` per label: a teacher (predict_proba) or a scoreboard System."""

    def __init__(self, scorer: Scorer, ngrams: Ngrams, weights: dict[str, float], combine=arithmetic) -> None:
        self.scorer, self.ngrams, self.combine = scorer, ngrams, combine
        self.w = np.array([weights[label] for label in LABELS])

    def predict_proba(self, texts, contexts) -> np.ndarray:
        bert = self.scorer.predict_proba(texts, contexts)
        return self.combine(self.w, bert, self.ngrams.predict_proba(list(texts)))

    def system(self, name: str, thresholds: dict[str, float]) -> System:
        return System(name, self.predict_proba, thresholds, True)


def fitted_ngrams(config, kind: type[Ngrams] = Ngrams) -> Ngrams:
    """The n-gram part on the model's own train split plus the negatives."""
    negatives = load_partially_labelled(config.train.negatives)
    return kind().fit(*with_negatives(load_labelled([config.train.train_file]), negatives))


def main() -> None:
    config = load_config("configs/default.yaml")
    scorer = Scorer.load("models/default")
    objectives = scorer.info.threshold_objective
    negatives = load_partially_labelled(config.train.negatives)

    truth, ngram_oof = out_of_fold_ngrams(negatives)
    assert np.array_equal(truth, np.load(FOLDS / "oof_truth.npy")), "out-of-fold records are not aligned"
    bert_oof = np.load(FOLDS / "oof_probabilities.npy")
    weights, table = choose_weights(truth, bert_oof, ngram_oof, objectives)
    print("weights", weights, flush=True)

    validation = load_labelled([config.train.validation_file])
    mix = Mix(scorer, fitted_ngrams(config), weights)
    validation_mix = mix.predict_proba(validation["text"], validation["context"])
    validation_cutoffs = tune_thresholds(label_matrix(validation), validation_mix, objectives)
    oof_cutoffs = tune_thresholds(truth, mix.w * bert_oof + (1 - mix.w) * ngram_oof, objectives)
    systems = [
        model_system(scorer),
        mix.system("mix_validation_cutoffs", validation_cutoffs),
        mix.system("mix_oof_cutoffs", oof_cutoffs),
    ]
    board = generalisation(systems, config.train.train_file, config.scoreboard)
    invariance_set = load_labelled([config.scoreboard.invariance_file])
    board["invariance"] = {s.name: invariance(s, invariance_set, config.scoreboard.context_swaps) for s in systems}
    board["probes"] = probes(systems, _files(config.scoreboard.probes))
    result = {
        "model": scorer.info.version,
        "weights": weights,
        "weight_search_out_of_fold": table,
        "cutoffs": {"validation": validation_cutoffs, "out_of_fold": oof_cutoffs},
        "board": board,
    }
    (HERE / f"results_{scorer.info.version}.json").write_text(
        json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8"
    )


if __name__ == "__main__":
    main()
