"""Review stage: QA decisions back into training data, through Label Studio.

`export_tasks` picks scored replies for review (the most uncertain, the flagged, or a random
sample), writes them as Label Studio tasks with the model's decisions as pre-annotations, and
writes the labelling config beside them. `import_annotations` reads a Label Studio JSON export and
turns every task the reviewers agree on into a validated record (`source: reviewed`, reviewer
and time in `notes`); tasks whose reviewers disagree are listed as conflicts, never resolved
silently, and skipped or unannotated tasks are counted.

Uncertainty: for each reply, the smallest distance between a label's probability and its
threshold, over the five labels; most uncertain first, at most `per_agent` replies per agent.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ml.data.records import Record
from ml.labels import LABELS, SCENARIOS
from ml.modeling.model_info import ModelInfo, resolve_model_source
from ml.reporting.report import load_scored

SELECTIONS = ("uncertain", "flagged", "random")
LABEL_HINTS = {
    "polite": "courteous and respectful, nothing rude",
    "clear": "concrete, usable information or a definite next step",
    "empathetic": "recognises this customer's situation and shows care (formulas alone are not)",
    "threatening": "intimidation, exposure threats, false legal threats, insults",
    "privacy_risk": "disclosure to third parties, full identifiers, secrets, unneeded data",
}
AGENT_COLUMNS = ("agent_id", "agent")


def labelling_config() -> str:
    """The Label Studio labelling config (XML) for the five labels, scenario and channel."""
    choices = "\n".join(f'    <Choice value="{label}" hint="{hint}"/>' for label, hint in LABEL_HINTS.items())
    scenarios = "\n".join(f'    <Choice value="{s}"/>' for s in SCENARIOS)
    return f"""<View>
  <Header value="Customer said"/>
  <Text name="context" value="$context"/>
  <Header value="Agent replied (label this)"/>
  <Text name="text" value="$text"/>
  <Choices name="labels" toName="text" choice="multiple" showInLine="false">
{choices}
  </Choices>
  <Choices name="scenario" toName="text" choice="single" required="true">
{scenarios}
  </Choices>
  <Choices name="channel" toName="text" choice="single" required="true">
    <Choice value="call"/>
    <Choice value="chat"/>
  </Choices>
