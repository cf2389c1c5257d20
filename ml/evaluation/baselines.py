"""Two baselines trained on the same train split as the model, for an honest comparison.

- KeywordRules: per label, a lexicon of character n-grams learned from the train split (n-grams
  that occur in at least `min_count` positive replies with precision >= `min_precision`); a reply
  scores the best precision among the lexicon entries it contains.
- TfidfLogReg: character 1-3-gram TF-IDF with one balanced logistic regression per label.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline

from ml.data.records import label_matrix
from ml.data.text import normalise_for_model
from ml.evaluation.metrics import tune_thresholds
from ml.labels import LABELS


def _ngrams(text: str, sizes: tuple[int, ...] = (2, 3, 4)) -> set[str]:
    return {text[i : i + n] for n in sizes for i in range(len(text) - n + 1)}


class KeywordRules:
    name = "keyword_rules"

    def __init__(self, min_count: int = 4, min_precision: float = 0.75, max_keywords: int = 200) -> None:
        self.min_count, self.min_precision, self.max_keywords = min_count, min_precision, max_keywords
        self.lexicons: dict[str, dict[str, float]] = {}

    def fit(self, texts: list[str], y: np.ndarray) -> KeywordRules:
        grams = [_ngrams(normalise_for_model(t)) for t in texts]
        seen = Counter(g for gs in grams for g in gs)
        for i, label in enumerate(LABELS):
            positive = Counter(g for gs, yes in zip(grams, y[:, i]) if yes for g in gs)
            scored = {
                g: positive[g] / seen[g]
                for g in positive
                if positive[g] >= self.min_count and positive[g] / seen[g] >= self.min_precision
            }
            # ties broken by the n-gram itself: set order changes with PYTHONHASHSEED, the lexicon must not
            best = sorted(scored, key=lambda g: (-scored[g], -positive[g], g))[: self.max_keywords]
            self.lexicons[label] = {g: scored[g] for g in best}
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        grams = [_ngrams(normalise_for_model(t)) for t in texts]
        return np.array(
            [
                [
                    max((lexicon[g] for g in gs if g in lexicon), default=0.0)
                    for lexicon in (self.lexicons[label] for label in LABELS)
                ]
                for gs in grams
            ]
        )


class TfidfLogReg:
    name = "tfidf_logreg"

    def __init__(self) -> None:
        self.pipeline = make_pipeline(
            TfidfVectorizer(
                analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True, preprocessor=normalise_for_model
            ),
            OneVsRestClassifier(LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000)),
        )

    def fit(self, texts: list[str], y: np.ndarray) -> TfidfLogReg:
        self.pipeline.fit(texts, y)
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return self.pipeline.predict_proba(texts)


BASELINES = (KeywordRules, TfidfLogReg)


def fit_baselines(train, tune, objectives: dict[str, str]) -> list[tuple[KeywordRules | TfidfLogReg, dict[str, float]]]:
    """Each baseline fitted on `train` with its thresholds tuned on `tune` (labelled datasets), the
    way the model's thresholds are tuned on validation."""
    fitted = []
    for baseline_class in BASELINES:
        baseline = baseline_class().fit(train["text"], label_matrix(train))
        fitted.append((baseline, tune_thresholds(label_matrix(tune), baseline.predict_proba(tune["text"]), objectives)))
    return fitted
