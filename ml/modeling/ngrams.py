"""The character n-gram part of a stacked model (`replyqa stack`): TF-IDF over character 1-3-grams
of the reply as the BERT reads it, one balanced logistic regression per label, mixed into the
BERT's probabilities per label. On writers the model never saw it ranks the risk labels better than
our BERT (`experiments/stacking/`); it reads the reply only, never the context.

Saved beside the BERT as plain arrays (`ngrams/vocabulary.json`, `ngrams/weights.npz`): no pickle.
Fitting uses scikit-learn; scoring computes the same TF-IDF itself (`tfidf_rows`), because importing
scikit-learn took 1.3 s of a 2.7 s one-row job (AMD EPYC, 2026-12-02). A test holds the two equal.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ml.data.text import normalise_for_model
from ml.labels import LABELS

NGRAM_DIR = "ngrams"
VECTORIZER = {"analyzer": "char", "ngram_range": (1, 3), "sublinear_tf": True}  # the TF-IDF baseline's recipe
MIN_DF = 2


def as_model_reads(text: str) -> str:
    """NFKC and Simplified like the BERT's tokenizer, and no whitespace at all: ASR-style spaces
    between characters would otherwise break every 2- and 3-gram."""
    return normalise_for_model(text).replace(" ", "")


def _vectorizer(**kwargs):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(preprocessor=as_model_reads, **VECTORIZER, **kwargs)


WHITESPACE_RUNS = re.compile(r"\s\s+")  # what scikit-learn's character analyzer folds to one space


def char_ngrams(text: str) -> list[str]:
    """The reply's character n-grams exactly as the fitted `TfidfVectorizer` analyses it."""
    text = WHITESPACE_RUNS.sub(" ", as_model_reads(text))
    shortest, longest = VECTORIZER["ngram_range"]
    return [text[i : i + n] for n in range(shortest, longest + 1) for i in range(len(text) - n + 1)]


def tfidf_rows(
    texts: Sequence[str], vocabulary: dict[str, int], idf: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sublinear, L2-normalised TF-IDF of `texts` as (row, column, value) arrays: what
    `TfidfVectorizer.transform` computes, without importing scikit-learn."""
    rows, columns, counts = [], [], []
    for row, text in enumerate(texts):
        found = Counter(map(vocabulary.get, char_ngrams(text)))
        found.pop(None, None)  # n-grams outside the vocabulary
        rows.extend([row] * len(found))
        columns.extend(found)
        counts.extend(found.values())
    rows, columns = np.array(rows, dtype=np.intp), np.array(columns, dtype=np.intp)
    values = (1.0 + np.log(np.array(counts, dtype=np.float64))) * idf[columns]
    norms = np.sqrt(np.bincount(rows, values**2, minlength=len(texts)))
    return rows, columns, values / norms[rows]


class CharNgrams:
    def __init__(self, vocabulary: dict[str, int], idf: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> None:
        self.vocabulary, self.idf, self.coef, self.intercept = vocabulary, idf, coef, intercept

    @classmethod
    def fit(cls, texts: Sequence[str], y: np.ndarray, c: float) -> CharNgrams:
        """`y` (n, 5) in LABELS order; UNKNOWN cells (partially labelled records) are left out of
        that label's regression only. `c`: the regressions' inverse regularisation strength (`stack.ngram_c`)."""
        from sklearn.linear_model import LogisticRegression

        from ml.data.records import UNKNOWN  # training only: records imports datasets and pandas

        vectorizer = _vectorizer(min_df=MIN_DF)
        x = vectorizer.fit_transform(list(texts))
        coef, intercept = [], []
        for i in range(len(LABELS)):
            known = y[:, i] != UNKNOWN
            regression = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(x[known], y[known, i])
            coef.append(regression.coef_[0])
            intercept.append(regression.intercept_[0])
        coef, intercept = np.array(coef, dtype=np.float32), np.array(intercept, dtype=np.float32)
        return cls(dict(vectorizer.vocabulary_), vectorizer.idf_, coef, intercept)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 5) probabilities in LABELS order."""
        rows, columns, values = tfidf_rows(texts, self.vocabulary, self.idf)
        logits = np.stack(
            [np.bincount(rows, values * weights[columns], minlength=len(texts)) for weights in self.coef], axis=1
        )
        return 1.0 / (1.0 + np.exp(-(logits + self.intercept)))

    def save(self, model_dir: Path) -> None:
        folder = model_dir / NGRAM_DIR
        folder.mkdir(parents=True, exist_ok=True)
        vocabulary = sorted(self.vocabulary, key=self.vocabulary.get)
        (folder / "vocabulary.json").write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
        np.savez(folder / "weights.npz", idf=self.idf, coef=self.coef, intercept=self.intercept)

    @classmethod
    def load(cls, model_dir: Path) -> CharNgrams:
        folder = model_dir / NGRAM_DIR
        vocabulary = json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))
        with np.load(folder / "weights.npz", allow_pickle=False) as arrays:
            idf, coef, intercept = arrays["idf"], arrays["coef"], arrays["intercept"]
        if not (len(vocabulary) == len(idf) == coef.shape[1]) or coef.shape[0] != len(LABELS):
            raise ValueError(f"{folder}: vocabulary, idf and coefficients disagree in size")
        return cls({gram: column for column, gram in enumerate(vocabulary)}, idf, coef, intercept)


def mix(
    bert: np.ndarray, ngrams: np.ndarray, bert_share: np.ndarray, bert_floor: np.ndarray | None = None
) -> np.ndarray:
    """Per label `share · BERT + (1 − share) · n-grams`; a share of 1 leaves the BERT alone. Where the
    BERT's probability is under the label's floor, the BERT's own probability stands: the n-grams
    cannot raise a reply the BERT finds plainly harmless (`experiments/stack_gate/`)."""
    mixed = bert_share * bert + (1 - bert_share) * ngrams
    return mixed if bert_floor is None else np.where(bert < bert_floor, bert, mixed)
