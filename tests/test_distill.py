import numpy as np

from ml.config import TrainConfig
from ml.data.augment import augment
from ml.data.records import UNKNOWN, label_matrix, load_labelled
from ml.modeling.distill import dialogue_lines, soft_targets, teacher_contexts
from ml.modeling.train import distillation_parts


def test_soft_targets_mix_gold_with_the_teacher_and_fill_unknown_labels():
    gold = np.array([[1, 0, UNKNOWN, 0, 1]], dtype=np.float32)
    teacher = np.array([[0.2, 0.4, 0.9, 0.1, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(soft_targets(gold, teacher, 0.25), [[0.8, 0.1, 0.9, 0.025, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(soft_targets(gold, teacher, 0.0)[0, [0, 1, 3, 4]], [1, 0, 0, 1])


def test_dialogue_lines_take_the_line_before_as_context(tmp_path):
    dialogue = "喂，您好，是王先生吗？\n\n是我，哪位？\n王先生您好，我是客服小李。\n"
    (tmp_path / "calls.txt").write_text(dialogue, encoding="utf-8")
    lines = dialogue_lines([tmp_path])
    assert lines["text"] == ["喂，您好，是王先生吗？", "是我，哪位？", "王先生您好，我是客服小李。"]
    assert lines["context"] == ["", "喂，您好，是王先生吗？", "是我，哪位？"]
    assert np.all(label_matrix(lines) == UNKNOWN)


def test_a_student_trains_on_the_teachers_probabilities(tiny_trained_model, small_splits, tmp_path):
    (tmp_path / "chat.txt").write_text("在吗\n您好，请问有什么可以帮您？\n", encoding="utf-8")
    train = load_labelled([small_splits["train"]]).select(range(8))
    config = TrainConfig(teacher=str(tiny_trained_model), distill_weight=0.5, distill_unlabelled=[str(tmp_path)])
    labelled, unlabelled = distillation_parts([train], config)
    soft, gold = label_matrix(labelled), label_matrix(train)
    assert np.all((soft >= 0) & (soft <= 1)) and len(unlabelled) == 2
    assert np.all(np.abs(soft - gold) <= 0.5 + 1e-6)  # half gold, half teacher
    assert not np.all(np.isin(soft, (0.0, 1.0)))  # the teacher's share is soft
    assert np.all((label_matrix(unlabelled) >= 0) & (label_matrix(unlabelled) <= 1))


def test_transfer_lines_teach_only_the_transfer_labels(tiny_trained_model, small_splits, tmp_path):
    (tmp_path / "film.txt").write_text("这部电影你看过吗\n看过，结局很感人\n", encoding="utf-8")
    train = load_labelled([small_splits["train"]]).select(range(4))
    config = TrainConfig(
        teacher=str(tiny_trained_model), distill_transfer=[str(tmp_path)], transfer_labels=["threatening"]
    )
    *_, transfer = distillation_parts([train], config)
    targets = label_matrix(transfer)
    assert len(transfer) == 2
    assert np.all((targets[:, 3] >= 0) & (targets[:, 3] <= 1))  # threatening: the teacher's probability
    assert np.all(np.delete(targets, 3, axis=1) == UNKNOWN)  # the rest add nothing to the loss


def test_the_teacher_reads_a_context_swap_copy_with_its_source_records_context(small_splits):
    train = load_labelled([small_splits["train"]])
    augmented, summary = augment(train, context_dropout=0.0, noise_share=0.0, seed=1, context_swap=0.15)
    rows, contexts = augmented.to_list(), teacher_contexts(augmented)
    own = {row["id"]: row["context"] for row in rows}
    swaps = [(row, context) for row, context in zip(rows, contexts) if row["source"] == "augmented:context_swap"]
    assert len(swaps) == summary["context_swaps"] > 0
    for row, context in swaps:
        assert context == own[row["id"].removesuffix("~context_swap")] != row["context"]
    assert [c for row, c in zip(rows, contexts) if row["source"] != "augmented:context_swap"] == [
        row["context"] for row in rows if row["source"] != "augmented:context_swap"
    ]
    assert teacher_contexts(dialogue_lines([])) == []  # rows without ids are read as they are
