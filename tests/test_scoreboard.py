"""The generalisation scoreboard on tiny inputs: folds never share a writer's slice, held-out sets
are refused when they overlap training, OOD false-positive rates and invariance are computed right."""

import json
import shutil

import numpy as np
import pytest
from conftest import corpus_sample, write_jsonl

from ml.config import MAX_COPY_SHARE, ReferenceRow, TrainConfig
from ml.data.augment import COURTESY_CLOSERS, COURTESY_OPENERS, augment
from ml.data.records import UNKNOWN, load_labelled
from ml.evaluation.evaluate import generalisation_lines
from ml.evaluation.scoreboard import (
    PROBE_CLOSERS,
    PROBE_OPENERS,
    System,
    add_references,
    courtesy_wrapped,
    held_out_writers,
    invariance,
    leave_one_slice_out,
    model_system,
    out_of_domain,
    shared_with_training,
    slice_folds,
)
from ml.labels import LABELS


def labelled(id_, text, context="", **labels):
    return {
        "id": id_,
        "text": text,
        "context": context,
        "scenario": "service",
        "channel": "chat",
        "labels": {label: labels.get(label, 0) for label in LABELS},
    }


def test_no_slice_is_on_both_sides_of_a_fold(tmp_path):
    rows = corpus_sample(90)
    files = [write_jsonl(tmp_path / f"slice_{k}.jsonl", rows[k * 30 : (k + 1) * 30]) for k in range(3)]
    folds = slice_folds(files)
    assert [held for _, held in folds] == files
    for train_files, held in folds:
        assert held not in train_files and len(train_files) == 2
    report = leave_one_slice_out(files, {})
    assert set(report["tfidf_logreg"]["per_slice"]) == {"slice_0", "slice_1", "slice_2"}


def loaded(*paths):
    return {path: load_labelled([path]) for path in paths}


def test_a_held_out_set_that_overlaps_training_is_refused(tmp_path):
    train = write_jsonl(
        tmp_path / "train.jsonl", [labelled("a", "您好，请问有什么可以帮您？"), labelled("s", "本人吗")]
    )
    fresh = write_jsonl(tmp_path / "fresh.jsonl", [labelled("b", "请稍等，我帮您查一下。")])
    leaked = write_jsonl(tmp_path / "leaked.jsonl", [labelled("c", "您好 请问有什么可以帮您")])  # same text, new id
    assert shared_with_training(str(train), loaded(fresh)) == frozenset()
    with pytest.raises(ValueError, match="shares 1 records"):
        shared_with_training(str(train), loaded(fresh, leaked))


def test_a_short_formula_both_sides_wrote_is_left_out_not_refused(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [labelled("s", "本人吗")])
    rows = [labelled("h0", "本人吗？")] + [labelled(f"h{i}", f"您好，您本期应还{i}00元。") for i in range(1, 120)]
    held = write_jsonl(tmp_path / "held.jsonl", rows)
    assert shared_with_training(str(train), loaded(held)) == {"h0"}
    system = System("all_zero", lambda t, c: np.zeros((len(t), len(LABELS))), dict.fromkeys(LABELS, 0.5), False)
    report = held_out_writers([system], loaded(held), frozenset({"h0"}))
    assert report["records"] == 119 and report["excluded_shared_with_training"] == ["h0"]
    few = write_jsonl(tmp_path / "few.jsonl", rows[:20])  # 1 of 20 shared: more than 4%, refused
    with pytest.raises(ValueError, match="shares 1 records"):
        shared_with_training(str(train), loaded(few))


def constant_system(decisions: dict[str, int], reads_context=False) -> System:
    row = np.array([[decisions.get(label, 0) for label in LABELS]], dtype=float)
    return System(
        "fixed", lambda texts, contexts: np.repeat(row, len(texts), axis=0), dict.fromkeys(LABELS, 0.5), reads_context
    )


def test_out_of_domain_false_positive_rates(tmp_path):
    rows = [labelled(str(i), f"您好，第{i}个问题已处理。", polite=1, clear=1) for i in range(8)]
    rows += [labelled("e", "理解您着急，我马上帮您加急处理。", polite=1, clear=1, empathetic=1)]
    path = write_jsonl(tmp_path / "ood.jsonl", rows)
    report = out_of_domain([constant_system({"threatening": 1, "polite": 1})], [path])
    assert report["records"] == 9
    fixed = report["fixed"]
    assert fixed["threatening_fpr"] == 1.0 and fixed["privacy_risk_fpr"] == 0.0 and fixed["empathetic_fpr"] == 0.0
    assert fixed["polite_f1"] == 1.0 and fixed["clear_f1"] == 0.0


