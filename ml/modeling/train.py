"""Train stage: fine-tune a Chinese BERT for the five labels with the transformers Trainer.

Saves a standard model directory: safetensors weights, tokenizer, config, labels.json (label
names, thresholds tuned on validation, identity, test metrics) and MODEL_CARD.md.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import mlflow
import numpy as np
import torch
from datasets import Dataset, concatenate_datasets
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from ml.config import ScoreboardConfig, TrainConfig
from ml.data.augment import augment
from ml.data.records import UNKNOWN, label_matrix, load_labelled, load_partially_labelled, record_ids
from ml.evaluation.metrics import threshold_spread, tune_thresholds
from ml.labels import LABELS
from ml.modeling.distill import dialogue_lines, with_teacher_targets
from ml.modeling.encoding import ReplyEncoder, with_model_normaliser
from ml.modeling.export import export_onnx, export_openvino
from ml.modeling.model_info import ModelInfo, write_training_ids
from ml.modeling.registry import log_model
from ml.modeling.runtime import configure_cpu_threads, device_precision
from ml.modeling.scorer import Scorer
from ml.tracking import log_config, start_run


def to_features(dataset: Dataset, tokenizer, config: TrainConfig) -> Dataset:
    encoder = ReplyEncoder.from_pretrained(tokenizer, config.max_length, config.use_context)
    columns = encoder.features(dataset["text"], dataset["context"])
    columns["labels"] = label_matrix(dataset).tolist()
    return Dataset.from_dict(columns)


def positive_weights(y: np.ndarray, setting: dict[str, float] | str | None) -> torch.Tensor | None:
    if setting is None:
        return None
    if setting == "auto":  # negatives per positive, as BCEWithLogitsLoss's pos_weight expects
        return torch.tensor((len(y) - y.sum(0)) / np.clip(y.sum(0), 1, None), dtype=torch.float32)
    return torch.tensor([setting.get(label, 1.0) for label in LABELS], dtype=torch.float32)


class MultiLabelTrainer(Trainer):
    """Trainer whose loss is BCE-with-logits with optional per-label positive weights; a label given
    as UNKNOWN (records with only some labels, `negatives`) adds nothing to the loss."""

    def __init__(self, *args, pos_weight: torch.Tensor | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pos_weight = pos_weight

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        weight = self.pos_weight.to(outputs.logits.device) if self.pos_weight is not None else None
        known = (labels != UNKNOWN).float()
        losses = torch.nn.functional.binary_cross_entropy_with_logits(
            outputs.logits.float(), labels.float().clamp(min=0), pos_weight=weight, reduction="none"
        )
        loss = (losses * known).sum() / known.sum().clamp(min=1)
        return (loss, outputs) if return_outputs else loss


def macro_f1_at_half(eval_prediction) -> dict[str, float]:
    from sklearn.metrics import f1_score

    probabilities = 1 / (1 + np.exp(-eval_prediction.predictions))
    return {
        "macro_f1": float(f1_score(eval_prediction.label_ids, probabilities >= 0.5, average="macro", zero_division=0))
    }


class MlflowMetrics(TrainerCallback):
    """Per-step training loss and per-epoch validation metrics into the active MLflow run."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        numbers = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))}
        if numbers and mlflow.active_run():
            mlflow.log_metrics(numbers, step=state.global_step)


class EpochWeights(TrainerCallback):
    """A CPU copy of the weights at the end of every epoch, so that the last few can be averaged."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.states.append({name: value.detach().to("cpu", copy=True) for name, value in model.state_dict().items()})


def average_weights(model, states: list[dict[str, torch.Tensor]]):
    """Load the uniform average of `states` into `model` (floating-point tensors; others from the last).
    The model has no batch statistics (LayerNorm only), so the average needs no recalibration."""
    averaged = {
        name: torch.stack([state[name].float() for state in states]).mean(0).to(last.dtype)
        if last.is_floating_point()
        else last
        for name, last in states[-1].items()
    }
    model.load_state_dict(averaged)
    return model


def load_base_model(name_or_path: str, layers: int | None = None):
    """Any Hugging Face checkpoint (hub name or local directory) with a fresh five-label head, keeping
    only its first `layers` transformer layers when given (a smaller, faster model); its tokenizer
    gains the model's text normalisation (NFKC, Traditional to Simplified)."""
    tokenizer = with_model_normaliser(AutoTokenizer.from_pretrained(name_or_path))
    model = AutoModelForSequenceClassification.from_pretrained(
        name_or_path,
        **({"num_hidden_layers": layers} if layers else {}),
        num_labels=len(LABELS),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        dtype=torch.float32,  # the committed encoder is stored in fp16
    )
    return tokenizer, model


