"""Multi-label metrics, threshold tuning and calibration (scikit-learn underneath)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from ml.config import parse_objective
from ml.labels import LABELS


def label_metrics(y_true: np.ndarray, probabilities: np.ndarray, thresholds: dict[str, float]) -> dict[str, Any]:
    """One flat object: per label (keyed by name) precision, recall, F1, ROC-AUC, PR-AUC, support;
    `macro_f1`, `micro_f1`; the `thresholds` used."""
    cutoffs = np.array([thresholds[label] for label in LABELS])
    y_pred = (probabilities >= cutoffs).astype(int)
    per_label = {}
    for i, label in enumerate(LABELS):
        truth, scores = y_true[:, i], probabilities[:, i]
        precision, recall, f1, _ = precision_recall_fscore_support(
            truth, y_pred[:, i], average="binary", zero_division=0
        )
        both_classes = 0 < truth.sum() < len(truth)
        per_label[label] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
            "roc_auc": round(float(roc_auc_score(truth, scores)), 4) if both_classes else None,
            "pr_auc": round(float(average_precision_score(truth, scores)), 4) if both_classes else None,
            "support": int(truth.sum()),
        }
    return {
        **per_label,
        "macro_f1": round(float(f1_score(y_true, y_pred, average="macro", zero_division=0)), 4),
        "micro_f1": round(float(f1_score(y_true, y_pred, average="micro", zero_division=0)), 4),
        "thresholds": {label: round(float(t), 4) for label, t in thresholds.items()},
    }


def macro_f1_intervals(
    y_true: np.ndarray, decisions: dict[str, np.ndarray], resamples: int = 1000, seed: int = 13
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """95% percentile-bootstrap intervals of macro-F1 for each system's decisions on the same records,
    and of the first system's lead over each other one, the records resampled alike for all (a paired
    bootstrap). They say how much the numbers would move with another sample of these writers'
    replies, not with other writers. Returns (intervals per system, lead over each other system)."""
    rng = np.random.default_rng(seed)
    names = list(decisions)
    samples = {name: np.empty(resamples) for name in names}
    for r in range(resamples):
        rows = rng.integers(0, len(y_true), len(y_true))
        for name in names:
            samples[name][r] = f1_score(y_true[rows], decisions[name][rows], average="macro", zero_division=0)

    def interval(values: np.ndarray) -> list[float]:
        return [round(float(v), 4) for v in np.percentile(values, [2.5, 97.5])]

    first = samples[names[0]]
    return (
        {name: interval(values) for name, values in samples.items()},
        {name: interval(first - samples[name]) for name in names[1:]},
    )


def recall_at_precision(truth: np.ndarray, scores: np.ndarray, min_precision: float) -> float | None:
    """The highest recall any cut-off reaches while precision stays at or above `min_precision`
    (threshold-free: how good the ranking is for a risk label); None without positives."""
    if truth.sum() == 0:
        return None
    precision, recall, _ = precision_recall_curve(truth, scores)
    reaching = recall[precision >= min_precision]
    return round(float(reaching.max()), 4) if len(reaching) else 0.0


def tune_threshold(truth: np.ndarray, scores: np.ndarray, objective: str = "f1") -> float:
    """`f1`: the cut-off with the best F1. `balanced`: the best recall minus false-positive rate
    (Youden's J), which unlike F1 does not move with the share of positives. `recall:R`: the highest
    cut-off whose recall is at least R (so precision is as high as that recall allows). `precision:P`:
    the cut-off with the most recall among those whose precision is at least P (the best F1 when none
    reaches P)."""
    kind, target = parse_objective(objective)
    if kind == "balanced":
        false_positive_rate, true_positive_rate, roc_cutoffs = roc_curve(truth, scores)
        best = 1 + int(np.argmax((true_positive_rate - false_positive_rate)[1:]))  # the first cut-off is +inf
        return float(roc_cutoffs[best])
    precision, recall, cutoffs = precision_recall_curve(truth, scores)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
    if kind == "f1":
        return float(cutoffs[int(np.argmax(f1))])
    if kind == "recall":
        reaching = np.nonzero(recall >= target)[0]
        return float(cutoffs[reaching.max()]) if len(reaching) else float(cutoffs.min())
    reaching = np.nonzero(precision >= target)[0]
    if not len(reaching):
        return float(cutoffs[int(np.argmax(f1))])
    return float(cutoffs[reaching[np.argmax(recall[reaching])]])


def tune_thresholds(y_true: np.ndarray, probabilities: np.ndarray, objectives: dict[str, str]) -> dict[str, float]:
    """One cut-off per label on validation data; labels not named in `objectives` maximise F1."""
    return {
        label: tune_threshold(y_true[:, i], probabilities[:, i], objectives.get(label, "f1"))
        for i, label in enumerate(LABELS)
    }


def threshold_spread(
    y_true: np.ndarray, probabilities: np.ndarray, objectives: dict[str, str], resamples: int = 200, seed: int = 0
) -> dict[str, list[float]]:
    """Each label's cut-off re-tuned on bootstrap resamples of the tuning data: its 5th and 95th
    percentile, how far the operating point would move with another draw of those records
    (resamples without both classes of a label are skipped for that label)."""
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(y_true), len(y_true)) for _ in range(resamples)]
    spread = {}
    for i, label in enumerate(LABELS):
        cutoffs = [
            tune_threshold(y_true[rows, i], probabilities[rows, i], objectives.get(label, "f1"))
            for rows in draws
            if 0 < y_true[rows, i].sum() < len(rows)
        ]
        if cutoffs:
            spread[label] = [round(float(v), 4) for v in np.percentile(cutoffs, [5, 95])]
    return spread


def calibration(y_true: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Expected calibration error per label (equal-width bins) and the reliability-curve points."""
    edges = np.linspace(0, 1, bins + 1)
    result = {}
    for i, label in enumerate(LABELS):
        which = np.clip(np.digitize(probabilities[:, i], edges[1:-1]), 0, bins - 1)
        points, ece = [], 0.0
        for b in range(bins):
            members = which == b
            if members.any():
                confidence, accuracy = probabilities[members, i].mean(), y_true[members, i].mean()
                ece += members.mean() * abs(confidence - accuracy)
                points.append(
                    {
                        "bin": b,
                        "confidence": round(float(confidence), 4),
                        "observed": round(float(accuracy), 4),
                        "count": int(members.sum()),
                    }
                )
        result[label] = {"ece": round(float(ece), 4), "points": points}
    return result


def pr_curve_points(y_true: np.ndarray, probabilities: np.ndarray, max_points: int = 200) -> list[dict]:
    """Precision-recall points per label, thinned, in a flat table for `dvc plots`."""
    rows = []
    for i, label in enumerate(LABELS):
        precision, recall, _ = precision_recall_curve(y_true[:, i], probabilities[:, i])
        keep = np.unique(np.linspace(0, len(recall) - 1, min(max_points, len(recall))).astype(int))
        rows += [
            {"label": label, "recall": round(float(recall[k]), 4), "precision": round(float(precision[k]), 4)}
            for k in keep
        ]
    return rows
