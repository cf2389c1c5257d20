import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from ml.reporting.report import build_report
from ml.serving.batch import NothingScored, ScoreJob

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


# ---------------------------------------------------------------- hardening (outside probe)

HOSTILE = [
    "<script>document.title='pwned'</script>",
    '"><img src=x onerror="document.title=\'pwned\'">',
    "</td></tr></table><iframe src=javascript:alert(1)></iframe>",
    "<svg/onload=alert(1)>",
]


def hostile_scored_file(tiny_scorer, tmp_path) -> Path:
    rows = [
        {
            "id": HOSTILE[i % 4],
            "agent_id": HOSTILE[(i + 1) % 4],
            "team": HOSTILE[(i + 2) % 4],
            "timestamp": f"2026-11-0{1 + i % 3} 10:00",
            "context": HOSTILE[(i + 3) % 4],
            "text": "再不还钱就把你欠钱的事发到公司群里" + HOSTILE[i % 4],
        }
        for i in range(8)
    ]
    source = tmp_path / "hostile.csv"
    pd.DataFrame(rows).to_csv(source, index=False)
    scored = tmp_path / "scored.csv"
    ScoreJob(tiny_scorer, str(source), str(scored)).run(show_progress=False)
    frame = pd.read_csv(scored, dtype=str, keep_default_na=False)
    frame["threatening"] = "1"  # make every row a flagged one, so each value reaches the severe list too
    frame.to_csv(scored, index=False)
    return scored


class ElementCounter(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on") or "javascript:" in (_ or "")]


def test_hostile_values_are_shown_as_text_not_markup(tiny_scorer, tiny_trained_model, tmp_path):
    page = tmp_path / "report.html"
    build_report(hostile_scored_file(tiny_scorer, tmp_path), page, None, str(tiny_trained_model))
    html = page.read_text(encoding="utf-8")
    parser = ElementCounter()
    parser.feed(html)
    assert not {"script", "iframe", "svg"} & set(parser.tags)
    assert parser.tags.count("img") == int("data:image/png" in html)  # only the trend chart
    assert parser.handlers == []
    assert "&lt;script&gt;" in html and 'http-equiv="Content-Security-Policy"' in html
    assert "default-src &#39;none&#39;; img-src data:" in html  # no script, nothing loaded from outside


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_hostile_values_do_not_reach_the_dom_in_a_browser(tiny_scorer, tiny_trained_model, tmp_path):
    page = tmp_path / "report.html"
    build_report(hostile_scored_file(tiny_scorer, tmp_path), page, None, str(tiny_trained_model))
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    parser = ElementCounter()
    parser.feed(dom)
    assert "<title>Reply quality report" in dom  # the page loaded and no script renamed it
    assert not {"script", "iframe", "svg"} & set(parser.tags) and parser.handlers == []
    assert parser.tags.count("img") == 1  # the trend chart


def test_an_empty_file_and_an_all_error_file_give_honest_reports(tiny_scorer, tiny_trained_model, tmp_path):
    for name, rows in (("empty", []), ("errors", [{"id": "1", "text": "  "}, {"id": "2", "text": ""}])):
        source, scored = tmp_path / f"{name}.csv", tmp_path / f"{name}-scored.csv"
        pd.DataFrame(rows, columns=["id", "text"]).to_csv(source, index=False)
        try:
            ScoreJob(tiny_scorer, str(source), str(scored)).run(show_progress=False)
        except NothingScored:
            pass
        page, summary_file = tmp_path / f"{name}.html", tmp_path / f"{name}.json"
        build_report(scored, page, summary_file, str(tiny_trained_model))
        html = page.read_text(encoding="utf-8")
        assert "No reply was scored" in html and "—" in html
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        assert summary["rows"] == len(rows) and summary["scored"] == 0


def test_days_are_read_in_the_report_time_zone_and_unreadable_dates_are_counted():
    from ml.reporting.report import local_days

    values = pd.Series(
        [
            "2026-11-01 23:30",  # naive: local time already, stays on the 1st (UTC reading moved it to the 2nd)
            "2026-11-01T16:30:00Z",  # 00:30 on the 2nd in Shanghai
            "2026/11/03 08:00",
            "2026年11月4日 09:15",
            "2026-11-05T10:00:00+08:00",
            "not a date",
            "",
        ]
    )
    days = local_days(values, "Asia/Shanghai").tolist()
    assert days[:5] == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]
    assert pd.isna(days[5]) and pd.isna(days[6])
    assert local_days(pd.Series(["2026-11-01T16:30:00Z"]), "UTC").tolist() == ["2026-11-01"]


def test_summary_counts_unreadable_dates(tiny_scorer, tiny_trained_model, tmp_path):
    source, scored = tmp_path / "in.csv", tmp_path / "scored.csv"
    rows = [
        {"id": str(i), "text": "您好", "timestamp": t} for i, t in enumerate(["2026-11-01 10:00", "昨天", "13/13/13"])
    ]
    pd.DataFrame(rows).to_csv(source, index=False)
    ScoreJob(tiny_scorer, str(source), str(scored)).run(show_progress=False)
    summary_file = tmp_path / "summary.json"
    build_report(scored, tmp_path / "r.html", summary_file, str(tiny_trained_model), timezone="Asia/Shanghai")
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    assert summary["unreadable_dates"] == 2 and summary["timezone"] == "Asia/Shanghai"
    assert [row["day"] for row in summary["breakdowns"]["day"]] == ["2026-11-01"]
