import json
import os

import pandas as pd
import pytest

from ml import Scorer
from ml.labels import LABELS
from ml.serving.batch import ScoreJob

ROWS = [
    {"id": "r1", "text": "您好，您本期应还1,280元。", "context": "要还多少", "agent": "A1"},
    {"id": "r2", "text": "   ", "context": "", "agent": "A1"},
    {"id": "r3", "text": "再不还钱就去你单位闹", "context": "", "agent": "A2"},
    {"id": "r4", "text": "好" * 400, "context": "", "agent": "A2"},
    {"id": "r5", "text": "理解您的难处，我帮您申请分期。", "context": "我失业了", "agent": "A3"},
]


def read_any(path) -> pd.DataFrame:
    if str(path).endswith(".csv"):
        return pd.read_csv(path, dtype={"id": str, "agent": str, "text": str, "context": str, "error": str})
    if str(path).endswith(".parquet"):
        return pd.read_parquet(path)
    return pd.read_json(path, lines=True, dtype={"id": str})


def crash_on_chunk(monkeypatch, n: int):
    """Make the n-th chunk scored raise KeyboardInterrupt; return a function that undoes it."""
    import ml.serving.batch

    real_score_chunk, calls = ml.serving.batch.score_chunk, {"n": 0}

    def crash(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt("simulated interruption")
        return real_score_chunk(*args, **kwargs)

    monkeypatch.setattr(ml.serving.batch, "score_chunk", crash)
    return lambda: monkeypatch.setattr(ml.serving.batch, "score_chunk", real_score_chunk)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_every_row_comes_out_in_order_scored_or_with_its_error(tiny_scorer, tmp_path, suffix):
    source, output = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    frame = pd.DataFrame(ROWS)
    {
        ".csv": lambda: frame.to_csv(source, index=False),
        ".jsonl": lambda: frame.to_json(source, orient="records", lines=True, force_ascii=False),
        ".parquet": lambda: frame.to_parquet(source, index=False),
    }[suffix]()
    counts = ScoreJob(tiny_scorer, str(source), str(output), chunk_rows=2).run(show_progress=False)
    result = read_any(output)
    assert list(result["id"]) == ["r1", "r2", "r3", "r4", "r5"]
    assert list(result["agent"]) == ["A1", "A1", "A2", "A2", "A3"]  # input columns pass through
    assert {f"p_{label}" for label in LABELS} | set(LABELS) | {"error"} <= set(result.columns)
    errors = [e if isinstance(e, str) and e else None for e in result["error"]]
    assert "empty" in errors[1] and "maximum" in errors[3]
    assert errors[0] is None and errors[2] is None and errors[4] is None
    assert result["p_polite"].isna().tolist() == [False, True, False, True, False]
    assert counts.summary() == {"rows": 5, "scored": 3, "errors": 2, "resumed_rows": 0}
    assert not list(tmp_path.glob(".out*"))  # no part files or temporaries left behind


def test_the_output_folder_is_created(tiny_scorer, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "您好"}\n', encoding="utf-8")
    ScoreJob(tiny_scorer, str(source), str(tmp_path / "new" / "folder" / "out.csv")).run(show_progress=False)
    assert len(read_any(tmp_path / "new" / "folder" / "out.csv")) == 1


def test_missing_text_column_and_bad_json_lines_are_reported_per_row(tiny_scorer, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "reply": "您好"}\n{not json\n{"id": "c", "text": "您好"}\n', encoding="utf-8")
    ScoreJob(tiny_scorer, str(source), str(tmp_path / "out.jsonl")).run(show_progress=False)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3
    assert "no 'text' value" in rows[0]["error"] and rows[0]["reply"] == "您好"
    assert "bad JSON" in rows[1]["error"] and rows[1]["_raw"] == "{not json"
    assert rows[2]["error"] is None and rows[2]["p_polite"] is not None


def test_an_input_without_ids_gets_row_numbers(tiny_scorer, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "您好"}\n{"text": "请稍等"}\n{"text": "好的"}\n', encoding="utf-8")
    ScoreJob(tiny_scorer, str(source), str(tmp_path / "out.jsonl"), chunk_rows=2).run(show_progress=False)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == ["1", "2", "3"]


def test_wrong_encoding_is_an_error_for_that_row_only(tiny_scorer, tmp_path):
    source = tmp_path / "in.csv"
    source.write_bytes("id,text\n1,您好\n".encode() + b"2,\xc4\xfa\xba\xc3\n" + "3,请稍等\n".encode())  # row 2 is GBK
    ScoreJob(tiny_scorer, str(source), str(tmp_path / "out.csv")).run(show_progress=False)
    result = read_any(tmp_path / "out.csv")
    assert list(result["id"].astype(str)) == ["1", "2", "3"]
    assert result["error"].isna().tolist() == [True, False, True]
    assert "UTF-8" in result["error"][1]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_resume_after_an_interruption_equals_one_run(tiny_scorer, tmp_path, suffix, monkeypatch):
    source = tmp_path / "in.csv"
    pd.DataFrame([{**row, "id": f"{row['id']}-{i}"} for i in range(6) for row in ROWS]).to_csv(source, index=False)
    ScoreJob(tiny_scorer, str(source), str(tmp_path / f"once{suffix}"), chunk_rows=4).run(show_progress=False)

    restore = crash_on_chunk(monkeypatch, 4)
    output = tmp_path / f"resumed{suffix}"
    with pytest.raises(KeyboardInterrupt):
        ScoreJob(tiny_scorer, str(source), str(output), chunk_rows=4).run(show_progress=False)
    assert not output.exists()  # nothing half-written at the final path
    restore()
    counts = ScoreJob(tiny_scorer, str(source), str(output), chunk_rows=4).run(resume=True, show_progress=False)
    assert counts.resumed_rows == 12 and counts.rows == 30
    pd.testing.assert_frame_equal(read_any(output), read_any(tmp_path / f"once{suffix}"))


def test_cli_reads_stdin_and_writes_stdout(tiny_trained_model, tmp_path):
    from typer.testing import CliRunner

    from ml.cli import app

    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ROWS[:3])
    for piped in (lines, "\ufeff" + lines):  # the second as a Windows tool writes it, with a byte-order mark
        result = CliRunner().invoke(
            app, ["score", "-", "--output", "-", "--model", str(tiny_trained_model)], input=piped
        )
        assert result.exit_code == 0, result.output
        out = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        assert [row["id"] for row in out] == ["r1", "r2", "r3"] and out[1]["error"] and not out[0]["error"]


# ---------------------------------------------------------------- hardening (outside probe)


def test_a_second_run_on_the_same_output_fails_at_once_and_the_first_loses_nothing(tiny_scorer, tmp_path, monkeypatch):
    from ml.serving.batch import JobError

    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_rows(source, [{"id": str(i), "text": f"您好，第{i}期"} for i in range(12)])
    import ml.serving.batch

    real_score_chunk, seen = ml.serving.batch.score_chunk, {}

    def start_a_rival_midway(*args, **kwargs):
        if "error" not in seen:
            try:
                ScoreJob(tiny_scorer, str(source), str(output), chunk_rows=4).run(show_progress=False)
            except JobError as error:
                seen["error"] = str(error)
        return real_score_chunk(*args, **kwargs)

    monkeypatch.setattr(ml.serving.batch, "score_chunk", start_a_rival_midway)
    counts = ScoreJob(tiny_scorer, str(source), str(output), chunk_rows=4).run(show_progress=False)
    assert "another `replyqa score`" in seen["error"] and "out.jsonl" in seen["error"]
    assert counts.rows == 12 and len(output.read_text(encoding="utf-8").splitlines()) == 12
    assert not list(tmp_path.glob(".out*"))  # lock and parts gone


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_keys_that_change_between_chunks_keep_their_columns(tiny_scorer, tmp_path, suffix):
    rows = [{"id": "1", "text": "您好", "agent": "A1"}, {"id": "2", "text": "请稍等", "agent": "A2"}]
    rows += [{"id": "3", "text": "好的", "team": "T9"}, {"id": "4", "text": "稍等", "team": "T9", "amount": 12}]
    rows += [{"id": "5", "text": "谢谢", "amount": "12元"}]  # a number in one chunk, text in another
    source, output = tmp_path / "in.jsonl", tmp_path / f"out{suffix}"
    write_rows(source, rows)
    ScoreJob(tiny_scorer, str(source), str(output), chunk_rows=2).run(show_progress=False)
    result = read_any(output)
    assert list(result["id"].astype(str)) == ["1", "2", "3", "4", "5"]
    assert result["agent"].fillna("").tolist()[:3] == ["A1", "A2", ""]
    assert result["team"].fillna("").tolist() == ["", "", "T9", "T9", ""]
    assert [str(v) for v in result["amount"].fillna("")] == ["", "", "", "12", "12元"]
    if suffix != ".jsonl":  # one header: the scores stay the last columns
        assert list(result.columns[-12:]) == [f"p_{label}" for label in LABELS] + list(LABELS) + ["pii", "error"]
    assert result["error"].isna().all() or (result["error"].fillna("") == "").all()


def test_a_lone_surrogate_is_an_error_on_its_row_only(tiny_scorer, tmp_path):
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = [
        '{"id": "1", "text": "您好"}',
        '{"id": "2", "text": "\\ud800您好"}',
        '{"id": "3", "text": "好", "note": "\\udfff"}',
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    counts = ScoreJob(tiny_scorer, str(source), str(output)).run(show_progress=False)
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == ["1", "2", "3"] and counts.errors == 1
    assert "lone surrogate" in rows[1]["error"] and rows[0]["error"] is None and rows[2]["error"] is None
    assert rows[2]["note"] == "\ufffd"  # pass-through values stay writable


def test_resume_refuses_a_changed_input_of_the_same_size_and_changed_options(tiny_scorer, tmp_path, monkeypatch):
    from ml.serving.batch import JobError

    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame(ROWS * 4).to_csv(source, index=False)
    restore = crash_on_chunk(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        ScoreJob(tiny_scorer, str(source), str(output), chunk_rows=4).run(show_progress=False)
    restore()
    with pytest.raises(JobError, match="cannot resume"):  # another context column
        ScoreJob(tiny_scorer, str(source), str(output), context_col="agent", chunk_rows=4).run(resume=True)
    other_runtime = Scorer.load(tiny_scorer.source, runtime="torch", max_chars=tiny_scorer.max_chars)
    with pytest.raises(JobError, match="cannot resume"):  # e.g. begun with OpenVINO bf16, resumed on a CPU without
        ScoreJob(other_runtime, str(source), str(output), chunk_rows=4).run(resume=True)
    changed = source.read_bytes().replace("您本期".encode(), "你本期".encode())
    assert len(changed) == source.stat().st_size
    source.write_bytes(changed)
    with pytest.raises(JobError, match="the input changed"):
        ScoreJob(tiny_scorer, str(source), str(output), chunk_rows=4).run(resume=True, show_progress=False)


def test_utf16_and_gbk_files_are_read_with_the_right_encoding(tiny_scorer, tmp_path):
    frame = pd.DataFrame([{"id": "1", "text": "您好，您本期应还1,280元。"}, {"id": "2", "text": "请稍等"}])
    utf16, gbk = tmp_path / "in16.csv", tmp_path / "ingbk.csv"
    frame.to_csv(utf16, index=False, encoding="utf-16")  # with a BOM, found without being told
    frame.to_csv(gbk, index=False, encoding="gbk")
    for source, encoding in ((utf16, None), (gbk, "gbk")):
        output = tmp_path / f"out-{source.stem}.csv"
        counts = ScoreJob(tiny_scorer, str(source), str(output), encoding=encoding).run(show_progress=False)
        assert counts.scored == 2 and read_any(output)["text"].tolist() == frame["text"].tolist()


def test_a_gbk_file_read_as_utf8_scores_nothing_and_says_why(tiny_scorer, tmp_path):
    from ml.serving.batch import NothingScored

    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame([{"id": "1", "text": "您好"}, {"id": "2", "text": "请稍等"}]).to_csv(
        source, index=False, encoding="gbk"
    )
    with pytest.raises(NothingScored, match="--encoding gbk"):
        ScoreJob(tiny_scorer, str(source), str(output)).run(show_progress=False)
    assert len(read_any(output)) == 2  # every row is still in the output, with its error


def test_a_wrong_text_column_fails_with_the_columns_found(tiny_scorer, tmp_path):
    from ml.serving.batch import JobError, NothingScored

    source = tmp_path / "in.csv"
    pd.DataFrame(ROWS).to_csv(source, index=False)
    with pytest.raises(JobError, match="no column 'txt'; columns found: id, text, context, agent"):
        ScoreJob(tiny_scorer, str(source), str(tmp_path / "out.csv"), text_col="txt").run(show_progress=False)
    assert not list(tmp_path.glob(".out*")) and not (tmp_path / "out.csv").exists()
    jsonl = tmp_path / "in.jsonl"
    write_rows(jsonl, [{"id": "1", "reply": "您好"}, {"id": "2", "reply": "请稍等"}])
    with pytest.raises(NothingScored, match="columns found: id, reply"):
        ScoreJob(tiny_scorer, str(jsonl), str(tmp_path / "out.jsonl")).run(show_progress=False)


def test_cli_exit_codes_name_the_problem(tiny_trained_model, tmp_path):
    from typer.testing import CliRunner

    from ml.cli import app

    source = tmp_path / "in.csv"
    pd.DataFrame(ROWS).to_csv(source, index=False)
    args = ["score", str(source), "-o", str(tmp_path / "out.csv"), "--model", str(tiny_trained_model)]
    typo = CliRunner().invoke(app, [*args, "--text-col", "txt"])
    assert typo.exit_code == 2 and "columns found" in typo.output
    bad_encoding = CliRunner().invoke(app, [*args, "--encoding", "latin-9"])
    assert bad_encoding.exit_code == 2 and "unsupported encoding" in bad_encoding.output


def test_a_job_that_fails_before_scoring_leaves_no_parts(tiny_scorer, tmp_path, monkeypatch):
    import ml.serving.batch

    def broken(*args, **kwargs):
        raise RuntimeError("model crashed")

    monkeypatch.setattr(ml.serving.batch, "score_chunk", broken)
    source = tmp_path / "in.jsonl"
    write_rows(source, ROWS)
    with pytest.raises(RuntimeError):
        ScoreJob(tiny_scorer, str(source), str(tmp_path / "out.jsonl")).run(show_progress=False)
    assert not list(tmp_path.glob(".out*"))


def test_probabilities_are_written_rounded(tiny_scorer, tmp_path):
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_rows(source, ROWS)
    ScoreJob(tiny_scorer, str(source), str(output)).run(show_progress=False)
    import re

    numbers = re.findall(r'"p_\w+":(-?[0-9.e-]+)', output.read_text(encoding="utf-8"))
    assert numbers and all(len(n.split(".")[-1]) <= 4 and "e" not in n for n in numbers)


def test_parts_and_output_are_fsynced_before_they_are_renamed(tiny_scorer, tmp_path, monkeypatch):
    import ml.data.tabular

    synced = []
    real_fsync = ml.data.tabular.os.fsync
    monkeypatch.setattr(
        ml.data.tabular.os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd)
    )
    source = tmp_path / "in.jsonl"
    write_rows(source, ROWS)
    ScoreJob(tiny_scorer, str(source), str(tmp_path / "out.jsonl"), chunk_rows=2).run(show_progress=False)
    assert sum(path.endswith(".jsonl.tmp") and "part-" in path for path in synced) == 3
    assert any(path.endswith(".out.jsonl.tmp") for path in synced)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_two_workers_write_the_same_bytes_as_one(tiny_scorer, tmp_path, suffix):
    source = tmp_path / "in.csv"
    pd.DataFrame([{**row, "id": f"{row['id']}-{i}"} for i in range(12) for row in ROWS]).to_csv(source, index=False)
    one, two = tmp_path / f"one{suffix}", tmp_path / f"two{suffix}"
    ScoreJob(tiny_scorer, str(source), str(one), chunk_rows=7).run(show_progress=False)
    counts = ScoreJob(tiny_scorer, str(source), str(two), chunk_rows=7, workers=2).run(show_progress=False)
    assert counts.rows == 60 and counts.errors == 24 and counts.scored == 36
    assert one.read_bytes() == two.read_bytes()


def test_a_run_interrupted_with_one_worker_resumes_with_two(tiny_scorer, tmp_path, monkeypatch):
    source = tmp_path / "in.csv"
    pd.DataFrame([{**row, "id": f"{row['id']}-{i}"} for i in range(6) for row in ROWS]).to_csv(source, index=False)
    ScoreJob(tiny_scorer, str(source), str(tmp_path / "once.csv"), chunk_rows=4).run(show_progress=False)
    restore = crash_on_chunk(monkeypatch, 3)
    output = tmp_path / "resumed.csv"
    with pytest.raises(KeyboardInterrupt):
        ScoreJob(tiny_scorer, str(source), str(output), chunk_rows=4).run(show_progress=False)
    restore()
    counts = ScoreJob(tiny_scorer, str(source), str(output), chunk_rows=4, workers=2).run(
        resume=True, show_progress=False
    )
    assert counts.resumed_rows == 8 and counts.rows == 30
    assert output.read_bytes() == (tmp_path / "once.csv").read_bytes()


# ---------------------------------------------------------------- malformed input, names the output uses


def test_a_malformed_csv_row_is_an_error_on_its_row_only_and_names_its_line(tiny_scorer, tmp_path):
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text('id,text\n1,您好\n2,请稍等,EXTRA\n3,"好的"x\n4,谢谢\n', encoding="utf-8")
    counts = ScoreJob(tiny_scorer, str(source), str(output), chunk_rows=2).run(show_progress=False)
    result = read_any(output)
    assert counts.rows == 4 and counts.scored == 2
    assert result["id"].fillna("").tolist() == ["1", "", "", "4"]
    assert result["_raw"].fillna("").tolist() == ["", "2,请稍等,EXTRA", '3,"好的"x', ""]
    assert "bad CSV row at line 3: 3 cells where the header has 2" in result["error"][1]
    assert "bad CSV row at line 4" in result["error"][2]
    assert not list(tmp_path.glob(".out*"))


def test_a_quote_that_is_never_closed_keeps_the_rest_of_the_file_as_one_bad_row(tiny_scorer, tmp_path):
    source, output = tmp_path / "in.csv", tmp_path / "out.jsonl"
    source.write_text('id,text\n1,您好\n2,"请稍等\n3,好的\n', encoding="utf-8")
    ScoreJob(tiny_scorer, str(source), str(output)).run(show_progress=False)
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [row["error"] is None for row in rows] == [True, False]
    assert rows[1]["_raw"] == '2,"请稍等\n3,好的' and "bad CSV row at lines 3-4" in rows[1]["error"]


def test_a_context_that_is_not_a_string_is_an_error_on_its_row(tiny_scorer, tmp_path):
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_rows(source, [{"text": "您好", "context": 5}, {"text": "您好", "context": None}, {"text": "您好"}])
    ScoreJob(tiny_scorer, str(source), str(output)).run(show_progress=False)
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert "context must be a string, got int" in rows[0]["error"] and rows[0]["p_polite"] is None
    assert rows[1]["error"] is None and rows[2]["error"] is None  # an absent context is no error


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_column_named_like_an_output_column_is_refused_before_anything_is_written(tiny_scorer, tmp_path, suffix):
    source, output = tmp_path / f"in{suffix}", tmp_path / "out.csv"
    frame = pd.DataFrame([{"id": "1", "text": "您好", "error": "E17", "p_polite": "high"}])
    frame.to_csv(source, index=False) if suffix == ".csv" else frame.to_parquet(source, index=False)
    with pytest.raises(ValueError, match="'error', 'p_polite'; rename it"):
        ScoreJob(tiny_scorer, str(source), str(output)).run(show_progress=False)
    assert not output.exists() and not list(tmp_path.glob(".out*"))


def test_a_jsonl_line_with_a_key_the_output_uses_is_kept_whole_with_its_error(tiny_scorer, tmp_path):
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = ['{"id": "1", "text": "您好", "error": "E17"}', '{"id": "2", "text": "您好", "_parse_error": "x"}']
    source.write_text("\n".join([*lines, '{"id": "3", "text": "您好"}']) + "\n", encoding="utf-8")
    ScoreJob(tiny_scorer, str(source), str(output)).run(show_progress=False)
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [row.get("_raw") for row in rows] == [*lines, None]
    assert "'error' is a name the output uses" in rows[0]["error"] and "'_parse_error'" in rows[1]["error"]
    assert rows[2]["error"] is None


def test_cli_errors_show_column_names_as_written_not_as_markup(tiny_trained_model, tmp_path):
    from typer.testing import CliRunner

    from ml.cli import app

    for header, shown in (("[/b],x", "[/b], x"), ("[id],[text]", "[id], [text]")):
        source = tmp_path / "in.csv"
        source.write_text(f"{header}\n1,您好\n", encoding="utf-8")
        result = CliRunner().invoke(
            app, ["score", str(source), "-o", str(tmp_path / "out.csv"), "--model", str(tiny_trained_model)]
        )
        assert result.exit_code == 2 and f"columns found: {shown}" in result.output, result.output
