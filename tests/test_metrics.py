import os

import numpy as np
import pytest

from ml.evaluation.metrics import (
    calibration,
    label_metrics,
    macro_f1_intervals,
    threshold_spread,
    tune_threshold,
    tune_thresholds,
)
from ml.labels import LABELS


def test_label_metrics_match_hand_computed_values():
    y = np.zeros((4, 5), dtype=int)
    p = np.full((4, 5), 0.1)
    # polite: truth 1,1,0,0; scores .9,.4,.6,.2 at 0.5 -> TP=1, FP=1, FN=1
    y[:, 0] = [1, 1, 0, 0]
    p[:, 0] = [0.9, 0.4, 0.6, 0.2]
    # clear: truth 1,0,1,0; perfect
    y[:, 1] = [1, 0, 1, 0]
    p[:, 1] = [0.8, 0.3, 0.7, 0.1]
    report = label_metrics(y, p, dict.fromkeys(LABELS, 0.5))
    assert report["polite"]["precision"] == 0.5 and report["polite"]["recall"] == 0.5 and report["polite"]["f1"] == 0.5
    assert report["polite"]["roc_auc"] == 0.75  # 3 of 4 positive/negative pairs ordered correctly
    assert report["polite"]["support"] == 2
    assert report["clear"]["f1"] == 1.0 and report["clear"]["pr_auc"] == 1.0
    assert report["empathetic"]["f1"] == 0.0 and report["empathetic"]["roc_auc"] is None  # no positives
    assert report["macro_f1"] == pytest.approx((0.5 + 1.0) / 5, abs=1e-4)
    assert report["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1), abs=1e-4)  # TP=3, FP=1, FN=1
    assert set(report["thresholds"]) == set(LABELS)


def test_threshold_for_best_f1():
    truth = np.array([0, 0, 1, 1, 1, 0])
    scores = np.array([0.1, 0.3, 0.35, 0.6, 0.8, 0.7])
    # cut at 0.35 -> TP3 FP1 F1=.857; at 0.6 -> TP2 FP1 F1=.667
    assert tune_threshold(truth, scores, "f1") == pytest.approx(0.35)


def test_threshold_for_target_recall_is_the_highest_cut_reaching_it():
    truth = np.array([1] * 10 + [0] * 10)
    scores = np.concatenate([np.linspace(0.95, 0.5, 10), np.linspace(0.55, 0.05, 10)])
    cut = tune_threshold(truth, scores, "recall:0.9")
    assert cut == pytest.approx(0.55)  # 9 of 10 positives lie at 0.55 or above
    assert ((scores >= cut) & (truth == 1)).sum() / 10 >= 0.9


def test_threshold_for_target_precision_keeps_the_most_recall():
    truth = np.array([1, 1, 1, 0, 1, 0, 1, 0, 0, 0])
    scores = np.linspace(0.95, 0.05, 10)
    # cut 0.75: P 1.0 R 0.6; 0.65: P 0.75 R 0.6; 0.55: P 0.8 R 0.8; 0.45: P 0.67; 0.35: P 0.71 R 1.0
    assert tune_threshold(truth, scores, "precision:0.75") == pytest.approx(0.55)
    assert tune_threshold(truth, scores, "precision:0.99") == pytest.approx(0.75)
    assert tune_threshold(np.array([0, 1]), np.array([0.9, 0.1]), "precision:0.9") == pytest.approx(0.1)


def test_balanced_threshold_does_not_move_with_the_share_of_positives():
    positives = np.linspace(0.3, 0.95, 14)
    negatives = np.linspace(0.05, 0.6, 24)
    cuts = {}
    for copies in (1, 6):  # the same two score distributions, positives six times as common
        truth = np.array([1] * 14 * copies + [0] * 24)
        scores = np.concatenate([np.tile(positives, copies), negatives])
        cuts[copies] = (tune_threshold(truth, scores, "balanced"), tune_threshold(truth, scores, "f1"))
    assert cuts[1][0] == pytest.approx(cuts[6][0])
    assert cuts[6][1] < cuts[1][1]  # the F1-best cut-off falls as positives become common
    truth = np.array([0, 0, 1, 1])
    assert tune_threshold(truth, np.array([0.1, 0.4, 0.35, 0.8]), "balanced") == pytest.approx(0.8)


def test_tune_thresholds_uses_objective_per_label():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(200, 5))
    p = np.clip(y * 0.4 + rng.random((200, 5)) * 0.6, 0, 1)
    cuts = tune_thresholds(y, p, {"threatening": "recall:0.95"})
    recall = ((p[:, 3] >= cuts["threatening"]) & (y[:, 3] == 1)).sum() / y[:, 3].sum()
    assert recall >= 0.95


