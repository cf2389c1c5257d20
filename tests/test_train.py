import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ml.config import TrainConfig, load_config
from ml.data.records import UNKNOWN, load_labelled, load_partially_labelled
from ml.labels import LABELS
from ml.modeling.train import MultiLabelTrainer, load_base_model, to_features


def tiny_config(base_model: Path, splits: dict[str, Path], **settings) -> TrainConfig:
    """A train config on the tiny model and the small splits; `settings` override the rest."""
    return TrainConfig(
        model_name_or_path=str(base_model),
        train_file=str(splits["train"]),
        validation_file=str(splits["validation"]),
        test_file=str(splits["test"]),
        batch_size=16,
        **settings,
    )


def test_tiny_model_loads_back_through_from_pretrained(tiny_base_model):
    tokenizer, model = load_base_model(str(tiny_base_model))
    assert model.config.problem_type == "multi_label_classification"
    assert [model.config.id2label[i] for i in range(5)] == list(LABELS)
    assert tokenizer.tokenize("您好") == ["您", "好"]


def test_a_smaller_model_keeps_the_first_layers_of_the_encoder(tiny_base_model):
    _, full = load_base_model(str(tiny_base_model))
    _, small = load_base_model(str(tiny_base_model), layers=1)
    assert small.config.num_hidden_layers == 1 < full.config.num_hidden_layers
    first = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(small.state_dict()[first], full.state_dict()[first])


def test_one_training_step_lowers_the_loss(tiny_base_model, small_splits):
    torch.manual_seed(0)
    tokenizer, model = load_base_model(str(tiny_base_model))
    config = TrainConfig(max_length=64)
    batch_rows = to_features(load_labelled([small_splits["train"]]).select(range(16)), tokenizer, config)
    batch = tokenizer.pad(
        [{k: row[k] for k in ("input_ids", "token_type_ids", "attention_mask")} for row in batch_rows],
        return_tensors="pt",
    )
    labels = torch.tensor(batch_rows["labels"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)

    def loss() -> torch.Tensor:
        logits = model(**batch).logits
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)

    before = loss()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        assert loss().item() < before.item()


def test_positive_weights_change_the_loss(tiny_base_model):
    tokenizer, model = load_base_model(str(tiny_base_model))
    inputs = dict(tokenizer(["您好"], return_tensors="pt"))
    inputs["labels"] = torch.tensor([[1.0, 0, 0, 0, 0]])
    plain = MultiLabelTrainer.compute_loss(type("T", (), {"pos_weight": None})(), model, dict(inputs))
    weighted = MultiLabelTrainer.compute_loss(
        type("T", (), {"pos_weight": torch.full((5,), 5.0)})(), model, dict(inputs)
    )
    assert weighted.item() > plain.item()


def test_unknown_labels_add_nothing_to_the_loss(tiny_base_model):
    tokenizer, model = load_base_model(str(tiny_base_model))
    inputs = dict(tokenizer(["您好"], return_tensors="pt"))
    logits = model(**inputs).logits.detach()
    inputs["labels"] = torch.tensor([[1.0, UNKNOWN, 0, UNKNOWN, 0]])
    loss = MultiLabelTrainer.compute_loss(type("T", (), {"pos_weight": None})(), model, dict(inputs))
    known = [0, 2, 4]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[0, known], torch.tensor([1.0, 0, 0]))
    assert abs(loss.item() - expected.item()) < 1e-5
    loss.backward()
    head = model.classifier.weight.grad
    assert torch.all(head[[1, 3]] == 0) and torch.any(head[known] != 0)