def test_a_reference_row_joins_the_board_only_when_measured_on_the_same_files(tmp_path):
    rows = [labelled(str(i), f"您好，第{i}个问题已处理。", polite=1) for i in range(4)]
    ood = write_jsonl(tmp_path / "ood.jsonl", rows)
    ours = out_of_domain([constant_system({"polite": 1})], [ood])
    theirs = {"out_of_domain": {**out_of_domain([constant_system({"threatening": 1})], [ood])}}
    theirs["out_of_domain"]["model"] = theirs["out_of_domain"].pop("fixed")
    same = write_jsonl(tmp_path / "same.json", [theirs])
    other = write_jsonl(tmp_path / "other.json", [{"out_of_domain": {**theirs["out_of_domain"], "records": 99}}])
    board = {"out_of_domain": ours}
    add_references(
        board,
        [
            ReferenceRow(name="ceiling", scoreboard=str(same), note="non-commercial, never shipped"),
            ReferenceRow(name="elsewhere", scoreboard=str(other), note="other sets"),
        ],
    )
    assert board["out_of_domain"]["ceiling"]["threatening_fpr"] == 1.0 and "elsewhere" not in board["out_of_domain"]
    assert board["references"]["elsewhere"]["shown_in"] == []
    card = "\n".join(generalisation_lines(board))
    assert "| ceiling | 1.0 |" in card and "non-commercial, never shipped" in card and "nowhere:" in card


def test_invariance_counts_decisions_that_follow_the_context(tmp_path, tiny_scorer):
    rows = [labelled(str(i), f"好的，第{i}期已经入账。", context=f"第{i}期到账了吗") for i in range(6)]
    dataset = load_labelled([write_jsonl(tmp_path / "set.jsonl", rows)])

    def follows_context(texts, contexts):  # a threat whenever there is any context: the failure we measure
        out = np.zeros((len(texts), len(LABELS)))
        out[:, LABELS.index("threatening")] = [1.0 if c else 0.0 for c in contexts]
        return out

    hijacked = invariance(System("hijacked", follows_context, dict.fromkeys(LABELS, 0.5), True), dataset, 3)
    swap = hijacked["context_swap"]
    # of the trials that change the context (6 removals, up to 18 swaps), only the removals change a decision
    assert 6 < swap["trials"] <= 24 and swap["threatening_on_neutral_replies"] == pytest.approx(6 / swap["trials"])
    assert swap["polite"] == 0.0 and hijacked["surface_noise"]["all_labels_all_kinds"] == 0.0
    steady = invariance(constant_system({"polite": 1}, reads_context=True), dataset, 3)
    assert steady["context_swap"]["threatening_on_neutral_replies"] == 0.0
    real = invariance(model_system(tiny_scorer), dataset, 3)
    assert 0.0 <= real["surface_noise"]["all_labels_all_kinds"] <= 1.0
    assert real["courtesy_wrapper"]["threats_found"] == 0 and real["courtesy_wrapper"]["threats_lost"] is None
    assert set(real["surface_noise"]) >= {"traditional", "leading_mention", "asr_underscores"}
    json.dumps(real)  # plain numbers, ready for the metrics file


def test_invariance_counts_only_trials_that_change_the_input(tmp_path):
    # four replies without punctuation or context, one with both: most probes leave most inputs as they are
    rows = [labelled(str(i), f"好的第{i}期已经入账", polite=1) for i in range(4)]
    rows += [labelled("c", "好的，已经入账。", context="到账了吗？")]
    dataset = load_labelled([write_jsonl(tmp_path / "set.jsonl", rows)])

    def polite_when(cue):
        def decide(texts, contexts):
            out = np.zeros((len(texts), len(LABELS)))
            out[:, LABELS.index("polite")] = [1.0 if cue(t, c) else 0.0 for t, c in zip(texts, contexts)]
            return out

        return System("cue", decide, dict.fromkeys(LABELS, 0.5), True)

    by_context = invariance(polite_when(lambda t, c: bool(c)), dataset, 2)["context_swap"]
    # removing "c"'s context, and giving the four bare replies the only context there is (2 swaps each);
    # "c" drawing its own context and the bare replies losing none are not trials
    assert by_context["trials"] == 9 and by_context["polite"] == 1.0
    by_comma = invariance(polite_when(lambda t, c: "，" in t), dataset, 2)["surface_noise"]
    assert by_comma["trials"]["punctuation_stripped"] == 1  # only "c" has punctuation to strip
    assert by_comma["punctuation_stripped"] == pytest.approx(1 / 5)  # its polite decision, of its five
    bare = load_labelled([write_jsonl(tmp_path / "bare.jsonl", rows[:4])])
    assert invariance(constant_system({"polite": 1}), bare, 2)["context_swap"]["polite"] is None


