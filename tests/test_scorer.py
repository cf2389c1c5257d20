import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ml import InvalidReply, ReplyScore, Scorer
from ml.labels import LABELS
from ml.modeling.scorer import length_batches


def test_scores_have_probabilities_decisions_and_identity(tiny_scorer):
    results = tiny_scorer.score(["您好，请问有什么可以帮您？", "再不还钱就去你家找你"], ["", "我没钱"])
    assert len(results) == 2 and all(isinstance(r, ReplyScore) for r in results)
    for result in results:
        assert list(result.probabilities) == list(LABELS) and list(result.decisions) == list(LABELS)
        assert all(0.0 <= p <= 1.0 for p in result.probabilities.values())
        assert result.model == "replyqa-test" and result.version == tiny_scorer.info.version
    single = tiny_scorer.score("您好")
    assert isinstance(single, ReplyScore)


def test_decisions_apply_the_saved_thresholds(tiny_scorer):
    texts = [f"您好，第{i}个问题的答案是{i * 37}元。" for i in range(12)]
    probabilities = tiny_scorer.predict_proba(texts)
    assert probabilities.shape == (12, 5)
    for row, result in zip(probabilities, tiny_scorer.score(texts)):
        for j, label in enumerate(LABELS):
            assert result.decisions[label] == bool(row[j] >= tiny_scorer.info.thresholds[label])


