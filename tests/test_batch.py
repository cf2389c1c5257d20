import json

import pandas as pd
import pytest

from ml.batch import ScoreJob
from ml.labels import LABELS

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
    assert counts == {"rows": 5, "scored": 3, "errors": 2, "resumed_rows": 0}
    assert not list(tmp_path.glob(".out*"))  # no part files or temporaries left behind


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

    import ml.batch

    real_score_chunk, calls = ml.batch.score_chunk, {"n": 0}

    def crash_on_fourth_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated interruption")
        return real_score_chunk(*args, **kwargs)

    monkeypatch.setattr(ml.batch, "score_chunk", crash_on_fourth_chunk)
    output = tmp_path / f"resumed{suffix}"
    with pytest.raises(KeyboardInterrupt):
        ScoreJob(tiny_scorer, str(source), str(output), chunk_rows=4).run(show_progress=False)
    assert not output.exists()  # nothing half-written at the final path
    monkeypatch.setattr(ml.batch, "score_chunk", real_score_chunk)
    counts = ScoreJob(tiny_scorer, str(source), str(output), chunk_rows=4).run(resume=True, show_progress=False)
    assert counts["resumed_rows"] == 12 and counts["rows"] == 30
    pd.testing.assert_frame_equal(read_any(output), read_any(tmp_path / f"once{suffix}"))


def test_cli_reads_stdin_and_writes_stdout(tiny_trained_model, tmp_path):
    from typer.testing import CliRunner

    from ml.cli import app

    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ROWS[:3])
    result = CliRunner().invoke(app, ["score", "-", "--output", "-", "--model", str(tiny_trained_model)], input=lines)
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [row["id"] for row in out] == ["r1", "r2", "r3"] and out[1]["error"]
