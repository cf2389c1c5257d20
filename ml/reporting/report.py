"""Report stage: a self-contained HTML page for QA leads and a JSON/CSV summary for BI tools."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader

from ml.config import ConversationRubric
from ml.data.pii import find_pii, redact
from ml.data.tabular import fixed_columns, is_missing, read_chunks
from ml.labels import LABELS
from ml.modeling.model_info import ModelInfo, resolve_model_source
from ml.modeling.scorer import InvalidReply, Scorer
from ml.reporting.conversations import conversation_scorecards
from ml.serving.batch import SCORE_COLUMNS

RISK_LABELS = ("threatening", "privacy_risk")
GROUP_COLUMNS = {"agent": ("agent_id", "agent"), "team": ("team",), "day": ("timestamp", "time", "date", "day")}
DEFAULT_TIMEZONE = "Asia/Shanghai"
# Everything on the page is escaped; the page runs no script and loads nothing from outside.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)


def load_scored(path: Path) -> pd.DataFrame:
    chunks = list(read_chunks(str(path), 100_000))
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=fixed_columns(str(path)) or [])
    missing = [f"p_{label}" for label in LABELS if f"p_{label}" not in frame]
    if missing and len(frame):
        raise ValueError(f"{path}: not a file written by `replyqa score` (missing {', '.join(missing)})")
    for column in SCORE_COLUMNS:
        if column not in frame:
            frame[column] = pd.Series(dtype=object)
    for label in LABELS:
        frame[f"p_{label}"] = pd.to_numeric(frame[f"p_{label}"], errors="coerce")
        frame[label] = pd.to_numeric(frame[label], errors="coerce")
    if "error" not in frame:
        frame["error"] = pd.NA
    frame["error"] = frame["error"].replace("", pd.NA)
    return frame


def local_days(values: pd.Series, timezone: str = DEFAULT_TIMEZONE) -> pd.Series:
    """The calendar day of each timestamp in `timezone`: timestamps with an offset (Z, +08:00) are
    converted to it, naive ones are taken to be local time there already. Formats may be mixed
    (ISO, 2024/05/01 20:30, 2024年5月1日); unreadable and empty values give <NA>."""
    text = values.astype("string").str.strip()
    text = text.str.replace("年", "-").str.replace("月", "-").str.replace("日", " ").str.strip()
    present = text.notna() & (text != "")
    aware = present & text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", case=False, regex=True).fillna(False)
    naive = present & ~aware
    days = pd.Series(pd.NA, index=values.index, dtype="string")
    if aware.any():
        parsed = pd.to_datetime(text[aware], errors="coerce", utc=True, format="mixed").dt.tz_convert(timezone)
        days[aware] = parsed.dt.strftime("%Y-%m-%d")
    if naive.any():
        days[naive] = pd.to_datetime(text[naive], errors="coerce", format="mixed").dt.strftime("%Y-%m-%d")
    return days


def group_keys(frame: pd.DataFrame, timezone: str = DEFAULT_TIMEZONE) -> dict[str, pd.Series]:
    """The breakdowns the file allows: agent, team, day (from a timestamp or date column)."""
    keys = {}
    for name, candidates in GROUP_COLUMNS.items():
        column = next((c for c in candidates if c in frame), None)
        if column is None:
            continue
        keys[name] = local_days(frame[column], timezone) if name == "day" else frame[column].astype("string")
    return keys


def day_column(frame: pd.DataFrame) -> str | None:
    return next((c for c in GROUP_COLUMNS["day"] if c in frame), None)


def rates(scored: pd.DataFrame) -> dict[str, Any]:
    row = {"replies": int(len(scored))}
    for label in LABELS:
        row[f"{label}_rate"] = round(float(scored[label].mean()), 4) if len(scored) else None
    row["meets_all_principles"] = (
        round(float(((scored["threatening"] == 0) & (scored["privacy_risk"] == 0) & (scored["polite"] == 1)).mean()), 4)
        if len(scored)
        else None
    )
    return row


def summarise(
    frame: pd.DataFrame, timezone: str = DEFAULT_TIMEZONE, rubric: ConversationRubric | None = None
) -> dict[str, Any]:
    scored = frame[frame["error"].isna()]
    overall = rates(scored)
    summary: dict[str, Any] = {
        "rows": int(len(frame)),
        "scored": int(len(scored)),
        "errors": int(frame["error"].notna().sum()),
        "overall": overall,
        "principles": {
            "polite": overall["polite_rate"],
            "clear": overall["clear_rate"],
            "empathetic": overall["empathetic_rate"],
            "no_threats": round(1 - overall["threatening_rate"], 4) if len(scored) else None,
            "privacy_respected": round(1 - overall["privacy_risk_rate"], 4) if len(scored) else None,
        },
        "breakdowns": {},
        "timezone": timezone,
    }
    keys = group_keys(frame, timezone)
    if "day" in keys:
        raw = frame[day_column(frame)].astype("string").str.strip()
        summary["unreadable_dates"] = int((raw.notna() & (raw != "") & keys["day"].isna()).sum())
    for name, key in keys.items():
        groups = scored.groupby(key.loc[scored.index], dropna=True)
        table = [{name: str(value), **rates(group)} for value, group in groups]
        if name == "agent":  # worst first: the share of replies flagged threatening or privacy_risk
            for row, (_, group) in zip(table, groups):
                row["flagged_rate"] = round(
                    float(((group["threatening"] == 1) | (group["privacy_risk"] == 1)).mean()), 4
                )
            table.sort(key=lambda r: (-r["flagged_rate"], r["polite_rate"]))
        summary["breakdowns"][name] = table
    if rubric is not None and (conversations := conversation_scorecards(frame, rubric, keys)):
        summary["conversations"] = conversations
        for name in ("agent", "team"):  # conversation-level figures next to the reply-level ones
            figures = {row[name]: row for row in conversations[f"by_{name}"]}
            for row in summary["breakdowns"].get(name, []):
                extra = figures.get(row[name], {})
                row.update(
                    {k: extra.get(k) for k in ("conversations", "auto_fail_rate", "mean_score", "week_over_week")}
                )
    return summary


def severe_replies(
    frame: pd.DataFrame, scorer: Scorer | None, limit: int = 15, show_pii: bool = False
) -> list[dict[str, Any]]:
    """The flagged replies with the highest threatening/privacy_risk probability, with evidence and
    the personal data found by rule; identifiers are masked unless `show_pii`."""
    scored = frame[frame["error"].isna()].copy()
    flagged = scored[(scored["threatening"] == 1) | (scored["privacy_risk"] == 1)]
    flagged = flagged.assign(severity=flagged[[f"p_{label}" for label in RISK_LABELS]].max(axis=1))
    top = flagged.sort_values("severity", ascending=False).head(limit)
    rows = []
    for _, row in top.iterrows():
        reply, context = _shown(row.get("text")).strip(), _shown(row.get("context"))
        labels = [label for label in RISK_LABELS if row[label] == 1]
        evidence = {}
        if scorer is not None and reply:
            try:
                result = scorer.score(reply, context, explain=True)
                evidence = {label: result.evidence.get(label, []) for label in labels}
            except InvalidReply:  # e.g. a context edited after scoring; show the reply without evidence
                evidence = {}
        findings = find_pii(reply)
        rows.append(
            {
                "id": _shown(row.get("id")),
                "agent": _shown(row.get("agent_id", row.get("agent"))),
                "team": _shown(row.get("team")),
                "time": _shown(row.get("timestamp")),
                "labels": labels,
                "severity": round(float(row["severity"]), 3),
                "context": context if show_pii else redact(context),
                "html": highlight(reply if show_pii else redact(reply, findings), evidence),
                "pii": [{"kind": f.kind, "validated": f.validated} for f in findings],
            }
        )
    return rows


def _shown(value) -> str:
    """A value as text on the page; a missing one (a Parquet null, a JSONL key a row lacks) as ""."""
    return "" if is_missing(value) else str(value)


def highlight(text: str, evidence: dict[str, list]) -> str:
    """The reply as HTML with each evidence span in <mark> (label in the title attribute)."""
    marks = sorted((span.start, span.end, label) for label, spans in evidence.items() for span in spans)
    pieces, position = [], 0
    for start, end, label in marks:
        if start < position:
            continue
        pieces += [
            html.escape(text[position:start]),
            f'<mark class="{label}" title="{label}">{html.escape(text[start:end])}</mark>',
        ]
        position = end
    pieces.append(html.escape(text[position:]))
    return "".join(pieces)


def trend_chart(day_rows: list[dict[str, Any]]) -> str:
    """Daily label rates as an embedded PNG (data URI), so the page opens offline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [row["day"] for row in day_rows]
    figure, axis = plt.subplots(figsize=(8, 3.2))
    for label in LABELS:
        axis.plot(days, [row[f"{label}_rate"] for row in day_rows], marker="o", label=label)
    axis.set_ylabel("share of replies")
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend(ncol=5, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 1.18))
    plt.setp(axis.get_xticklabels(), rotation=30, ha="right", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def summary_csv_rows(summary: dict[str, Any]) -> pd.DataFrame:
    rows = [{"level": "overall", "key": "all", **summary["overall"]}]
    for name, table in summary["breakdowns"].items():
        rows += [{"level": name, "key": row[name], **{k: v for k, v in row.items() if k != name}} for row in table]
    for card in summary.get("conversations", {}).get("cards", []):
        items = "; ".join(f"turn {item['turn']} {item['label']}" for item in card["auto_fail"])
        rows.append({"level": "conversation", "key": card["conversation"], **card, "auto_fail": items})
    return pd.DataFrame(rows).drop(columns=["conversation"], errors="ignore").map(_no_formula)


def _no_formula(value):
    """A text cell a spreadsheet would run as a formula (=HYPERLINK(...) as an agent name) gets a
    leading apostrophe, so it is shown as text; numbers stay numbers."""
    return f"'{value}" if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")) else value


def percent(value: float | None) -> str:
    return "—" if value is None or pd.isna(value) else f"{100 * value:.1f}%"


def build_report(
    scored_file: Path,
    output: Path,
    summary_file: Path | None,
    model: str,
    timezone: str = DEFAULT_TIMEZONE,
    show_pii: bool = False,
    rubric: ConversationRubric | None = None,
) -> list[Path]:
    """The HTML page (and the summary files); conversation scorecards when the file has a
    conversation id, scored by `rubric` (the `report.conversation` section of the config)."""
    rubric = rubric or ConversationRubric()
    frame = load_scored(scored_file)
    location = resolve_model_source(model)
    info = ModelInfo.read(location) if isinstance(location, Path) else ModelInfo(name=str(model))
    scorer = Scorer.load(location) if "text" in frame and len(frame) else None
    summary = summarise(frame, timezone, rubric)
    summary["model"] = {"name": info.name, "version": info.version, "test_metrics": info.test_metrics}
    summary["source"] = str(scored_file)
    environment = Environment(loader=PackageLoader("ml.reporting", "templates"), autoescape=True)
    environment.filters["pct"] = percent
    page = environment.get_template("report.html.j2").render(
        summary=summary,
        csp=CONTENT_SECURITY_POLICY,
        labels=LABELS,
        severe=severe_replies(frame, scorer, show_pii=show_pii),
        show_pii=show_pii,
        trend=trend_chart(summary["breakdowns"]["day"]) if summary["breakdowns"].get("day") else None,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    written = [output]
    if summary_file:
        summary_file.parent.mkdir(parents=True, exist_ok=True)
        summary_file.write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
        summary_csv_rows(summary).to_csv(summary_file.with_suffix(".csv"), index=False)
        written += [summary_file, summary_file.with_suffix(".csv")]
    return written