def test_partially_labelled_records_load_with_unknown_labels(tmp_path):
    path = tmp_path / "negatives.jsonl"
    row = {"id": "n1", "text": "第77届奥斯卡金像奖最佳导演奖。", "context": "", "source": "kdconv@x"}
    path.write_text(json.dumps({**row, "labels": {"threatening": 0}}, ensure_ascii=False) + "\n", encoding="utf-8")
    dataset = load_partially_labelled([path])
    assert dataset[0]["threatening"] == 0 and dataset[0]["polite"] == UNKNOWN
    path.write_text(json.dumps({**row, "labels": {"rude": 1}}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="negatives.jsonl:1"):
        load_partially_labelled([path])


def test_train_stage_writes_a_complete_model_directory(tiny_trained_model):
    names = {p.name for p in tiny_trained_model.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "labels.json", "MODEL_CARD.md"} <= names
    info = json.loads((tiny_trained_model / "labels.json").read_text())
    assert info["labels"] == list(LABELS)
    assert set(info["thresholds"]) == set(LABELS) and all(0 <= t <= 1 for t in info["thresholds"].values())
    assert info["threshold_spread"] and all(low <= high for low, high in info["threshold_spread"].values())
    assert info["test_metrics"]["macro_f1"] >= 0
    card = (tiny_trained_model / "MODEL_CARD.md").read_text()
    assert "Test metrics" in card and "tfidf_logreg" in card and "keyword_rules" in card
    assert "90% of the cut-offs fall in" in card
    model = AutoModelForSequenceClassification.from_pretrained(tiny_trained_model)
    assert model.dtype == torch.float16  # saved as fp16 to keep the embedded model small
    assert AutoTokenizer.from_pretrained(tiny_trained_model) is not None


def test_evaluate_refuses_records_the_model_was_trained_or_tuned_on(tiny_trained_model, small_splits, tmp_path):
    from typer.testing import CliRunner

    from ml.cli import app

    recorded = json.loads((tiny_trained_model / "training_ids.json").read_text())
    train_ids = [json.loads(line)["id"] for line in small_splits["train"].read_text().splitlines() if line.strip()]
    assert set(train_ids) <= set(recorded["trained_on"]) and "n0" in recorded["trained_on"]  # negatives too
    validation_ids = [json.loads(line)["id"] for line in small_splits["validation"].read_text().splitlines()]
    assert recorded["tuned_on"] == sorted(validation_ids)
    # a "test" file that a redrawn split filled with two training records and the real test records
    mixed = tmp_path / "redrawn_test.jsonl"
    train_lines = small_splits["train"].read_text().splitlines()[:2]
    mixed.write_text("\n".join([*train_lines, small_splits["test"].read_text()]), encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"train:\n  train_file: {small_splits['train']}\n  validation_file: {small_splits['validation']}\n"
    )
    base = ["evaluate", "--model", str(tiny_trained_model), "--data", str(mixed), "--config", str(config)]
    options = ["--no-baselines", "--no-generalisation", "--json"]
    refused = CliRunner().invoke(app, [*base, *options])
    assert refused.exit_code == 2
    assert "2 of the" in refused.output and train_ids[0] in refused.output
    allowed = CliRunner().invoke(app, [*base, *options, "--allow-training-overlap"])
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout)["data"]["seen_in_training"] == 2


