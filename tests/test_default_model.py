"""The embedded default model: it loads offline and scores as its card says."""

import json
from pathlib import Path

import pytest

from ml import Scorer

DEFAULT = Path(__file__).resolve().parents[1] / "models" / "default"


@pytest.fixture(scope="module")
def default_scorer() -> Scorer:
    return Scorer.load(DEFAULT)


def test_default_model_is_small_and_complete():
    assert (DEFAULT / "model.safetensors").stat().st_size <= 25 * 1024 * 1024
    for name in ("config.json", "tokenizer.json", "labels.json", "MODEL_CARD.md"):
        assert (DEFAULT / name).exists()


# The card's examples were scored by ONNX int8 on the training machine; int8 kernels differ with the CPU's
# instruction set (VNNI or plain AVX2: 0.011 apart on one example), within the int8 gate's measured gaps.
INT8_TOLERANCE = 0.05


def test_default_model_scores_its_card_examples(default_scorer):
    info = json.loads((DEFAULT / "labels.json").read_text(encoding="utf-8"))
    assert info["card_examples"]
    for example in info["card_examples"]:
        result = default_scorer.score(example["text"], example["context"])
        for label, expected in example["probabilities"].items():
            got = result.probabilities[label]
            assert got == pytest.approx(expected, abs=INT8_TOLERANCE), (example["text"], label)
            threshold = info["thresholds"][label]
            assert (got >= threshold) == (expected >= threshold), (example["text"], label)
        card = (DEFAULT / "MODEL_CARD.md").read_text(encoding="utf-8")
        assert example["text"] in card


def test_default_model_separates_the_guides_clear_cases(default_scorer):
    threat = default_scorer.score("再不还钱，明天就把你的欠款信息发到你通讯录所有人手机上。")
    courteous = default_scorer.score("王先生，您的贷款已逾期3天，请今天下午6点前通过App还款1,200元。")
    assert threat.decisions["threatening"] and not courteous.decisions["threatening"]
    assert courteous.decisions["polite"] and not threat.decisions["polite"]
