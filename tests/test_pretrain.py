"""The encoder's pretraining: corpus licence filter and evaluation exclusion, the ELECTRA step,
embedding seeding, and resuming from a checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ml.config import PretrainConfig
from ml.data.corpus import CorpusSource, EvaluationFilter, build_corpus, evaluation_texts

LONG_EVALUATION_TEXT = "您好，您的借款已经逾期十五天了，请今天下午六点前在App里还款一千二百元。"


def test_a_source_with_a_non_commercial_licence_is_refused(tmp_path):
    sources = [
        CorpusSource("ok", "MIT", lambda: ["一行文字而已"]),
        CorpusSource("nc", "CC-BY-NC-4.0", lambda: ["别的"]),
    ]
    with pytest.raises(ValueError, match="licence not allowed.*nc"):
        build_corpus(sources, tmp_path / "corpus.txt", EvaluationFilter([]))
    assert not (tmp_path / "corpus.txt").exists()


def test_evaluation_texts_never_reach_the_corpus(tmp_path):
    evaluation = tmp_path / "ood.jsonl"
    evaluation.write_text(
        json.dumps({"text": LONG_EVALUATION_TEXT, "context": "怎麼還款"}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    lines = [
        "客服说：" + LONG_EVALUATION_TEXT[3:25] + "。",  # shares a 16-character run
        "怎么还款",  # equals a short evaluation text once normalised (Traditional -> Simplified)
        "今天天气不错，我们下午去公园散步吧。",
        "今天天气不错，我们下午去公园散步吧。",  # duplicate
    ]
    output = tmp_path / "corpus.txt"
    manifest = build_corpus(
        [CorpusSource("team", "CC-BY-4.0", lambda: lines, repeats=2)],
        output,
        EvaluationFilter(evaluation_texts([tmp_path])),
    )
    assert output.read_text(encoding="utf-8").splitlines() == ["今天天气不错,我们下午去公园散步吧。"] * 2
    assert manifest["excluded_as_evaluation"] == 2
    assert manifest["sources"]["team"] == {"licence": "CC-BY-4.0", "lines": 1, "chars": 18}
    assert json.loads(output.with_suffix(".manifest.json").read_text(encoding="utf-8")) == manifest


def tiny_pretrain_config(tmp_path, **changes) -> PretrainConfig:
    corpus = tmp_path / "corpus.txt"
    if not corpus.exists():
        sentences = ["您好，请问有什么可以帮您？", "您的账单已经出了，请按时还款。", "理解您的难处，我们可以申请分期。"]
        corpus.write_text("\n".join(s for _ in range(40) for s in sentences) + "\n", encoding="utf-8")
    settings = dict(
        corpus_path=str(corpus),
        output_dir=str(tmp_path / "encoder"),
        vocab_size=300,
        max_length=32,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_steps=4,
        batch_size=4,
        save_steps=2,
        max_minutes=None,
        objective="electra",
    )
    return PretrainConfig(**{**settings, **changes})


def test_replaced_token_detection_learns_from_every_token(tmp_path):
    from ml.modeling.pretrain import (
        ReplacedTokenObjective,
        WholeWordMaskCollator,
        bert_config,
        pack_corpus,
        train_tokenizer,
    )

    config = tiny_pretrain_config(tmp_path)
    tokenizer = train_tokenizer(config.corpus_path, config.vocab_size, tmp_path / "tok")
    blocks = pack_corpus(open(config.corpus_path, encoding="utf-8").read().splitlines()[:12], tokenizer, 32)
    assert all(len(ids) <= 32 and ids[0] == tokenizer.cls_token_id for ids in blocks["input_ids"])
    batch = WholeWordMaskCollator(tokenizer, 0.15, bert_replacement=False)([blocks[i] for i in range(len(blocks))])
    masked = batch["labels"] != -100
    assert masked.any() and (batch["input_ids"][masked] == tokenizer.mask_token_id).all()
    objective = ReplacedTokenObjective(
        bert_config(config, len(tokenizer), tokenizer.pad_token_id),
        bert_config(config, len(tokenizer), tokenizer.pad_token_id, generator=True),
    )
    outputs = objective(**batch)
    assert torch.isfinite(outputs["loss"]) and outputs["rtd_loss"] > 0 and outputs["mlm_loss"] > 0
    # only masked positions can be replaced, and a sample equal to the original does not count
    assert 0 < outputs["replaced_share"] <= masked.sum() / batch["attention_mask"].sum()
    outputs["loss"].backward()
    # the encoder's layers learn from the detection loss; the generator shares its token embeddings
    assert objective.encoder.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    assert objective.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_seeded_embeddings_keep_the_source_geometry(tmp_path):
    from ml.modeling.pretrain import seed_embeddings, train_tokenizer

    tokenizer = train_tokenizer(tiny_pretrain_config(tmp_path).corpus_path, 300, tmp_path / "tok")
    rng = np.random.default_rng(0)
    vectors = {char: rng.normal(size=128).astype(np.float32) for char in "您好请问账单"}
    embedding = torch.nn.Embedding(len(tokenizer), 256)
    torch.nn.init.normal_(embedding.weight, std=0.02)
    assert seed_embeddings(embedding, tokenizer, vectors, seed=1) == 6
    vocab = tokenizer.get_vocab()

    def cosine(x, y):
        return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))

    seeded = embedding.weight.detach().numpy()
    # a wider encoder: the orthonormal projection keeps every angle between characters
    assert cosine(seeded[vocab["您"]], seeded[vocab["账"]]) == pytest.approx(
        cosine(vectors["您"], vectors["账"]), abs=1e-5
    )
    assert seeded[[vocab[c] for c in "您好请问账单"]].std() == pytest.approx(0.02, rel=0.2)


def test_pretraining_resumes_from_its_last_checkpoint(tmp_path):
    from transformers import AutoModelForSequenceClassification

    from ml.modeling.pretrain import pretrain

    first = pretrain(tiny_pretrain_config(tmp_path, max_steps=4, objective="mlm"))
    assert first["steps"] == 4 and first["resumed_from"] is None
    second = pretrain(tiny_pretrain_config(tmp_path, max_steps=6, objective="mlm"))
    assert second["steps"] == 6 and second["resumed_from"].endswith("checkpoint-4")
    # the saved encoder is a standard directory a classifier fine-tunes from
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "encoder", num_labels=5)
    assert model.config.hidden_size == 32


def test_pretraining_continues_a_saved_encoder_with_its_vocabulary_weights_and_head(tmp_path):
    from transformers import AutoTokenizer, BertForMaskedLM

    from ml.modeling.pretrain import build_objective, load_masked_lm, pretrain, train_tokenizer

    config = tiny_pretrain_config(tmp_path, objective="mlm")
    start = tmp_path / "start"
    tokenizer = train_tokenizer(config.corpus_path, 200, start)  # another vocabulary than a new run would train
    objective = build_objective(config, tokenizer)
    saved = BertForMaskedLM(objective.encoder.config)
    saved.save_pretrained(start)
    load_masked_lm(objective, str(start))
    embeddings = objective.encoder.embeddings.word_embeddings.weight
    assert torch.equal(embeddings, saved.bert.embeddings.word_embeddings.weight)
    assert torch.equal(objective.head.transform.dense.weight, saved.cls.predictions.transform.dense.weight)

    summary = pretrain(
        tiny_pretrain_config(tmp_path, objective="mlm", initial_encoder=str(start), max_steps=2, cpu_bf16=True)
    )
    assert summary["steps"] == 2 and summary["initial_encoder"] == str(start)
    assert AutoTokenizer.from_pretrained(tmp_path / "encoder").get_vocab() == tokenizer.get_vocab()
    with pytest.raises(ValueError, match="objective: mlm"):
        tiny_pretrain_config(tmp_path, initial_encoder=str(start), objective="electra")