def test_evaluate_json_has_the_stable_keys(tiny_trained_model, small_splits, tmp_path):
    from typer.testing import CliRunner

    from ml.cli import app

    config = tmp_path / "config.yaml"
    config.write_text(
        f"train:\n  train_file: {small_splits['train']}\n  validation_file: {small_splits['validation']}\n"
    )
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--model",
            str(tiny_trained_model),
            "--data",
            str(small_splits["test"]),
            "--json",
            "--config",
            str(config),
            "--out-dir",
            str(tmp_path / "eval"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for label in LABELS:
        assert set(report[label]) == {"precision", "recall", "f1", "roc_auc", "pr_auc", "support"}
    assert {"macro_f1", "micro_f1", "thresholds"} <= set(report)
    assert set(report["baselines"]) == {"keyword_rules", "tfidf_logreg"}
    assert {"report.json", "metrics.json", "pr_curves.json", "errors.jsonl", "reliability.png"} <= {
        p.name for p in (tmp_path / "eval").iterdir()
    }
    errors = [json.loads(line) for line in (tmp_path / "eval" / "errors.jsonl").read_text().splitlines()]
    assert all(e["kind"] in ("false_positive", "false_negative") for e in errors)


def test_registered_model_loads_by_champion_alias(tiny_trained_model):
    from ml import Scorer
    from ml.tracking import promote

    promote("replyqa-test", "1")
    scorer = Scorer.load("models:/replyqa-test@champion")
    assert scorer.info.version == json.loads((tiny_trained_model / "labels.json").read_text())["version"]
    assert np.allclose(
        scorer.predict_proba(["您好"]), Scorer.load(tiny_trained_model).predict_proba(["您好"]), atol=1e-4
    )


def test_the_card_leads_with_held_out_writers_and_out_of_domain(tiny_base_model, small_splits, tmp_path):
    from ml.config import ScoreboardConfig
    from ml.modeling.train import train

    held, ood = tmp_path / "held", tmp_path / "ood"
    held.mkdir(), ood.mkdir()
    rows = [json.loads(line) for line in small_splits["test"].read_text(encoding="utf-8").splitlines()]
    (held / "writer_x.jsonl").write_text(
        "".join(json.dumps({**r, "id": "x" + r["id"]}, ensure_ascii=False) + "\n" for r in rows[:20]), encoding="utf-8"
    )
    (ood / "other.jsonl").write_text(
        "".join(json.dumps({**r, "id": "o" + r["id"]}, ensure_ascii=False) + "\n" for r in rows[20:]), encoding="utf-8"
    )
    config = tiny_config(
        tiny_base_model,
        small_splits,
        output_dir=str(tmp_path / "model"),
        num_train_epochs=1,
        max_length=96,
        context_dropout=0.3,
        noise_augmentation=0.1,
        register_name=None,
    )
    train(config, board=ScoreboardConfig(held_out=str(held), ood=str(ood)))
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert card.index("## Held-out writers") < card.index("## Out-of-domain") < card.index("## Test metrics")
    assert "`writer_x.jsonl`" in card and "| tfidf_logreg |" in card
    assert "minus each baseline's, 95% paired-bootstrap interval" in card and "tfidf_logreg " in card


BAD_OBJECTIVES = [{"rude": "f1"}, {"clear": "precision"}, {"clear": "recall:1.5"}, {"clear": "auc"}]


@pytest.mark.parametrize("objective", BAD_OBJECTIVES)
def test_a_threshold_objective_is_checked_when_the_config_is_read(objective):
    with pytest.raises(ValueError, match="threshold_objective"):
        TrainConfig(threshold_objective=objective)
    assert TrainConfig(threshold_objective={"threatening": "precision:0.85", "clear": "f1"})


def test_the_default_is_a_student_of_the_committed_stacked_teacher():
    root = Path(__file__).resolve().parents[1]
    settings = load_config(root / "configs" / "default.yaml")
    assert settings.teacher is not None and settings.teacher.teacher is None
    # the teacher is the previous default (BERT + n-grams), committed; the recipe's own 4-layer output is elsewhere
    assert settings.train.teacher == "models/teacher" != settings.teacher.output_dir
    assert settings.train.teacher != settings.train.output_dir
    assert (root / settings.train.teacher / "ngrams" / "weights.npz").exists()
    assert settings.train.encoder_layers == 3 and settings.teacher.encoder_layers is None
    shared = set(TrainConfig.model_fields) - {
        "output_dir",
        "encoder_layers",
        "teacher",
        "distill_weight",
        "distill_unlabelled",
        "register_name",
    }
    assert {k: getattr(settings.train, k) for k in shared} == {k: getattr(settings.teacher, k) for k in shared}


def test_train_says_what_to_do_when_the_teacher_is_missing(tmp_path):
    from typer.testing import CliRunner

    from ml.cli import app

    config = tmp_path / "config.yaml"
    config.write_text("train:\n  output_dir: out\n")

    def message(result) -> str:  # rich wraps a long path (and the words after it) inside its error box
        return " ".join(result.output.replace("│", " ").split())

    result = CliRunner().invoke(app, ["train", "--teacher", "--config", str(config)])
    assert result.exit_code != 0 and "has no `teacher` section" in message(result)
    config.write_text(f"teacher:\n  output_dir: {tmp_path / 't'}\ntrain:\n  teacher: {tmp_path / 't'}\n")
    result = CliRunner().invoke(app, ["train", "--config", str(config)])
    assert result.exit_code != 0 and "replyqa train --teacher" in message(result)


def test_average_last_epochs_ships_the_mean_of_the_last_epochs_weights(tiny_base_model, small_splits, tmp_path):
    from ml.modeling.train import EpochWeights, fine_tune

    config = tiny_config(
        tiny_base_model,
        small_splits,
        num_train_epochs=3,
        max_length=64,
        early_stopping_patience=5,
        average_last_epochs=2,
    )
    recorder = EpochWeights()
    model, _ = fine_tune(config, tmp_path / "checkpoints", recorder)
    assert len(recorder.states) == 3
    name = "classifier.weight"
    last_two = (recorder.states[1][name] + recorder.states[2][name]) / 2
    assert not torch.equal(recorder.states[1][name], recorder.states[2][name])
    assert torch.allclose(model.state_dict()[name].cpu(), last_two, atol=1e-6)
