import json
from pathlib import Path

import pandas as pd
import pytest

from ml.data.records import load_labelled, load_records, load_unlabelled, near_duplicate_pairs, writer_slice
from ml.data.split import split_records
from ml.data.stats import corpus_stats

GOOD = {
    "id": "t-1",
    "text": "王先生您好，您本期应还1,280元。",
    "context": "",
    "scenario": "collection",
    "channel": "chat",
    "labels": {"polite": 1, "clear": 1, "empathetic": 0, "threatening": 0, "privacy_risk": 0},
}


def record(**changes) -> dict:
    row = json.loads(json.dumps(GOOD))
    row.update(changes)
    return row


def test_validation_names_file_line_and_field_for_every_bad_record(tmp_path):
    missing_labels = record(id="t-3")
    del missing_labels["labels"]
    lines = [
        json.dumps(record(), ensure_ascii=False),
        '{"id": "t-2", "text": "broken json"',
        json.dumps(missing_labels, ensure_ascii=False),
        json.dumps(record(id="t-4", labels={**GOOD["labels"], "polite": 2}), ensure_ascii=False),
        json.dumps(record(id="t-5", text="   "), ensure_ascii=False),
        json.dumps(record(id="t-1"), ensure_ascii=False),
        json.dumps(record(id="t-7", context="\ud800"), ensure_ascii=True),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    errors = load_records([path]).errors
    where = {(e.line, e.field) for e in errors}
    assert (2, "line") in where and "bad JSON" in errors[0].message
    assert (3, "labels") in where
    assert (4, "labels.polite") in where
    assert (5, "text") in where
    assert (6, "id") in where
    assert (7, "context") in where
    assert all(e.path == str(path) for e in errors)


def test_validate_command_lists_all_errors_and_exits_non_zero(tmp_path):
    from typer.testing import CliRunner

    from ml.cli import app

    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(record(scenario="sales")) + "\n{oops\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["data", "validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}:1: scenario" in result.output and f"{path}:2: line" in result.output


def test_labels_must_be_integers_not_booleans(tmp_path):
    path = tmp_path / "bool.jsonl"
    path.write_text(json.dumps(record(labels={**GOOD["labels"], "clear": True})) + "\n", encoding="utf-8")
    assert [e.field for e in load_records([path]).errors] == ["labels.clear"]


def test_a_bad_byte_costs_its_line_not_the_file(tmp_path):
    path = tmp_path / "bytes.jsonl"
    lines = [json.dumps(record(id=f"t-{i}"), ensure_ascii=False).encode() for i in range(5)]
    lines[3] = lines[3].replace("您好".encode(), b"\xff")
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")  # a BOM too, as Windows tools write
    result = load_records([path])
    assert [r.id for r in result.records] == ["t-0", "t-1", "t-2", "t-4"]
    assert [(e.line, e.field) for e in result.errors] == [(4, "line")] and "UTF-8" in result.errors[0].message


def test_label_cells_take_ascii_integers_only(tmp_path):
    flat = {k: v for k, v in record().items() if k != "labels"} | GOOD["labels"]
    pd.DataFrame([flat | {"id": "a"}, flat | {"id": "b", "polite": "²"}]).to_csv(tmp_path / "f.csv", index=False)
    result = load_records([tmp_path / "f.csv"])
    assert [r.id for r in result.records] == ["a"] and [e.field for e in result.errors] == ["labels.polite"]


def test_csv_errors_name_the_file_line_their_row_starts_on(tmp_path):
    flat = {k: v for k, v in record().items() if k != "labels"} | GOOD["labels"]
    rows = [flat | {"id": "a", "context": "第一行\n第二行\n第三行"}, flat | {"id": "b", "scenario": "sales"}]
    path = tmp_path / "f.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("c,extra,cells,than,the,header,has,x,y,z,w,v,u,t,s\n")
    errors = load_records([path]).errors
    assert [(e.line, e.field) for e in errors] == [(5, "scenario"), (6, "line")]  # row "a" spans lines 2-4
    assert "cells where the header has" in errors[1].message


