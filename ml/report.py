"""Report stage: a self-contained HTML page for QA leads and a JSON/CSV summary for BI tools."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from ml.batch import read_chunks
from ml.labels import LABELS
from ml.scorer import ModelInfo, Scorer, resolve_model_source

RISK_LABELS = ("threatening", "privacy_risk")
GROUP_COLUMNS = {"agent": ("agent_id", "agent"), "team": ("team",), "day": ("timestamp", "time", "date", "day")}


def load_scored(path: Path) -> pd.DataFrame:
    frame = pd.concat(list(read_chunks(str(path), 100_000)), ignore_index=True)
    missing = [f"p_{label}" for label in LABELS if f"p_{label}" not in frame]
    if missing:
        raise ValueError(f"{path}: not a file written by `replyqa score` (missing {', '.join(missing)})")
    for label in LABELS:
        frame[f"p_{label}"] = pd.to_numeric(frame[f"p_{label}"], errors="coerce")
        frame[label] = pd.to_numeric(frame[label], errors="coerce")
    if "error" not in frame:
        frame["error"] = pd.NA
    frame["error"] = frame["error"].replace("", pd.NA)
    return frame


def group_keys(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """The breakdowns the file allows: agent, team, day (from a timestamp or date column)."""
    keys = {}
    for name, candidates in GROUP_COLUMNS.items():
        column = next((c for c in candidates if c in frame), None)
        if column is None:
            continue
        if name == "day":
            keys[name] = (
                pd.to_datetime(frame[column], errors="coerce", utc=True)
                .dt.tz_convert("Asia/Shanghai")
                .dt.strftime("%Y-%m-%d")
            )
        else:
            keys[name] = frame[column].astype("string")
    return keys


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


def summarise(frame: pd.DataFrame) -> dict[str, Any]:
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
    }
    keys = group_keys(frame)
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
    return summary


def severe_replies(frame: pd.DataFrame, scorer: Scorer | None, limit: int = 15) -> list[dict[str, Any]]:
    """The flagged replies with the highest threatening/privacy_risk probability, with evidence."""
    scored = frame[frame["error"].isna()].copy()
    flagged = scored[(scored["threatening"] == 1) | (scored["privacy_risk"] == 1)]
    flagged = flagged.assign(severity=flagged[[f"p_{label}" for label in RISK_LABELS]].max(axis=1))
    top = flagged.sort_values("severity", ascending=False).head(limit)
    rows = []
    for _, row in top.iterrows():
        text = str(row.get("text", ""))
        labels = [label for label in RISK_LABELS if row[label] == 1]
        evidence = {}
        if scorer is not None and text.strip():
            result = scorer.score(text.strip(), str(row.get("context", "") or ""), explain=True)
            evidence = {label: result.evidence.get(label, []) for label in labels}
        rows.append(
            {
                "id": row.get("id", ""),
                "agent": row.get("agent_id", row.get("agent", "")),
                "team": row.get("team", ""),
                "time": row.get("timestamp", ""),
                "labels": labels,
                "severity": round(float(row["severity"]), 3),
                "context": str(row.get("context", "") or ""),
                "html": highlight(text.strip(), evidence),
            }
        )
    return rows


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
    return pd.DataFrame(rows)


def build_report(scored_file: Path, output: Path, summary_file: Path | None, model: str) -> list[Path]:
    frame = load_scored(scored_file)
    location = resolve_model_source(model)
    info = ModelInfo.read(location) if isinstance(location, Path) else ModelInfo(name=str(model))
    scorer = Scorer.load(location) if "text" in frame else None
    summary = summarise(frame)
    summary["model"] = {"name": info.name, "version": info.version, "test_metrics": info.test_metrics}
    summary["source"] = str(scored_file)
    environment = Environment(loader=PackageLoader("ml", "templates"), autoescape=select_autoescape())
    page = environment.get_template("report.html.j2").render(
        summary=summary,
        labels=LABELS,
        severe=severe_replies(frame, scorer),
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
