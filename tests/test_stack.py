"""The stacked model: the character n-gram part saved without pickle, and a stacked directory that
`Scorer.load` scores as the per-label mix of its two parts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ml.config import StackConfig, TrainConfig
from ml.data.records import UNKNOWN, label_matrix, load_labelled
from ml.labels import LABELS
from ml.modeling.model_info import ModelLoadError
from ml.modeling.ngrams import NGRAM_DIR, CharNgrams, mix

SHARES = {"polite": 1.0, "clear": 1.0, "empathetic": 0.5, "threatening": 0.2, "privacy_risk": 0.0}


@pytest.fixture(scope="module")
def train_config(small_splits) -> TrainConfig:
    return TrainConfig(
        train_file=str(small_splits["train"]),
        validation_file=str(small_splits["validation"]),
        test_file=str(small_splits["test"]),
        negatives=[],
    )


@pytest.fixture(scope="module")
def stacked(tmp_path_factory, tiny_trained_model, train_config):
    from ml.modeling.stack import stack

    out = tmp_path_factory.mktemp("stacked") / "model"
    info = stack(tiny_trained_model, out, train_config, StackConfig(bert_share=SHARES))
    return out, info


def test_ngram_part_round_trips_without_pickle(tmp_path, small_splits):
    train = load_labelled([small_splits["train"]])
    y = label_matrix(train)
    y[:10, LABELS.index("polite")] = UNKNOWN  # partially labelled rows are left out of that label only
    ngrams = CharNgrams.fit(list(train["text"]), y, StackConfig().ngram_c)
    ngrams.save(tmp_path)
    assert sorted(p.name for p in (tmp_path / NGRAM_DIR).iterdir()) == ["vocabulary.json", "weights.npz"]
    texts = ["您好，请问有什么可以帮您？", "再不还钱就去你单位找你"]
    np.testing.assert_allclose(CharNgrams.load(tmp_path).predict_proba(texts), ngrams.predict_proba(texts), atol=1e-6)


def test_ngram_part_reads_the_text_as_the_model_does(small_splits):
    train = load_labelled([small_splits["train"]])
    ngrams = CharNgrams.fit(list(train["text"]), label_matrix(train), StackConfig().ngram_c)
    plain = "您好，这边看到您的账单已经逾期三天了"
    noisy = [" ".join(plain), "您好,這邊看到您的賬單已經逾期三天了"]  # ASR spaces; half-width, Traditional
    np.testing.assert_allclose(ngrams.predict_proba(noisy), ngrams.predict_proba([plain, plain]), atol=1e-9)


def test_ngram_part_scores_what_scikit_learns_tfidf_computes(small_splits):
    from ml.modeling.ngrams import _vectorizer  # what fitting uses

    train = load_labelled([small_splits["train"]])
    ngrams = CharNgrams.fit(list(train["text"]), label_matrix(train), StackConfig().ngram_c)
    reference = _vectorizer(vocabulary=ngrams.vocabulary)
    reference.idf_ = ngrams.idf
    texts = list(train["text"]) + ["", "  \t ", "第一行\n\n\n第二行", "ＡＢＣ１２３？！", "𠮷野家", "逾期" * 300]
    expected = 1 / (1 + np.exp(-(reference.transform(texts) @ ngrams.coef.T + ngrams.intercept)))
    np.testing.assert_allclose(ngrams.predict_proba(texts), expected, rtol=0, atol=1e-12)


def test_scoring_a_stacked_model_imports_no_training_library(stacked):
    """A one-row job pays for every import: scikit-learn alone took 1.3 s of 2.7 s (AMD EPYC)."""
    out, _ = stacked
    code = (
        "import sys; from ml import Scorer; "
        f"s = Scorer.load({str(out)!r}, runtime='portable'); s.predict_proba(['您好'], ['']); "
        "print(sorted(m for m in ('sklearn', 'scipy', 'torch', 'mlflow', 'datasets', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_stacked_model_scores_the_mix_of_its_parts(stacked, tiny_trained_model, train_config):
    from ml import Scorer

    out, info = stacked
    bert, both = Scorer.load(tiny_trained_model), Scorer.load(out)
    assert both.runtime.endswith("+ngrams") and both.info.version != bert.info.version
    assert both.info.name == f"{bert.info.name}-stacked"
    texts, contexts = ["您好，请问有什么可以帮您？", "不还钱我们就上门"], ["", "我下周还"]
    ngrams = CharNgrams.load(out)
    expected = mix(bert.predict_proba(texts, contexts), ngrams.predict_proba(texts), np.array(list(SHARES.values())))
    np.testing.assert_allclose(both.predict_proba(texts, contexts), expected, atol=1e-5)
    assert {label: info.thresholds[label] for label in ("polite", "clear")} == {
        label: bert.info.thresholds[label] for label in ("polite", "clear")
    }
    assert set(info.test_metrics) >= {"macro_f1", *LABELS}
    assert (out / "MODEL_CARD.md").read_text(encoding="utf-8").startswith("> **Stacked model**")


def test_stack_refuses_to_overwrite_other_folders_or_stack_twice(stacked, tiny_trained_model, tmp_path, train_config):
    from ml.modeling.stack import stack

    out, _ = stacked
    (tmp_path / "keep.txt").write_text("not a model", encoding="utf-8")
    with pytest.raises(FileExistsError):
        stack(tiny_trained_model, tmp_path, train_config, StackConfig(bert_share=SHARES))
    assert (tmp_path / "keep.txt").exists()
    with pytest.raises(ModelLoadError, match="already a stacked model"):
        stack(out, tmp_path / "again", train_config, StackConfig(bert_share=SHARES))


def test_stacked_directory_without_its_ngram_part_is_refused(stacked, tmp_path):
    from ml import Scorer

    out, _ = stacked
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    shutil.rmtree(broken / NGRAM_DIR)
    with pytest.raises(ModelLoadError, match="no ngrams/ folder"):
        Scorer.load(broken)
    info = json.loads((out / "labels.json").read_text(encoding="utf-8"))
    info["ngram_weights"]["threatening"] = 1.5
    shutil.copytree(out, tmp_path / "bad_share")
    (tmp_path / "bad_share" / "labels.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="ngram_weights"):
        Scorer.load(tmp_path / "bad_share")


def test_api_serves_a_stacked_model_as_the_scorer_scores_it(stacked):
    from fastapi.testclient import TestClient

    from ml import Scorer
    from ml.serving import create_app

    out, _ = stacked
    scorer = Scorer.load(out)
    texts = ["您好，请问有什么可以帮您？", "不还钱我们就上门"]
    with TestClient(create_app(scorer)) as client:
        assert client.get("/v1/model").json()["runtime"].endswith("+ngrams")
        single = client.post("/v1/score", json={"text": texts[1]}).json()
        batch = client.post("/v1/score", json={"items": [{"text": t} for t in texts]}).json()
    expected = scorer.predict_proba(texts, ["", ""])
    assert single["results"][0]["probabilities"]["threatening"] == pytest.approx(float(expected[1, 3]), abs=1e-4)
    assert [r["probabilities"]["privacy_risk"] for r in batch["results"]] == pytest.approx(
        [float(p) for p in expected[:, 4]], abs=1e-4
    )


def test_extra_data_joins_the_ngram_parts_training(train_config, tmp_path):
    from ml.modeling.stack import fit_ngrams

    extra = tmp_path / "extra.jsonl"
    record = json.loads(open(train_config.train_file, encoding="utf-8").readline())
    lines = [
        {**record, "id": f"extra-{i}", "text": text}
        for i, text in enumerate(["麒麟瓷砖旗舰店售后专线", "麒麟瓷砖的师傅明天到"])
    ]
    extra.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    plain = fit_ngrams(train_config, StackConfig())
    extended = fit_ngrams(train_config, StackConfig(extra_data=[str(tmp_path)]))
    assert "麒麟" in extended.vocabulary and "麒麟" not in plain.vocabulary


def test_floor_keeps_the_bert_probability_where_the_bert_finds_the_reply_harmless():
    bert = np.array([[0.05, 0.5], [0.3, 0.5]])
    ngrams = np.array([[0.95, 0.95], [0.95, 0.95]])
    shares, floors = np.array([0.1, 0.1]), np.array([0.1, 0.0])
    mixed = mix(bert, ngrams, shares, floors)
    assert mixed[0, 0] == pytest.approx(0.05)  # under the floor: the n-grams have no say
    assert mixed[1, 0] == pytest.approx(0.1 * 0.3 + 0.9 * 0.95)  # over it: the usual mix
    np.testing.assert_allclose(mixed[:, 1], mix(bert, ngrams, shares)[:, 1])  # floor 0: no floor


def test_stacked_model_with_a_floor_scores_with_it(stacked, tiny_trained_model, train_config, tmp_path):
    from ml import Scorer
    from ml.modeling.stack import stack

    floors = {**dict.fromkeys(LABELS, 0.0), "threatening": 0.4}
    info = stack(
        tiny_trained_model, tmp_path / "floored", train_config, StackConfig(bert_share=SHARES, bert_floor=floors)
    )
    assert info.ngram_floor == floors
    assert info.thresholds == stacked[1].thresholds  # a veto only: the cut-offs are the unfloored ones
    bert, both = Scorer.load(tiny_trained_model), Scorer.load(tmp_path / "floored")
    texts, contexts = ["您好，请问有什么可以帮您？", "不还钱我们就上门"], ["", "我下周还"]
    expected = mix(
        bert.predict_proba(texts, contexts),
        CharNgrams.load(tmp_path / "floored").predict_proba(texts),
        np.array(list(SHARES.values())),
        np.array(list(floors.values())),
    )
    np.testing.assert_allclose(both.predict_proba(texts, contexts), expected, atol=1e-5)
    assert "no say on threatening" in (tmp_path / "floored" / "MODEL_CARD.md").read_text(encoding="utf-8")


def test_floor_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="bert_floor"):
        StackConfig(bert_floor={**dict.fromkeys(LABELS, 0.0), "threatening": 1.5})


def test_stacking_in_place_turns_the_model_directory_into_the_mix(stacked, tiny_trained_model, train_config, tmp_path):
    """The pipeline stacks the default in place; the result is the same mix as a stacked copy, and its
    card, once rewritten, says the numbers are the mix's."""
    from ml import Scorer
    from ml.evaluation.evaluate import stack_lines
    from ml.modeling.stack import stack

    model = tmp_path / "default"
    shutil.copytree(tiny_trained_model, model)
    info = stack(model, model, train_config, StackConfig(bert_share=SHARES))
    copy_out, copy_info = stacked
    assert info.version == copy_info.version and info.thresholds == copy_info.thresholds
    texts, contexts = ["您好，请问有什么可以帮您？", "不还钱我们就上门"], ["", "我下周还"]
    np.testing.assert_allclose(
        Scorer.load(model).predict_proba(texts, contexts), Scorer.load(copy_out).predict_proba(texts, contexts)
    )
    with pytest.raises(ModelLoadError, match="already a stacked model"):
        stack(model, model, train_config, StackConfig(bert_share=SHARES))
    (line,) = stack_lines(info)
    assert "empathetic 0.5, threatening 0.2, privacy_risk 0" in line and "polite" not in line
    assert stack_lines(Scorer.load(tiny_trained_model).info) == []


def test_stack_ngram_c_sets_the_regularisation_of_the_ngram_part(train_config):
    from ml.modeling.stack import fit_ngrams

    strongly, weakly = (
        fit_ngrams(train_config, StackConfig(ngram_c=0.01)),
        fit_ngrams(train_config, StackConfig(ngram_c=100.0)),
    )
    assert np.abs(strongly.coef).max() < np.abs(weakly.coef).max()
    assert StackConfig().ngram_c == 4.0  # the shipped default's part (experiments/ngram_variants/)
    with pytest.raises(ValueError, match="ngram_c"):
        StackConfig(ngram_c=0)