def distillation_parts(parts: list[Dataset], config: TrainConfig) -> list[Dataset]:
    """The training parts with the teacher's probabilities mixed into their labels, plus the
    unlabelled dialogue lines with the teacher's probabilities as their only labels, plus the
    transfer lines with the teacher's probabilities on `transfer_labels` only."""
    teacher = Scorer.load(config.teacher, runtime="portable")  # the same targets on every CPU
    parts = [with_teacher_targets(part, teacher, config.distill_weight) for part in parts]
    if config.distill_unlabelled:
        parts.append(with_teacher_targets(dialogue_lines(config.distill_unlabelled), teacher, 1.0))
    if config.distill_transfer:
        lines = dialogue_lines(config.distill_transfer)
        parts.append(with_teacher_targets(lines, teacher, 1.0, config.transfer_labels))
    return parts


def fine_tune(config: TrainConfig, work_dir: Path, epoch_weights: EpochWeights | None = None) -> tuple[object, object]:
    """Run the Trainer with early stopping on validation macro-F1; return the best model (or, with
    `average_last_epochs`, the average of the last epochs' weights) and the tokenizer. `epoch_weights`
    receives every epoch's weights when given."""
    set_seed(config.seed)
    configure_cpu_threads()
    tokenizer, model = load_base_model(config.model_name_or_path, config.encoder_layers)
    train_set, validation_set = load_labelled([config.train_file]), load_labelled([config.validation_file])
    train_set, augmentation = augment(
        train_set,
        config.context_dropout,
        config.noise_augmentation,
        config.seed,
        config.context_swap,
        config.courtesy_threats,
    )
    parts = [train_set]
    if config.negatives:
        parts.append(load_partially_labelled(config.negatives))
        augmentation["negatives"] = len(parts[-1])
    if config.teacher:
        labelled_parts = len(parts)
        parts = distillation_parts(parts, config)
        augmentation["distilled_unlabelled"] = sum(len(part) for part in parts[labelled_parts:])
    train_features = concatenate_datasets([to_features(part, tokenizer, config) for part in parts])
    if mlflow.active_run():
        mlflow.log_params({f"augmentation_{k}": v for k, v in augmentation.items()})
    args = TrainingArguments(
        output_dir=str(work_dir),
        num_train_epochs=config.num_train_epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=64,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # transformers 5 reads a float below 1 as a ratio
        train_sampling_strategy="group_by_length",
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        logging_steps=20,
        report_to=[],
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=0,
        **device_precision(),
    )
    trainer = MultiLabelTrainer(
        model=model,
        args=args,
        processing_class=tokenizer,
        train_dataset=train_features,
        eval_dataset=to_features(validation_set, tokenizer, config),
        compute_metrics=macro_f1_at_half,
        pos_weight=positive_weights(label_matrix(train_set), config.pos_weight),
        callbacks=[EarlyStoppingCallback(config.early_stopping_patience), MlflowMetrics()],
    )
    if config.average_last_epochs and epoch_weights is None:
        epoch_weights = EpochWeights()
    if epoch_weights is not None:
        trainer.add_callback(epoch_weights)
    trainer.train()
    if config.average_last_epochs:
        return average_weights(trainer.model, epoch_weights.states[-config.average_last_epochs :]), tokenizer
    return trainer.model, tokenizer


def save_model(model, tokenizer, config: TrainConfig) -> Path:
    output_dir = Path(config.output_dir)
    if output_dir.exists():
        shutil.rmtree(output_dir)
    model = model.to("cpu")
    if config.save_fp16:
        model = model.half()
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    weights = (output_dir / "model.safetensors").read_bytes()
    ModelInfo(
        name=config.register_name or "replyqa",
        version=hashlib.sha256(weights).hexdigest()[:12],
        use_context=config.use_context,
        max_length=config.max_length,
        threshold_objective=config.threshold_objective,
    ).write(output_dir)
    write_training_ids(
        output_dir, record_ids([config.train_file, *config.negatives]), record_ids([config.validation_file])
    )
    return output_dir


def set_thresholds(output_dir: Path, config: TrainConfig) -> dict[str, float]:
    """Tune the cut-offs on validation with the saved (possibly fp16) weights, and store them."""
    scorer = Scorer.load(output_dir, runtime="torch")
    validation = load_labelled([config.validation_file])
    probabilities = scorer.predict_proba(validation["text"], validation["context"])
    y = label_matrix(validation)
    return store_thresholds(
        output_dir,
        tune_thresholds(y, probabilities, config.threshold_objective),
        threshold_spread(y, probabilities, config.threshold_objective, seed=config.seed),
    )