def test_partial_records_are_as_strict_as_records():
    from pydantic import ValidationError

    from ml.data.records import PartialRecord

    good = {"id": "n-1", "text": "这部电影2004年上映。", "source": "test", "labels": {"threatening": 0}}
    assert PartialRecord.model_validate(good).labels == {"threatening": 0}
    for bad in ({"labels": {"threatening": True}}, {"labels": {"threatening": 2}}, {"id": "  "}):
        with pytest.raises(ValidationError):
            PartialRecord.model_validate(good | bad)


def test_absolute_globs_expand_like_relative_ones(tmp_path):
    from ml.data.records import expand_paths

    for name in ("b.jsonl", "a.jsonl", "c.txt"):
        (tmp_path / name).write_text("", encoding="utf-8")
    assert expand_paths([str(tmp_path / "*.jsonl")]) == [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]


def test_config_refuses_settings_that_would_silently_break_the_data():
    from pydantic import ValidationError

    from ml.config import DataConfig, TrainConfig

    for bad in (
        {"near_duplicate_threshold": 85},
        {"near_duplicate_threshold": 1.0},
        {"split_fractions": [0.8, 0.3, -0.1]},
    ):
        with pytest.raises(ValidationError):
            DataConfig(**bad)
    for bad in ({"threatning": 3.0}, {"threatening": -1.0}):
        with pytest.raises(ValidationError, match="pos_weight"):
            TrainConfig(pos_weight=bad)
    assert TrainConfig(pos_weight={"threatening": 3.0}).pos_weight == {"threatening": 3.0}


def test_csv_and_parquet_load_into_the_same_schema_and_keep_extra_fields(tmp_path):
    flat = {k: v for k, v in record(boundary=True, pair="p-1", notes="why").items() if k != "labels"}
    flat.update(GOOD["labels"])
    pd.DataFrame([flat]).to_csv(tmp_path / "one.csv", index=False)
    pd.DataFrame([flat]).to_parquet(tmp_path / "one.parquet", index=False)
    jsonl = tmp_path / "one.jsonl"
    jsonl.write_text(
        json.dumps(record(boundary=True, pair="p-1", notes="why"), ensure_ascii=False) + "\n", encoding="utf-8"
    )
    datasets = [load_labelled([tmp_path / name]) for name in ("one.csv", "one.parquet", "one.jsonl")]
    assert all(d.features == datasets[0].features for d in datasets)
    assert all(d[0] == datasets[0][0] for d in datasets)
    assert datasets[0][0]["pair"] == "p-1" and datasets[0][0]["boundary"] is True and datasets[0][0]["polite"] == 1


def test_unlabelled_text_files_load_with_the_text_schema(tmp_path):
    path = tmp_path / "replies.txt"
    path.write_text("您好\n\n请稍等\n", encoding="utf-8")
    dataset = load_unlabelled(path)
    assert dataset["text"] == ["您好", "请稍等"] and dataset["context"] == ["", ""]


def test_stats_on_a_hand_made_file(tmp_path):
    rows = [
        record(id="s1", text="您好，请问有什么可以帮您？", labels={**GOOD["labels"], "clear": 0}),
        record(
            id="s2",
            text="再不还钱就去你单位闹",
            channel="call",
            context="我没钱",
            labels={"polite": 0, "clear": 0, "empathetic": 0, "threatening": 1, "privacy_risk": 1},
        ),
        record(id="s3", text="好的", scenario="other", boundary=True),
        record(id="s4", text="您好，請問還款日是哪天？😊", scenario="service", noise=["typo"]),
    ]
    path = tmp_path / "stats.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    stats = corpus_stats(load_records([path]).records)
    assert stats["records"] == 4
    assert stats["label_positives"] == {"polite": 3, "clear": 2, "empathetic": 0, "threatening": 1, "privacy_risk": 1}
    assert stats["label_rates"]["polite"] == 0.75
    assert stats["co_occurrence"]["threatening"]["privacy_risk"] == 1
    assert stats["co_occurrence"]["polite"]["clear"] == 2
    assert stats["scenario_share"] == {
        "collection": 0.5,
        "service": 0.25,
        "complaint": 0.0,
        "verification": 0.0,
        "other": 0.25,
    }
    assert stats["channel_share"] == {"call": 0.25, "chat": 0.75}
    assert stats["boundary"] == 1 and stats["with_context"] == 1
    assert stats["length"]["short_2_6"] == 1
    # s3 is short; s4 has a tag, Traditional characters and an emoji
    assert stats["noisy"] == 2 and {"traditional", "emoji", "typo"} <= set(stats["noise_kinds"])
    assert stats["near_duplicates"] == 0