def test_expected_calibration_error_by_hand():
    y = np.zeros((4, 5))
    p = np.zeros((4, 5))
    y[:, 0] = [1, 0, 1, 1]
    p[:, 0] = [0.95, 0.95, 0.15, 0.15]
    # bin 9: confidence .95, observed .5 -> .45 ; bin 1: confidence .15, observed 1.0 -> .85 ; each half the data
    assert calibration(y, p)["polite"]["ece"] == pytest.approx(0.5 * 0.45 + 0.5 * 0.85)


def test_keyword_lexicon_does_not_depend_on_set_order():
    import subprocess
    import sys

    code = (
        "import numpy as np; from ml.evaluation.baselines import KeywordRules;"
        "texts = ['你再不还钱我们就去你单位', '再不还就上门找你家人', '您好请问还有什么可以帮您'] * 4;"
        "y = np.array([[0, 0, 0, 1, 0], [0, 0, 0, 1, 0], [1, 1, 0, 0, 0]] * 4);"
        "print(list(KeywordRules(max_keywords=3).fit(texts, y).lexicons['threatening']))"
    )
    lexicons = {
        subprocess.run(
            [sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(lexicons) == 1 and "'" in lexicons.pop()


def test_macro_f1_intervals_hold_the_estimate_and_order_a_better_system_first():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, (400, 5))
    good = np.where(rng.random((400, 5)) < 0.9, truth, 1 - truth)  # 10% of decisions wrong
    poor = np.where(rng.random((400, 5)) < 0.6, truth, 1 - truth)
    intervals, leads = macro_f1_intervals(truth, {"good": good, "poor": poor}, resamples=300)
    for name, decisions in (("good", good), ("poor", poor)):
        low, high = intervals[name]
        assert low < f1_score(truth, decisions, average="macro", zero_division=0) < high
        assert high - low < 0.1
    assert 0 < leads["poor"][0] < leads["poor"][1]  # the gap is clear of zero
    _, same = macro_f1_intervals(truth, {"a": good, "b": good}, resamples=50)
    assert same["b"] == [0.0, 0.0]


def test_threshold_spread_is_wide_where_the_classes_overlap_and_skips_a_one_class_label():
    rng = np.random.default_rng(3)
    y = np.zeros((400, len(LABELS)), dtype=int)
    y[:200, 0] = 1  # polite: half positive
    y[:100, 1] = 1  # clear: a quarter positive
    scores = rng.uniform(0, 1, (400, len(LABELS)))
    scores[:, 0] = np.where(y[:, 0] == 1, 0.9, 0.1) + rng.normal(0, 0.02, 400)  # separated: one clear cut-off
    spread = threshold_spread(y, scores, {}, resamples=100)
    assert set(spread) == {"polite", "clear"}  # the other labels have no positives
    assert spread["polite"][0] - 0.01 <= tune_threshold(y[:, 0], scores[:, 0]) <= spread["polite"][1] + 0.01
    assert spread["polite"][1] - spread["polite"][0] < 0.1 < spread["clear"][1] - spread["clear"][0]  # clear: noise
