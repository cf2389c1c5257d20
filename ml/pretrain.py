"""Pretrain stage: the offline default Chinese BERT.

1. A BERT WordPiece tokenizer trained on the unlabelled corpus: every CJK character is its own
   token (as in bert-base-chinese); Latin text and digits get word pieces.
2. A compact BERT pretrained with masked-language modelling and whole-word masking over jieba words.
The result is a standard Hugging Face model directory (`from_pretrained` loads it).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from pathlib import Path

import jieba
import mlflow
import torch
from datasets import Dataset
from tokenizers import BertWordPieceTokenizer
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertTokenizer,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    pipeline,
)

from ml.config import PretrainConfig
from ml.runtime import TimeLimitCallback, device_precision
from ml.tracking import log_artifacts, log_config, start_run

jieba.setLogLevel(logging.WARNING)
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
FILL_MASK_PROBES = [
    "您的贷款已经逾[MASK]三天了，请尽快还款。",
    "请您提供身份证后四[MASK]。",
    "理解您最近资金周转比较困[MASK]。",
    "不好意思让您久[MASK]了。",
    "我们会按规定报送征[MASK]。",
]


def train_tokenizer(corpus_path: str, vocab_size: int, output_dir: Path) -> BertTokenizer:
    wordpiece = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=True)
    # limit_alphabet: every character seen at least min_frequency times gets a token, not only 1,000.
    wordpiece.train(
        [corpus_path], vocab_size=vocab_size, min_frequency=3, limit_alphabet=vocab_size, special_tokens=SPECIAL_TOKENS
    )
    tokenizer = BertTokenizer(
        vocab=wordpiece.get_vocab(), do_lower_case=True, tokenize_chinese_chars=True, strip_accents=False
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(output_dir)
    return tokenizer


def word_ids_for(text: str, offsets: list[tuple[int, int]]) -> list[int]:
    """For each token, the index of the jieba word it lies in (-1 for special tokens)."""
    word_of_char: list[int] = []
    for index, word in enumerate(jieba.lcut(text)):
        word_of_char += [index] * len(word)
    return [-1 if end == 0 else word_of_char[min(start, len(word_of_char) - 1)] for start, end in offsets]


def tokenize_corpus(lines: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int) -> Dataset:
    def encode(batch: dict) -> dict:
        encoded = tokenizer(batch["text"], truncation=True, max_length=max_length, return_offsets_mapping=True)
        encoded["word_ids"] = [word_ids_for(t, o) for t, o in zip(batch["text"], encoded.pop("offset_mapping"))]
        return encoded

    return Dataset.from_dict({"text": lines}).map(encode, batched=True, remove_columns=["text"])


class WholeWordMaskCollator:
    """Masks whole jieba words until about `probability` of the tokens are chosen; of the chosen
    tokens 80% become [MASK], 10% a random token, 10% stay (BERT's recipe)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, probability: float = 0.15, whole_words: bool = True):
        self.tokenizer = tokenizer
        self.probability = probability
        self.whole_words = whole_words

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        word_ids = [example["word_ids"] for example in examples]
        batch = self.tokenizer.pad([{"input_ids": e["input_ids"]} for e in examples], return_tensors="pt")
        input_ids = batch["input_ids"]
        chosen = torch.zeros_like(input_ids, dtype=torch.bool)
        for row, words in enumerate(word_ids):
            chosen[row, : len(words)] = torch.tensor(self._choose(words))
        labels = input_ids.clone()
        labels[~chosen] = -100
        masked = chosen & (torch.rand(input_ids.shape) < 0.8)
        input_ids[masked] = self.tokenizer.mask_token_id
        randomised = chosen & ~masked & (torch.rand(input_ids.shape) < 0.5)
        input_ids[randomised] = torch.randint(len(self.tokenizer), input_ids.shape)[randomised]
        return {"input_ids": input_ids, "attention_mask": batch["attention_mask"], "labels": labels}

    def _choose(self, words: list[int]) -> list[bool]:
        units = sorted({w for w in words if w >= 0}) if self.whole_words else [i for i, w in enumerate(words) if w >= 0]
        random.shuffle(units)
        budget = max(1, round(self.probability * sum(w >= 0 for w in words)))
        picked: set[int] = set()
        covered = 0
        for unit in units:
            size = words.count(unit) if self.whole_words else 1
            if covered + size > budget and covered:
                continue
            picked.add(unit)
            covered += size
            if covered >= budget:
                break
        if self.whole_words:
            return [w in picked for w in words]
        return [i in picked for i in range(len(words))]


class LossHistory(TrainerCallback):
    def __init__(self) -> None:
        self.points: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.points.append({"step": state.global_step, "loss": round(float(logs["loss"]), 4)})


def pretrain(config: PretrainConfig) -> dict:
    """Train the tokenizer and the compact BERT; save both to `config.output_dir`; return a summary."""
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    output_dir = Path(config.output_dir)
    lines = Path(config.corpus_path).read_text(encoding="utf-8").splitlines()
    if config.max_corpus_lines:
        lines = lines[: config.max_corpus_lines]
    tokenizer = train_tokenizer(config.corpus_path, config.vocab_size, output_dir)
    dataset = tokenize_corpus(lines, tokenizer, config.max_length)
    model = BertForMaskedLM(
        BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=config.hidden_size,
            num_hidden_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads,
            intermediate_size=config.intermediate_size,
            max_position_embeddings=512,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    history = LossHistory()
    args = TrainingArguments(
        output_dir=str(output_dir / "checkpoints"),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=math.ceil(config.warmup_ratio * config.max_steps),
        weight_decay=config.weight_decay,
        lr_scheduler_type="linear",
        logging_steps=25,
        train_sampling_strategy="group_by_length",
        save_strategy="no",
        report_to=[],
        seed=config.seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        **device_precision(),
    )
    callbacks = [history] + ([TimeLimitCallback(config.max_minutes)] if config.max_minutes else [])
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=WholeWordMaskCollator(tokenizer, config.mlm_probability, config.whole_word_masking),
        callbacks=callbacks,
    )
    with start_run("pretrain"):
        log_config(config)
        started = time.monotonic()
        trainer.train()
        minutes = (time.monotonic() - started) / 60
        trainer.save_model(str(output_dir))
        tokenizer.save_pretrained(output_dir)
        summary = {
            "corpus_lines": len(lines),
            "parameters": model.num_parameters(),
            "steps": trainer.state.global_step,
            "minutes": round(minutes, 1),
            "loss_curve": history.points,
            "fill_mask": fill_mask_examples(output_dir),
        }
        (output_dir / "pretrain_summary.json").write_text(
            json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        for point in history.points:
            mlflow.log_metric("mlm_loss", point["loss"], step=point["step"])
        log_artifacts(output_dir, exclude=("checkpoints",))
    return summary


def fill_mask_examples(model_dir: Path, probes: list[str] = FILL_MASK_PROBES) -> list[dict]:
    fill = pipeline("fill-mask", model=str(model_dir), tokenizer=str(model_dir), device=-1)
    return [{"text": probe, "top": [p["token_str"] for p in fill(probe, top_k=5)]} for probe in probes]