def test_batching_and_length_bucketing_do_not_change_scores(tiny_scorer):
    texts = ["好", "您好，您本期应还1,280元，还款日是6月15日。" * 3, "请稍等", "理解您的难处，我帮您申请分期。"]
    together = tiny_scorer.predict_proba(texts)
    alone = np.vstack([tiny_scorer.predict_proba([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_length_batches_cover_every_reply_once_and_keep_long_ones_apart():
    rng = np.random.default_rng(0)
    lengths = list(rng.integers(3, 200, size=500))
    batches = length_batches(lengths, 32)
    assert sorted(i for batch in batches for i in batch) == list(range(500))
    for batch in batches:
        assert 1 <= len(batch) <= 32
        shortest, longest = min(lengths[i] for i in batch), max(lengths[i] for i in batch)
        assert longest <= 1.5 * shortest or longest <= shortest + 8  # little padding in any batch
    assert [list(b) for b in length_batches([5, 40, 6, 7, 12, 13, 14], 3)] == [[0, 2, 3], [4, 5, 6], [1]]


def test_input_rules(tiny_scorer):
    assert tiny_scorer.check_reply("  您好  ") == "您好"
    with pytest.raises(InvalidReply, match="empty"):
        tiny_scorer.score("   ")
    with pytest.raises(InvalidReply, match="maximum is 300"):
        tiny_scorer.score("好" * 301)
    with pytest.raises(InvalidReply, match="item 1"):
        tiny_scorer.score(["您好", ""])
    with pytest.raises(InvalidReply, match="string"):
        tiny_scorer.check_reply(42)


def test_token_limit_trims_the_context_first(tiny_scorer):
    encoder, limit = tiny_scorer.encoder, tiny_scorer.info.max_length
    reply = "您好，您的账单已出，请按时还款。"
    encoded = encoder.encode([reply], ["客户说了很长很长的话" * 50])[0]
    assert len(encoded.ids) == limit
    second = [token for token, segment in zip(encoded.tokens, encoded.type_ids) if segment == 1]
    assert "".join(second).replace("[SEP]", "") == "您好,您的账单已出,请按时还款。"  # the whole reply survives
    long_reply = encoder.encode(["好" * 500], ["上下文"])[0]
    assert len(long_reply.ids) == limit  # an over-long reply alone is truncated


def test_evidence_spans_lie_inside_the_text(tiny_scorer):
    text = "再不还钱，明天就把你的欠款信息发到你通讯录所有人手机上。"
    base = tiny_scorer.score(text)
    evidence = tiny_scorer.explain(text, "", list(LABELS), base.probabilities, min_drop=-1.0)
    assert set(evidence) == set(LABELS)
    for spans in evidence.values():
        assert spans and len(spans) <= 3
        for span in spans:
            assert 0 <= span.start < span.end <= len(text) and text[span.start : span.end] == span.text
    explained = tiny_scorer.score(text, explain=True)
    assert set(explained.evidence) == {label for label, yes in explained.decisions.items() if yes}


# ---------------------------------------------------------------- broken model directories


def copy_model(source, tmp_path):
    import shutil

    target = tmp_path / "model"
    shutil.copytree(source, target)
    return target


def edit_json(path, change):
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize(
    "breakage, words",
    [
        (lambda d: (d / "labels.json").unlink(), "no labels.json"),
        (lambda d: (d / "labels.json").write_text("{not json"), "not valid JSON"),
        (
            lambda d: edit_json(d / "labels.json", lambda j: j.update(labels=[*j["labels"][1:], j["labels"][0]])),
            "disagrees with config.json id2label",
        ),
        (lambda d: edit_json(d / "labels.json", lambda j: j["thresholds"].update(threatening=1.5)), "outside (0, 1)"),
        (lambda d: edit_json(d / "labels.json", lambda j: j["thresholds"].update(clear=0)), "outside (0, 1)"),
        (lambda d: edit_json(d / "labels.json", lambda j: j["thresholds"].pop("polite")), "thresholds must name"),
        (lambda d: edit_json(d / "labels.json", lambda j: j.update(labels=["a", "b", "c", "d", "e"])), "not the five"),
        (lambda d: [(d / "model.safetensors").unlink(), shutil.rmtree(d / "onnx")], "cannot load the model"),
        (lambda d: [f.write_bytes(b"not a graph") for f in (d / "onnx").glob("*.onnx")], "not a usable ONNX model"),
    ],
)
def test_a_broken_model_directory_is_refused_with_one_clear_line(tiny_trained_model, tmp_path, breakage, words):
    from ml.modeling.model_info import ModelLoadError

    model = copy_model(tiny_trained_model, tmp_path)
    breakage(model)
    with pytest.raises(ModelLoadError, match=words.replace("(", r"\(").replace(")", r"\)")) as error:
        Scorer.load(model)
    assert "\n" not in str(error.value)


def test_the_cli_reports_a_broken_model_in_one_line_without_a_traceback(tiny_trained_model, tmp_path):
    model = copy_model(tiny_trained_model, tmp_path)
    (model / "labels.json").unlink()
    (tmp_path / "in.jsonl").write_text('{"text": "您好"}\n', encoding="utf-8")
    for command in (["score", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl")], ["serve"]):
        result = subprocess.run(
            [sys.executable, "-c", "from ml.cli import main; main()", *command, "--model", str(model)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2, result.stderr
        assert "no labels.json" in result.stderr and "Traceback" not in result.stderr
        assert len([line for line in result.stderr.splitlines() if line.strip()]) <= 2


def test_a_hub_checkpoint_without_labels_json_falls_back_with_a_warning(tiny_trained_model, tmp_path, monkeypatch):
    import ml.modeling.scorer

    model = copy_model(tiny_trained_model, tmp_path)
    (model / "labels.json").unlink()
    monkeypatch.setattr(ml.modeling.scorer, "resolve_model_source", lambda source: str(model))  # as if a hub name
    with pytest.warns(UserWarning, match="thresholds of 0.5"):
        scorer = Scorer.load("someone/replyqa-checkpoint")
    assert scorer.info.thresholds == dict.fromkeys(LABELS, 0.5)


def test_blank_and_invalid_replies_are_refused(tiny_scorer):
    for text in ("\x00", "\u200b\ufeff", " \t\n"):
        with pytest.raises(InvalidReply, match="empty"):
            tiny_scorer.check_reply(text)
    with pytest.raises(InvalidReply, match="lone surrogate"):
        tiny_scorer.check_reply("好\ud800")
    assert tiny_scorer.check_reply("\u200b 您好") == "\u200b 您好".strip()