def store_thresholds(
    output_dir: Path, thresholds: dict[str, float], spread: dict[str, list[float]] | None = None
) -> dict[str, float]:
    info = ModelInfo.read(output_dir)
    # kept strictly inside (0, 1): a saturated sigmoid can put the best cut-off at exactly 0 or 1
    info.thresholds = {label: round(min(max(value, 1e-4), 0.9999), 4) for label, value in thresholds.items()}
    info.threshold_spread = spread or {}
    info.write(output_dir)
    return info.thresholds


def export_for_cpu(output_dir: Path, gate_sets: dict[str, Path]) -> dict:
    """ONNX fp32 and int8, and the OpenVINO graph, beside the weights; the int8 gate decides the
    portable CPU runtime, the bf16 gate whether OpenVINO bf16 may run where the CPU has it; both are
    recorded in labels.json. The directory ships only what it runs (fp32 ONNX is rebuilt into a cache
    on request)."""
    from ml.evaluation.evaluate import runtime_gates

    fp32, _ = export_onnx(output_dir)
    export_openvino(fp32, output_dir)
    gates = runtime_gates(output_dir, gate_sets, {"int8": "onnx", "bf16": "openvino"})
    int8, bf16 = gates["int8"], gates["bf16"]
    info = ModelInfo.read(output_dir)
    info.cpu_runtime = {
        "runtime": "onnx",
        "precision": "int8" if int8["passed"] else "fp32",
        "int8_gate": int8,
        "bf16_gate": bf16,
    }
    info.write(output_dir)
    if int8["passed"]:
        fp32.unlink()
    return info.cpu_runtime


def describe_model(output_dir: Path, config: TrainConfig, board: ScoreboardConfig | None) -> tuple[dict, dict]:
    """What the train stage does once the weights and cut-offs are saved: the CPU exports and their
    gates (when `config.export_onnx`), the test report, and the card with the held-out-writer and
    out-of-domain numbers (`board`). Returns the recorded CPU runtime and the test report."""
    from ml.evaluation.evaluate import evaluate_model, write_model_card
    from ml.evaluation.scoreboard import existing_files, generalisation, systems_for

    cpu_runtime = {}
    if config.export_onnx:
        gate_sets = {"validation": Path(config.validation_file), "test": Path(config.test_file)}
        if board:
            gate_sets.update({p.stem: p for p in existing_files(board.held_out)})
        cpu_runtime = export_for_cpu(output_dir, gate_sets)
    # The portable runtime (ONNX int8 when it passed the gate) with the tuned thresholds: what the
    # test report and the card describe is what `Scorer.load` runs on any CPU.
    scorer = Scorer.load(output_dir, runtime="portable")
    systems = systems_for(scorer, config.train_file, config.validation_file)  # the model and both baselines
    report = evaluate_model(scorer, config.test_file, baselines=systems[1:])
    info = ModelInfo.read(output_dir)
    info.test_metrics = {key: report[key] for key in ("macro_f1", "micro_f1", *LABELS)}
    info.write(output_dir)
    beyond_test = generalisation(systems, config.train_file, board) if board else {}
    write_model_card(output_dir, config, report, scorer, beyond_test)
    return cpu_runtime, report


def train(config: TrainConfig, config_path: Path | None = None, board: ScoreboardConfig | None = None) -> dict:
    """Fine-tune, save, tune thresholds, evaluate on test and on held-out writers and out-of-domain
    replies (`board`), write the card, log and register in MLflow."""
    output = Path(config.output_dir)
    work_dir = output.with_name(output.name + "-checkpoints")  # per output, so runs side by side do not collide
    with start_run("train") as run:
        log_config(config)
        if config_path:
            mlflow.log_artifact(str(config_path), artifact_path="config")
        model, tokenizer = fine_tune(config, work_dir)
        output_dir = save_model(model, tokenizer, config)
        thresholds = set_thresholds(output_dir, config)
        cpu_runtime, report = describe_model(output_dir, config, board)
        if cpu_runtime:
            mlflow.log_params(
                {
                    "cpu_runtime": cpu_runtime["runtime"],
                    "cpu_precision": cpu_runtime["precision"],
                    "cpu_bf16_gate": cpu_runtime["bf16_gate"]["passed"],
                }
            )
        mlflow.log_metrics(
            {
                "test_macro_f1": report["macro_f1"],
                "test_micro_f1": report["micro_f1"],
                **{f"threshold_{k}": v for k, v in thresholds.items()},
            }
        )
        version = log_model(output_dir, config.register_name)
    shutil.rmtree(work_dir, ignore_errors=True)
    return {
        "output_dir": str(output_dir),
        "run_id": run.info.run_id,
        "registered_version": version,
        "thresholds": thresholds,
        "test_macro_f1": report["macro_f1"],
    }
