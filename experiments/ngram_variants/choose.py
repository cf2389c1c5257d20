"""Which n-gram part ranks the risk labels best on writers it did not learn from? Out-of-fold
predictions over the default's own train split, grouped by writer slice (6 folds of the 24 slices),
so no evaluation set (held-out writers, `data/ood`, probes, sealed sets) is read. The negatives are
in every fold's training data, as in `replyqa stack`. See README.md for the variants and the rule.

    python experiments/ngram_variants/choose.py > experiments/ngram_variants/selection.json
    python experiments/ngram_variants/choose.py --only E_1-3_C16 F_1-3_C64 > selection_round2.json  # in this folder
"""

from __future__ import annotations

import json
import re
import sys
import time

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import GroupKFold

from ml.data.records import UNKNOWN, label_matrix, load_labelled, load_partially_labelled, writer_slice
from ml.evaluation.metrics import recall_at_precision, tune_threshold
from ml.labels import LABELS
from ml.modeling.ngrams import MIN_DF, _vectorizer

MIXED = ["empathetic", "threatening", "privacy_risk"]  # the labels the stack hands (mostly) to the n-grams
CLAUSE_END = re.compile(r"[，,。！!？?；;：:～~\n…]+")


def clauses(text: str) -> list[str]:
    return [piece for piece in CLAUSE_END.split(text) if piece.strip()] or [text]


class Variant:
    def __init__(self, ngram_range=(1, 3), c: float = 4.0, clause_max: bool = False) -> None:
        self.ngram_range, self.c, self.clause_max = ngram_range, c, clause_max

    def features(self, texts: list[str], fit: bool = False):
        if fit:
            self.vectorizer = _vectorizer(min_df=MIN_DF)
            self.vectorizer.set_params(ngram_range=self.ngram_range)
            whole = self.vectorizer.fit_transform(texts)
        else:
            whole = self.vectorizer.transform(texts)
        if not self.clause_max:
            return whole
        pieces, owner = [], []
        for row, text in enumerate(texts):
            for piece in clauses(text):
                pieces.append(piece)
                owner.append(row)
        per_clause = self.vectorizer.transform(pieces).tocsr()
        starts = np.flatnonzero(np.r_[True, np.diff(owner) != 0])
        pooled = sp.vstack([per_clause[a:b].max(axis=0) for a, b in zip(starts, [*starts[1:], len(owner)])])
        return sp.hstack([whole, pooled]).tocsr()

    def fit_predict(self, train_texts, train_y, test_texts) -> np.ndarray:
        x, x_test = self.features(train_texts, fit=True), self.features(test_texts)
        out = np.full((len(test_texts), len(LABELS)), np.nan)
        for i, label in enumerate(LABELS):
            if label not in MIXED:
                continue
            known = train_y[:, i] != UNKNOWN
            model = LogisticRegression(C=self.c, class_weight="balanced", max_iter=2000)
            out[:, i] = model.fit(x[known], train_y[known, i]).predict_proba(x_test)[:, 1]
        return out


VARIANTS = {
    "A_shipped_1-3_C4": Variant(),
    "B_1-4_C4": Variant(ngram_range=(1, 4)),
    "C_1-3_C1": Variant(c=1.0),
    "D_1-3_C4_clause_max": Variant(clause_max=True),
    "E_1-3_C16": Variant(c=16.0),  # round 2 (README): run with --only E_1-3_C16 F_1-3_C64
    "F_1-3_C64": Variant(c=64.0),
}


def main() -> None:
    train = load_labelled(["data/split/train.jsonl"])
    negatives = load_partially_labelled(["data/negatives"])
    texts, y = list(train["text"]), label_matrix(train)
    groups = [writer_slice(i) for i in train["id"]]
    neg_texts, neg_y = list(negatives["text"]), label_matrix(negatives)
    folds = list(GroupKFold(n_splits=6).split(texts, groups=groups))
    chosen = sys.argv[sys.argv.index("--only") + 1 :] if "--only" in sys.argv else list(VARIANTS)
    report = {"records": len(texts), "slices": len(set(groups)), "folds": 6, "variants": {}}
    for name, variant in ((name, VARIANTS[name]) for name in chosen):
        started = time.time()
        oof = np.full((len(texts), len(LABELS)), np.nan)
        for fit_rows, held_rows in folds:
            fit_texts = [texts[r] for r in fit_rows] + neg_texts
            fit_y = np.vstack([y[fit_rows], neg_y])
            oof[held_rows] = variant.fit_predict(fit_texts, fit_y, [texts[r] for r in held_rows])
        scores = {}
        for label in MIXED:
            i = LABELS.index(label)
            truth, prob = y[:, i], oof[:, i]
            cut = tune_threshold(truth, prob, "f1")
            predicted = prob >= cut
            f1 = 2 * (predicted & (truth == 1)).sum() / (predicted.sum() + truth.sum())
            scores[label] = {
                "pr_auc": round(float(average_precision_score(truth, prob)), 4),
                "recall_at_p85": recall_at_precision(truth, prob, 0.85),
                "best_f1": round(float(f1), 4),
            }
        objective = np.mean(
            [
                scores["empathetic"]["best_f1"],
                scores["threatening"]["recall_at_p85"],
                scores["privacy_risk"]["recall_at_p85"],
            ]
        )
        report["variants"][name] = {
            "objective": round(float(objective), 4),
            **scores,
            "seconds": round(time.time() - started),
        }
        print(name, report["variants"][name], file=sys.stderr, flush=True)
    json.dump(report, sys.stdout, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
