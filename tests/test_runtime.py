"""The CPU inference path: ONNX export agrees with PyTorch, the saved tokenizer carries the text
normalisation (so a plain transformers pipeline agrees with the Scorer), and the quality gate decides."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ml import Scorer
from ml.labels import LABELS

TEXTS = [
    "您好，您本期应还1,280元，还款日是6月15日。",
    "這個月的帳單已經出了，請您按時還款。",  # Traditional characters
    "ＡＰＰ裡面可以一鍵還款哦～",  # full-width letters, Traditional
    "好",
    "再不还钱，明天就把你的欠款信息发到你通讯录所有人手机上。" * 3,
]
CONTEXTS = ["我这个月要还多少？", "", "怎麼還款？", "谢谢", "客户说了很长很长的话" * 30]


def test_onnx_fp32_agrees_with_torch(tiny_trained_model):
    torch_scorer = Scorer.load(tiny_trained_model, runtime="torch")
    onnx_scorer = Scorer.load(tiny_trained_model, runtime="onnx", precision="fp32")
    assert onnx_scorer.runtime == "onnx-fp32" and torch_scorer.runtime == "torch-fp32"
    for contexts in (CONTEXTS, None):
        expected = torch_scorer.predict_proba(TEXTS, contexts)
        np.testing.assert_allclose(onnx_scorer.predict_proba(TEXTS, contexts), expected, atol=1e-3)
    # batches of mixed lengths (padding) give the same numbers as one reply at a time
    one_by_one = np.vstack([onnx_scorer.predict_proba([t], [c]) for t, c in zip(TEXTS, CONTEXTS)])
    np.testing.assert_allclose(onnx_scorer.predict_proba(TEXTS, CONTEXTS), one_by_one, atol=1e-4)


def test_default_runtime_is_what_the_export_recorded(tiny_trained_model):
    from ml.modeling.backends import cpu_has_amx_bf16

    recorded = json.loads((tiny_trained_model / "labels.json").read_text(encoding="utf-8"))["cpu_runtime"]
    gate = recorded["int8_gate"]
    assert set(gate["sets"]) == {"validation", "test"}
    assert recorded["precision"] == ("int8" if gate["passed"] else "fp32")
    assert Scorer.load(tiny_trained_model, runtime="portable").runtime == f"onnx-{recorded['precision']}"
    bf16 = recorded["bf16_gate"]
    assert set(bf16["sets"]) == ({"validation", "test"} if cpu_has_amx_bf16() else set())
    faster = bf16["passed"] and cpu_has_amx_bf16()
    assert Scorer.load(tiny_trained_model).runtime == ("openvino-bf16" if faster else f"onnx-{recorded['precision']}")


def test_auto_takes_openvino_bf16_only_where_the_cpu_has_it_and_the_gate_passed(monkeypatch):
    from ml.modeling import scorer as scorer_module
    from ml.modeling.model_info import ModelInfo
    from ml.modeling.scorer import choose_runtime

    passed = ModelInfo(cpu_runtime={"runtime": "onnx", "precision": "int8", "bf16_gate": {"passed": True}})
    failed = ModelInfo(cpu_runtime={"runtime": "onnx", "precision": "int8", "bf16_gate": {"passed": False}})
    monkeypatch.setattr(scorer_module, "cpu_has_amx_bf16", lambda: True)
    assert choose_runtime("auto", None, passed, "cpu") == ("openvino", "bf16")
    assert choose_runtime("auto", "int8", passed, "cpu") == ("onnx", "int8")  # a precision asked for wins
    assert choose_runtime("portable", None, passed, "cpu") == ("onnx", None)
    assert choose_runtime("auto", None, failed, "cpu") == ("onnx", None)
    assert choose_runtime("auto", None, passed, "cuda") == ("torch", None)
    assert choose_runtime("auto", None, ModelInfo(), "cpu") == ("torch", None)  # no export recorded
    monkeypatch.setattr(scorer_module, "cpu_has_amx_bf16", lambda: False)
    assert choose_runtime("auto", None, passed, "cpu") == ("onnx", None)
    assert choose_runtime("auto", "bf16", failed, "cpu") == ("openvino", "bf16")  # asked for by name


def test_a_precision_the_runtime_does_not_offer_is_refused_in_one_line(tiny_trained_model):
    from ml.modeling.model_info import ModelLoadError

    with pytest.raises(ModelLoadError, match="the onnx runtime runs fp32 or int8, not bf16"):
        Scorer.load(tiny_trained_model, runtime="onnx", precision="bf16")
    with pytest.raises(ModelLoadError, match="the openvino runtime runs bf16 or fp32, not int8"):
        Scorer.load(tiny_trained_model, runtime="openvino", precision="int8")


def test_openvino_agrees_with_onnx(tiny_trained_model):
    from ml.modeling.backends import openvino_path

    assert openvino_path(tiny_trained_model).exists()  # shipped beside the weights
    expected = Scorer.load(tiny_trained_model, runtime="onnx", precision="fp32").predict_proba(TEXTS, CONTEXTS)
    fp32 = Scorer.load(tiny_trained_model, runtime="openvino", precision="fp32")
    assert fp32.runtime == "openvino-fp32"
    np.testing.assert_allclose(fp32.predict_proba(TEXTS, CONTEXTS), expected, atol=1e-3)
    bf16 = Scorer.load(tiny_trained_model, runtime="openvino", precision="bf16")  # fp32 where the CPU cannot
    assert np.abs(bf16.predict_proba(TEXTS, CONTEXTS) - expected).max() < 0.05


def test_openvino_batches_are_padded_to_a_multiple_of_16_tokens_and_onnx_batches_are_not(tiny_trained_model):
    # The padded positions are masked: the agreement test above runs on these padded batches.
    def widths(scorer: Scorer) -> list[int]:
        return [batch["input_ids"].shape[1] for _, batch in scorer.model_batches(TEXTS, CONTEXTS)]

    onnx = Scorer.load(tiny_trained_model, runtime="onnx", precision="fp32")
    longest = [int(batch["attention_mask"].sum(axis=1).max()) for _, batch in onnx.model_batches(TEXTS, CONTEXTS)]
    assert widths(onnx) == longest
    openvino = widths(Scorer.load(tiny_trained_model, runtime="openvino", precision="fp32"))
    assert openvino == [-(-width // 16) * 16 for width in longest] and openvino != longest


def test_the_bf16_gate_is_not_passed_where_it_cannot_be_measured(tiny_trained_model, monkeypatch):
    from ml.evaluation import evaluate

    monkeypatch.setattr(evaluate, "cpu_has_amx_bf16", lambda: False)
    gate = evaluate.runtime_gates(tiny_trained_model, {}, {"bf16": "openvino"})["bf16"]
    assert gate["passed"] is False and gate["sets"] == {} and "no AMX bf16" in gate["not_measured"]


def test_int8_export_runs_and_stays_close(tiny_trained_model):
    fp32 = Scorer.load(tiny_trained_model, runtime="onnx", precision="fp32").predict_proba(TEXTS, CONTEXTS)
    int8 = Scorer.load(tiny_trained_model, runtime="onnx", precision="int8").predict_proba(TEXTS, CONTEXTS)
    assert np.abs(fp32 - int8).max() < 0.05


def test_the_saved_tokenizer_normalises_like_the_model_expects(tiny_trained_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_trained_model)
    assert tokenizer.tokenize("這個帳單") == tokenizer.tokenize("这个帐单")
    assert tokenizer.tokenize("ＡＰＰ，") == tokenizer.tokenize("app,")


def test_a_plain_pipeline_agrees_with_the_scorer(tiny_trained_model):
    from transformers import pipeline

    classify = pipeline(
        "text-classification", model=str(tiny_trained_model), top_k=None, function_to_apply="sigmoid", device=-1
    )
    scorer = Scorer.load(tiny_trained_model, runtime="torch")
    expected = scorer.predict_proba(TEXTS)
    for row, output in zip(expected, classify(TEXTS)):
        by_label = {item["label"]: item["score"] for item in output}
        np.testing.assert_allclose([by_label[label] for label in LABELS], row, atol=1e-4)


def test_onnx_path_needs_a_local_directory():
    from ml.modeling.model_info import ModelLoadError

    with pytest.raises(ModelLoadError, match="local model directory"):
        Scorer.load("some-org/some-hub-model", runtime="onnx")


def test_the_committed_charsmap_is_what_the_builder_makes():
    pytest.importorskip("sentencepiece")
    from ml.modeling.resources.build_charsmap import TARGET, build_charsmap

    assert build_charsmap() == TARGET.read_bytes()


def test_a_missing_onnx_file_is_exported_into_the_cache_not_the_model_directory(tiny_trained_model, tmp_path):
    import os
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_trained_model, model)
    (model / "onnx" / "model.onnx").unlink()
    before = sorted(p.name for p in model.rglob("*"))
    scorer = Scorer.load(model, runtime="onnx", precision="fp32")
    assert scorer.runtime == "onnx-fp32"
    assert sorted(p.name for p in model.rglob("*")) == before
    assert list(Path(os.environ["REPLYQA_CACHE"]).rglob("model.onnx"))
