import json
from pathlib import Path

import pandas as pd

from ml.batch import ScoreJob
from ml.report import build_report

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "archive.csv"


def test_report_on_the_sample_archive(tiny_scorer, tiny_trained_model, tmp_path):
    scored = tmp_path / "scored.csv"
    ScoreJob(tiny_scorer, str(SAMPLE), str(scored)).run(show_progress=False)
    archive = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    page, summary_file = tmp_path / "report.html", tmp_path / "summary.json"
    build_report(scored, page, summary_file, str(tiny_trained_model))
    html = page.read_text(encoding="utf-8")
    for section in ("Summary", "Trend by day", "By team", "Agent ranking", "Most severe flagged replies", "Model"):
        assert f">{section}<" in html
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html  # self-contained
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    assert summary["rows"] == len(archive) and summary["errors"] == (archive["text"].str.strip() == "").sum()
    assert {row["agent"] for row in summary["breakdowns"]["agent"]} == set(archive["agent_id"])
    assert len(summary["breakdowns"]["day"]) >= 5
    flagged = [row["flagged_rate"] for row in summary["breakdowns"]["agent"]]
    assert flagged == sorted(flagged, reverse=True)
    csv = pd.read_csv(summary_file.with_suffix(".csv"))
    assert set(csv["level"]) == {"overall", "agent", "team", "day"}