</View>
"""


def select_rows(
    frame: pd.DataFrame, thresholds: dict[str, float], how: str, n: int, per_agent: int, seed: int = 13
) -> pd.DataFrame:
    """The rows to review, in review order."""
    if how not in SELECTIONS:
        raise ValueError(f"--select must be one of {', '.join(SELECTIONS)}")
    scored = frame[frame["error"].isna()].copy()
    if how == "random":
        return scored.sample(n=min(n, len(scored)), random_state=seed)
    if how == "flagged":
        scored = scored[(scored["threatening"] == 1) | (scored["privacy_risk"] == 1)]
        scored = scored.assign(order=-scored[["p_threatening", "p_privacy_risk"]].max(axis=1))
    else:
        distances = pd.concat([(scored[f"p_{label}"] - thresholds[label]).abs() for label in LABELS], axis=1)
        scored = scored.assign(order=distances.min(axis=1))
    scored = scored.sort_values("order", kind="stable")
    agent = next((c for c in AGENT_COLUMNS if c in scored), None)
    if agent:
        scored = scored[scored.groupby(agent, dropna=False).cumcount() < per_agent]
    return scored.head(n).drop(columns="order")


def to_task(row: pd.Series, version: str) -> dict[str, Any]:
    data = {
        "id": str(row.get("id", "")),
        "text": str(row["text"]),
        "context": str(row.get("context", "") or ""),
        **{key: str(row[key]) for key in ("agent_id", "agent", "team", "timestamp", "channel") if key in row},
    }
    positives = [label for label in LABELS if row[label] == 1]
    result = [{"from_name": "labels", "to_name": "text", "type": "choices", "value": {"choices": positives}}]
    if row.get("channel") in ("call", "chat"):
        result.append(
            {"from_name": "channel", "to_name": "text", "type": "choices", "value": {"choices": [row["channel"]]}}
        )
    return {"data": data, "predictions": [{"model_version": version, "result": result}]}


def export_tasks(
    scored_file: Path, output: Path, model: str, how: str = "uncertain", n: int = 300, per_agent: int = 20
) -> dict[str, Any]:
    """Write `output` (Label Studio tasks) and `output` with `.xml` (the labelling config)."""
    location = resolve_model_source(model)
    info = ModelInfo.read(location) if isinstance(location, Path) else ModelInfo(name=str(model))
    rows = select_rows(load_scored(scored_file), info.thresholds, how, n, per_agent)
    tasks = [to_task(row, f"{info.name}-{info.version}") for _, row in rows.iterrows()]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    output.with_suffix(".xml").write_text(labelling_config(), encoding="utf-8")
    return {"tasks": len(tasks), "selection": how, "config": str(output.with_suffix(".xml"))}


# ---------------------------------------------------------------- import


@dataclass
class ImportResult:
    records: list[Record] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)


def _choices(result: list[dict[str, Any]], name: str) -> list[str]:
    return sorted(
        choice
        for item in result
        if item.get("from_name") == name and item.get("type") == "choices"
        for choice in item.get("value", {}).get("choices", [])
    )


def _decision(annotation: dict[str, Any]) -> dict[str, Any]:
    result = annotation.get("result", [])
    return {
        "labels": {label: int(label in _choices(result, "labels")) for label in LABELS},
        "scenario": next(iter(_choices(result, "scenario")), None),
        "channel": next(iter(_choices(result, "channel")), None),
    }


def _reviewer(annotation: dict[str, Any]) -> str:
    who = annotation.get("completed_by")
    return str(who.get("email") or who.get("id")) if isinstance(who, dict) else str(who)


def import_annotations(tasks: list[dict[str, Any]]) -> ImportResult:
    """Records from the tasks whose submitted annotations agree; conflicts and skips counted."""
    result = ImportResult()
    for task in tasks:
        submitted = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        if not submitted:
            result.counts["skipped" if task.get("annotations") else "not_annotated"] += 1
            continue
        decisions = [_decision(a) for a in submitted]
        data = task.get("data", {})
        if any(d != decisions[0] for d in decisions[1:]):
            result.counts["conflicts"] += 1
            result.conflicts.append(
                {
                    "task": task.get("id"),
                    "id": data.get("id"),
                    "text": data.get("text"),
                    "decisions": [{"reviewer": _reviewer(a), **d} for a, d in zip(submitted, decisions)],
                }
            )
            continue
        decision = decisions[0]
        reviewers = ", ".join(f"{_reviewer(a)} at {a.get('updated_at') or a.get('created_at')}" for a in submitted)
        try:
            record = Record(
                id=f"rv-{data.get('id') or task.get('id')}",
                text=data.get("text", ""),
                context=data.get("context", "") or "",
                scenario=decision["scenario"] or "other",
                channel=decision["channel"] or data.get("channel") or "chat",
                labels=decision["labels"],
                source="reviewed",
                notes=f"reviewed by {reviewers}"
                + ("" if decision["scenario"] else "; scenario not given, set to other"),
            )
        except ValueError as error:
            result.counts["invalid"] += 1
            result.conflicts.append({"task": task.get("id"), "id": data.get("id"), "invalid": str(error)})
            continue
        result.records.append(record)
        result.counts["records"] += 1
    return result


def write_import(result: ImportResult, output: Path) -> dict[str, Any]:
    """The records as JSONL at `output`; conflicts, if any, beside it (`.conflicts.json`)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as handle:
        for record in result.records:
            handle.write(json.dumps(record.model_dump(), ensure_ascii=False) + "\n")
    conflicts = output.with_suffix(".conflicts.json")
    if result.conflicts:
        conflicts.write_text(json.dumps(result.conflicts, ensure_ascii=False, indent=1), encoding="utf-8")
    return {**result.counts, "output": str(output), "conflicts_file": str(conflicts) if result.conflicts else None}
