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


# ---------------------------------------------------------------- conversation scorecards


def scored_turn(conversation, turn, agent, day, context="", **labels):
    row = {
        "conversation_id": conversation,
        "turn": turn,
        "agent_id": agent,
        "team": "T1",
        "timestamp": day,
        "context": context,
        "text": "……",
        "error": pd.NA,
    }
    for label in ("polite", "clear", "empathetic", "threatening", "privacy_risk"):
        row[label] = labels.get(label, 0)
        row[f"p_{label}"] = float(labels.get(label, 0))
    return row


def test_conversation_scorecards_follow_the_rubric():
    from ml.config import ConversationRubric
    from ml.reporting.report import summarise

    frame = pd.DataFrame(
        [
            # c1 (rows out of order): hardship at turn 2, empathy at turn 4 -> (30*1 + 40*0.5 + 30*1) / 100
            scored_turn("c1", 1, "A1", "2026-11-16 09:00", polite=1, clear=1),
            scored_turn("c1", 4, "A1", "2026-11-16 09:03", "我刚失业了", polite=1, empathetic=1),
            scored_turn("c1", 2, "A1", "2026-11-16 09:01", "我生病住院了", polite=1, clear=1),
            scored_turn("c1", 3, "A1", "2026-11-16 09:02", "嗯", polite=1),
            # c2: a threat at turn 4 -> auto-fail, score 0
            scored_turn("c2", 2, "A2", "2026-11-17 10:00", polite=1, clear=1),
            scored_turn("c2", 4, "A2", "2026-11-17 10:02", threatening=1),
            # c3 (A1, the week after): no hardship, so empathy is not counted -> (30*1 + 40*1) / 70
            scored_turn("c3", 1, "A1", "2026-11-24 11:00", polite=1, clear=1),
        ]
    )
    summary = summarise(frame, rubric=ConversationRubric())
    cards = {c["conversation"]: c for c in summary["conversations"]["cards"]}
    assert cards["c1"]["score"] == 80.0 and cards["c1"]["hardship_turn"] == 2 and cards["c1"]["empathy_shown"]
    assert cards["c1"]["polite_share"] == 1.0 and cards["c1"]["clear_share"] == 0.5
    assert cards["c2"]["score"] == 0.0 and cards["c2"]["auto_fail"] == [{"turn": 4, "label": "threatening"}]
    assert cards["c3"]["score"] == 100.0 and cards["c3"]["empathy_shown"] is None
    agents = {row["agent"]: row for row in summary["breakdowns"]["agent"]}
    assert agents["A1"]["conversations"] == 2 and agents["A1"]["mean_score"] == 90.0
    assert agents["A1"]["week_over_week"] == 20.0  # week of 11-24 (100) against week of 11-16 (80)
    assert agents["A2"]["auto_fail_rate"] == 1.0 and agents["A2"]["week_over_week"] is None
    # the rubric is configuration: without empathy's weight c1 is (30*1 + 40*0.5) / 70
    no_empathy = ConversationRubric(weights={"polite": 30, "clear": 40, "empathy": 0})
    cards = {c["conversation"]: c for c in summarise(frame, rubric=no_empathy)["conversations"]["cards"]}
    assert cards["c1"]["score"] == round(100 * (30 + 20) / 70, 1)
    assert summarise(frame.drop(columns=["conversation_id"]), rubric=ConversationRubric()).get("conversations") is None


def test_the_page_shows_conversations_and_auto_fail_items_in_a_browser(tiny_trained_model, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    rows = [
        scored_turn("conv-9", 1, "A1", "2026-11-16 09:00", polite=1, clear=1),
        scored_turn("conv-9", 2, "A1", "2026-11-16 09:01", "我失业了", privacy_risk=1),
    ]
    scored = tmp_path / "scored.csv"
    pd.DataFrame(rows).to_csv(scored, index=False)
    page, summary_file = tmp_path / "report.html", tmp_path / "summary.json"
    build_report(scored, page, summary_file, str(tiny_trained_model))
    html = page.read_text(encoding="utf-8")
    assert ">Conversations<" in html and "turn 2: privacy_risk" in html
    csv = pd.read_csv(summary_file.with_suffix(".csv"))
    assert csv.loc[csv["level"] == "conversation", "auto_fail"].tolist() == ["turn 2 privacy_risk"]
    if chromium is None:
        pytest.skip("chromium is not installed (the page itself was checked above)")
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "turn 2: privacy_risk" in dom and "conv-9" in dom


def test_the_conversation_sample_gives_scorecards(tiny_scorer, tiny_trained_model, tmp_path):
    sample = SAMPLE.with_name("conversations.csv")
    archive = pd.read_csv(sample, dtype=str, keep_default_na=False)
    scored = tmp_path / "scored.csv"
    ScoreJob(tiny_scorer, str(sample), str(scored)).run(show_progress=False)
    summary_file = tmp_path / "summary.json"
    build_report(scored, tmp_path / "report.html", summary_file, str(tiny_trained_model))
    conversations = json.loads(summary_file.read_text(encoding="utf-8"))["conversations"]
    assert conversations["conversations"] == archive["conversation_id"].nunique() >= 300
    assert {row["agent"] for row in conversations["by_agent"]} == set(archive["agent_id"])
    turns = archive.groupby("conversation_id").size()
    assert turns.between(3, 12).all() and archive["timestamp"].str[:10].nunique() == 14


def test_a_missing_context_is_shown_as_none_not_as_nan(tiny_scorer, tiny_trained_model, tmp_path):
    source, scored = tmp_path / "in.parquet", tmp_path / "scored.parquet"
    pd.DataFrame(
        [{"id": "1", "agent_id": "A1", "text": "再不还钱就把你欠钱的事发到公司群里", "context": None}]
    ).to_parquet(source)
    ScoreJob(tiny_scorer, str(source), str(scored)).run(show_progress=False)
    frame = pd.read_parquet(scored)
    frame["threatening"] = 1  # flagged, so it is listed with its context
    frame.to_parquet(scored)
    page = tmp_path / "report.html"
    build_report(scored, page, None, str(tiny_trained_model))
    html = page.read_text(encoding="utf-8")
    assert "agent A1" in html and "customer:" not in html and " nan" not in html


def test_summary_csv_cells_cannot_run_as_spreadsheet_formulas(tiny_scorer, tiny_trained_model, tmp_path):
    import csv

    source, scored = tmp_path / "in.csv", tmp_path / "scored.csv"
    agents = ['=HYPERLINK("http://evil.example","open")', "+1+2", "-3", "@SUM(A1)", "A 1"]
    pd.DataFrame([{"id": str(i), "agent_id": a, "text": "您好"} for i, a in enumerate(agents)]).to_csv(
        source, index=False
    )
    ScoreJob(tiny_scorer, str(source), str(scored)).run(show_progress=False)
    summary_file = tmp_path / "summary.json"
    build_report(scored, tmp_path / "report.html", summary_file, str(tiny_trained_model))
    rows = list(csv.DictReader(summary_file.with_suffix(".csv").open(encoding="utf-8")))
    keys = {row["key"] for row in rows if row["level"] == "agent"}
    assert keys == {"'" + a for a in agents[:4]} | {"A 1"}
    assert all(not row["polite_rate"].startswith("'") for row in rows)  # numbers stay numbers
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    assert {row["agent"] for row in summary["breakdowns"]["agent"]} == set(agents)  # the JSON keeps the names