def test_courtesy_probe_counts_threats_a_greeting_takes_away(tmp_path):
    rows = [labelled(str(i), f"再不还就去你单位找你{i}次。", context="没钱", threatening=1) for i in range(8)]
    rows += [labelled("n", "好的，已经入账。")]
    dataset = load_labelled([write_jsonl(tmp_path / "set.jsonl", rows)])
    wrapped = courtesy_wrapped(list(dataset["text"]))
    assert all(text in w and text != w for text, w in zip(dataset["text"], wrapped))
    assert not set(PROBE_OPENERS + PROBE_CLOSERS) & set(COURTESY_OPENERS + COURTESY_CLOSERS)  # never trained on

    def fooled_by_courtesy(texts, contexts):  # a threat unless the reply is wrapped: the shortcut we measure
        out = np.zeros((len(texts), len(LABELS)))
        out[:, LABELS.index("threatening")] = [0.0 if t.startswith(tuple(PROBE_OPENERS)) else 1.0 for t in texts]
        return out

    report = invariance(System("fooled", fooled_by_courtesy, dict.fromkeys(LABELS, 0.5), False), dataset, 1)
    openers = sum(w.startswith(tuple(PROBE_OPENERS)) for w in wrapped[:8])
    assert report["courtesy_wrapper"]["threats_found"] == 8
    assert report["courtesy_wrapper"]["threats_lost"] == pytest.approx(openers / 8)
    steady = invariance(constant_system({"threatening": 1}), dataset, 1)
    assert steady["courtesy_wrapper"]["threats_lost"] == 0.0
    no_contexts = load_labelled([write_jsonl(tmp_path / "bare.jsonl", [{**row, "context": ""} for row in rows])])
    assert invariance(constant_system({"threatening": 1}), no_contexts, 5)["context_swap"]["threatening"] is None


def test_augmentation_drops_contexts_and_adds_bounded_noise_copies(tmp_path):
    rows = [labelled(str(i), f"您好，您本期应还{i}00元。", context="要还多少", threatening=i % 2) for i in range(200)]
    dataset = load_labelled([write_jsonl(tmp_path / "train.jsonl", rows)])
    augmented, summary = augment(dataset, context_dropout=0.3, noise_share=0.1, seed=1)
    assert 40 <= summary["contexts_dropped"] <= 80 and 0 < summary["noise_copies"] <= 20
    copies = [r for r in augmented.to_list() if r["source"].startswith("augmented:")]
    originals = {r["id"]: r for r in dataset.to_list()}
    for copy in copies:
        original = originals[copy["id"].split("~")[0]]
        assert copy["text"] != original["text"] and [copy[k] for k in LABELS] == [original[k] for k in LABELS]
    with pytest.raises(ValueError):
        augment(dataset, 0.0, MAX_COPY_SHARE + 0.01, 1)


def test_context_swap_copies_keep_risk_at_zero_and_leave_the_other_labels_unknown(tmp_path):
    rows = [
        labelled(str(i), f"您好，您本期应还{i}00元。", context=f"第{i}个问题：要还多少", threatening=int(i < 50))
        for i in range(200)
    ]
    dataset = load_labelled([write_jsonl(tmp_path / "train.jsonl", rows)])
    augmented, summary = augment(dataset, context_dropout=0.0, noise_share=0.05, seed=1, context_swap=0.1)
    originals = {r["id"]: r for r in dataset.to_list()}
    swaps = [r for r in augmented.to_list() if r["source"] == "augmented:context_swap"]
    assert 15 <= summary["context_swaps"] == len(swaps) <= 20
    for copy in swaps:
        original = originals[copy["id"].split("~")[0]]
        assert copy["text"] == original["text"] and copy["context"] != original["context"]
        assert original["threatening"] == 0 and copy["threatening"] == 0 and copy["privacy_risk"] == 0
        assert copy["polite"] == copy["clear"] == copy["empathetic"] == UNKNOWN
    with pytest.raises(ValueError):
        augment(dataset, 0.0, 0.1, 1, context_swap=0.1)  # copies of both kinds share the 15% bound
    with pytest.raises(ValueError):
        TrainConfig(noise_augmentation=0.1, context_swap=0.1)