def test_near_duplicates_use_normalised_character_similarity():
    pairs = near_duplicate_pairs(["您好，请问有什么可以帮您？", "您好 请问有什么可以帮您", "还款日是每月15号"])
    assert [(a, b) for a, b, _ in pairs] == [(0, 1)]


def test_split_is_deterministic_and_keeps_groups_together():
    records = load_records(sorted(Path("data/labelled").glob("*.jsonl"))).records[:1200]
    first = split_records(records, seed=5)
    second = split_records(list(reversed(records)), seed=5)
    assert {k: [r.id for r in v] for k, v in first.items()} == {k: [r.id for r in v] for k, v in second.items()}
    sizes = {k: len(v) for k, v in first.items()}
    assert abs(sizes["train"] / len(records) - 0.8) < 0.03 and abs(sizes["test"] / len(records) - 0.1) < 0.03
    where = {r.id: name for name, rows in first.items() for r in rows}
    pairs: dict[str, set[str]] = {}
    for r in records:
        if r.pair:
            pairs.setdefault(r.pair, set()).add(where[r.id])
    assert pairs and all(len(splits) == 1 for splits in pairs.values())
    assert {k: [r.id for r in v] for k, v in split_records(records, seed=6).items()} != {
        k: [r.id for r in v] for k, v in first.items()
    }


def test_label_edits_and_new_records_move_no_existing_record():
    records = load_records(sorted(Path("data/labelled").glob("*.jsonl"))).records[:1500]
    before = {r.id: name for name, rows in split_records(records[:1000]).items() for r in rows}
    edited = [
        r.model_copy(update={"labels": r.labels.model_copy(update={"threatening": 1 - r.labels.threatening})})
        if i % 7 == 0
        else r
        for i, r in enumerate(records)
    ]
    grown = split_records(edited)  # a seventh of the labels flipped and 500 records added
    after = {r.id: name for name, rows in grown.items() for r in rows}
    assert {i: after[i] for i in before} == before


def test_split_keeps_near_duplicates_together():
    base = load_records(sorted(Path("data/labelled").glob("*.jsonl"))).records[:300]
    twin = base[0].model_copy(update={"id": "twin", "text": base[0].text + "。"})
    split = split_records(base + [twin], seed=1)
    where = {r.id: name for name, rows in split.items() for r in rows}
    assert where["twin"] == where[base[0].id]


@pytest.mark.parametrize("path", sorted(Path("data/labelled").glob("*.jsonl")), ids=lambda p: p.name)
def test_shipped_corpus_is_valid(path):
    assert load_records([path]).errors == []


def test_every_labelled_record_belongs_to_the_slice_its_file_names():
    # writer-grouped experiments tell training writers apart by the id prefix
    assert writer_slice("v2b-0012") == "v2b" and writer_slice("a-0001") == "a"
    for path in sorted(Path("data/labelled").glob("*.jsonl")):
        slices = {writer_slice(record_id) for record_id in load_labelled([path])["id"]}
        assert slices == {path.stem.split("_")[0]}, path


def test_to_simplified_skips_opencc_only_where_opencc_would_change_nothing():
    from ml.data.text import _opencc, to_simplified, to_traditional

    simplified = ["您好，这边看到您的账单已经逾期三天了", "一目了然", "后天下午还款", "干得好", "里面的头发"]
    texts = simplified + [to_traditional(t) for t in simplified] + ["一目瞭然", "這個帳單", "乾淨", "頭髮", "瞭解"]
    opencc = _opencc("t2s")
    assert [to_simplified(t) for t in texts] == [opencc.convert(t) for t in texts]
    assert to_simplified("這個帳單") == "这个帐单"
