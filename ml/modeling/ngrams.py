"""The character n-gram part of a stacked model (`replyqa stack`): TF-IDF over character 1-3-grams
of the reply as the BERT reads it, one balanced logistic regression per label, mixed into the
BERT's probabilities per label. On writers the model never saw it ranks the risk labels better than
our BERT (`experiments/stacking/`); it reads the reply only, never the context.

Saved beside the BERT as plain arrays (`ngrams/vocabulary.json`, `ngrams/weights.npz`): no pickle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ml.data.text import normalise_for_model
from ml.labels import LABELS

NGRAM_DIR = "ngrams"
VECTORIZER = {"analyzer": "char", "ngram_range": (1, 3), "sublinear_tf": True}  # the TF-IDF baseline's recipe
MIN_DF = 2
C = 4.0


def as_model_reads(text: str) -> str:
    """NFKC and Simplified like the BERT's tokenizer, and no whitespace at all: ASR-style spaces
    between characters would otherwise break every 2- and 3-gram."""
    return normalise_for_model(text).replace(" ", "")


def _vectorizer(**kwargs):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(preprocessor=as_model_reads, **VECTORIZER, **kwargs)


class CharNgrams:
    def __init__(self, vectorizer, coef: np.ndarray, intercept: np.ndarray) -> None:
        self.vectorizer, self.coef, self.intercept = vectorizer, coef, intercept

    @classmethod
    def fit(cls, texts: Sequence[str], y: np.ndarray) -> CharNgrams:
        """`y` (n, 5) in LABELS order; UNKNOWN cells (partially labelled records) are left out of
        that label's regression only."""
        from sklearn.linear_model import LogisticRegression

        from ml.data.records import UNKNOWN  # training only: records imports datasets and pandas

        vectorizer = _vectorizer(min_df=MIN_DF)
        x = vectorizer.fit_transform(list(texts))
        coef, intercept = [], []
        for i in range(len(LABELS)):
            known = y[:, i] != UNKNOWN
            regression = LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit(x[known], y[known, i])
            coef.append(regression.coef_[0])
            intercept.append(regression.intercept_[0])
        return cls(vectorizer, np.array(coef, dtype=np.float32), np.array(intercept, dtype=np.float32))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 5) probabilities in LABELS order."""
        logits = self.vectorizer.transform(list(texts)) @ self.coef.T + self.intercept
        return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))

    def save(self, model_dir: Path) -> None:
        folder = model_dir / NGRAM_DIR
        folder.mkdir(parents=True, exist_ok=True)
        columns = self.vectorizer.vocabulary_
        vocabulary = sorted(columns, key=columns.get)
        (folder / "vocabulary.json").write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
        np.savez(folder / "weights.npz", idf=self.vectorizer.idf_, coef=self.coef, intercept=self.intercept)

    @classmethod
    def load(cls, model_dir: Path) -> CharNgrams:
        folder = model_dir / NGRAM_DIR
        vocabulary = json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))
        with np.load(folder / "weights.npz", allow_pickle=False) as arrays:
            idf, coef, intercept = arrays["idf"], arrays["coef"], arrays["intercept"]
        if not (len(vocabulary) == len(idf) == coef.shape[1]) or coef.shape[0] != len(LABELS):
            raise ValueError(f"{folder}: vocabulary, idf and coefficients disagree in size")
        vectorizer = _vectorizer(vocabulary=vocabulary)
        vectorizer.idf_ = idf
        return cls(vectorizer, coef, intercept)


def mix(
    bert: np.ndarray, ngrams: np.ndarray, bert_share: np.ndarray, bert_floor: np.ndarray | None = None
) -> np.ndarray:
    """Per label `share · BERT + (1 − share) · n-grams`; a share of 1 leaves the BERT alone. Where the
    BERT's probability is under the label's floor, the BERT's own probability stands: the n-grams
    cannot raise a reply the BERT finds plainly harmless (`experiments/stack_gate/`)."""
    mixed = bert_share * bert + (1 - bert_share) * ngrams
    return mixed if bert_floor is None else np.where(bert < bert_floor, bert, mixed)