def test_courtesy_copies_wrap_threats_only_and_keep_every_label(tmp_path):
    rows = [labelled(str(i), f"再不还钱就把你欠{i}00元的事发给你单位。", threatening=int(i < 40)) for i in range(200)]
    dataset = load_labelled([write_jsonl(tmp_path / "train.jsonl", rows)])
    augmented, summary = augment(dataset, 0.0, 0.05, 1, courtesy_threats=0.1)
    originals = {r["id"]: r for r in dataset.to_list()}
    copies = [r for r in augmented.to_list() if r["source"] == "augmented:courtesy"]
    assert summary["courtesy_copies"] == len(copies) == 20 and len({c["id"] for c in copies}) == 20
    for copy in copies:
        original = originals[copy["id"].split("~")[0]]
        assert original["threatening"] == 1 and original["text"] in copy["text"] != original["text"]
        assert [copy[k] for k in LABELS] == [original[k] for k in LABELS]
    with pytest.raises(ValueError):
        TrainConfig(noise_augmentation=0.1, courtesy_threats=0.1)  # all copies share the 15% bound


def test_each_noise_kind_rewrites_only_the_surface():
    import random
    import re

    from ml.data.augment import NOISE

    text = "您好，这边帮您查了一下，本期应还1,280元。"
    bare = re.sub(r"[，。,]", "", text)
    for kind, transform in NOISE.items():
        noisy = transform(text, random.Random(3))
        assert noisy != text, kind
        if kind in {"asr_spaces", "asr_underscores"}:
            assert noisy.replace(" ", "").replace("_", "") == bare
        if kind == "leading_mention":
            assert noisy.startswith("@") and noisy.endswith(text)


def test_evaluate_reports_held_out_writers_and_ood_before_the_test_split(tiny_trained_model, small_splits, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from ml.cli import app

    for folder in ("held", "held_later"):  # two places of held-out writers, as data/heldout_writers and data/v8
        (tmp_path / folder).mkdir()
    held = write_jsonl(tmp_path / "held" / "writer_x.jsonl", corpus_sample(300)[200:240])
    later = write_jsonl(tmp_path / "held_later" / "writer_y.jsonl", corpus_sample(300)[240:260])
    ood = tmp_path / "ood"
    ood.mkdir()
    write_jsonl(ood / "other.jsonl", [labelled(f"o{i}", f"您好，第{i}号房间已经为您预订好了。") for i in range(20)])
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "train": {
                    "train_file": str(small_splits["train"]),
                    "validation_file": str(small_splits["validation"]),
                    "threshold_objective": {"polite": "balanced"},  # not what the model was tuned with
                },
                "scoreboard": {"held_out": [str(held.parent), str(later.parent)], "ood": str(ood)},
            }
        ),
        encoding="utf-8",
    )
    arguments = ["evaluate", "--model", str(tiny_trained_model), "--data", str(small_splits["test"])]
    result = CliRunner().invoke(app, [*arguments, "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    board = json.loads(result.output)["generalisation"]
    assert board["held_out_writers"]["records"] == 60
    assert set(board["held_out_writers"]["per_file"]["model"]) == {"writer_x", "writer_y"}
    assert set(board["held_out_writers"]["pooled"]) == {"model", "keyword_rules", "tfidf_logreg"}
    intervals = board["held_out_writers"]["pooled_macro_f1_ci95"]
    assert set(intervals) == {"model", "keyword_rules", "tfidf_logreg"}
    assert set(board["held_out_writers"]["model_lead_macro_f1_ci95"]) == {"keyword_rules", "tfidf_logreg"}
    low, high = intervals["model"]
    assert low <= board["held_out_writers"]["pooled"]["model"]["macro_f1"] <= high
    assert board["out_of_domain"]["model"]["threatening_fpr"] is not None
    printed = CliRunner().invoke(app, [*arguments, "--config", str(config)]).output
    assert printed.index("Held-out writers") < printed.index("Out-of-domain") < printed.index("macro-F1 0")

    model = tmp_path / "model"  # --card rewrites the card of a model trained before the held-out sets grew
    shutil.copytree(tiny_trained_model, model)
    tuned_with = json.loads((model / "labels.json").read_text(encoding="utf-8"))["threshold_objective"]
    refreshed = ["evaluate", "--model", str(model), "--data", str(small_splits["test"]), "--config", str(config)]
    assert CliRunner().invoke(app, [*refreshed, "--card"]).exit_code == 0
    card = (model / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "Held-out writers (60 records" in card and "`writer_y.jsonl`" in card
    assert f"(objectives: {json.dumps(tuned_with)}" in card and '"polite": "balanced"' not in card
    assert CliRunner().invoke(app, [*refreshed, "--card", "--no-baselines"]).exit_code != 0
