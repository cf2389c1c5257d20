"""Conversation scorecards: what a QA lead reads instead of loose replies.

For a scored archive with a conversation id, each conversation gets:
- its auto-fail items: every agent turn decided threatening or privacy_risk (rubric `auto_fail`),
  named with its turn;
- the shares of polite and clear replies;
- whether empathy was needed (a customer message, the reply's context, with a hardship term) and
  shown (an empathetic reply at or after the first such turn);
- a 0-100 score: 0 with any auto-fail item, else the rubric's weighted mean of the polite share, the
  clear share and (only where empathy was needed) empathy shown.
Agents and teams get conversation-level figures (conversations, auto-fail rate, mean score) and the
change of their mean score from the previous week to the latest week in the file.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ml.config import ConversationRubric


def conversation_column(frame: pd.DataFrame, rubric: ConversationRubric) -> str | None:
    return next((c for c in rubric.id_columns if c in frame), None)


def _turn_order(frame: pd.DataFrame, rubric: ConversationRubric) -> pd.Series:
    column = next((c for c in rubric.turn_columns if c in frame), None)
    if column is None:
        return pd.Series(range(len(frame)), index=frame.index, dtype="float")
    return pd.to_numeric(frame[column], errors="coerce")


def scorecard(turns: pd.DataFrame, rubric: ConversationRubric) -> dict[str, Any]:
    """One conversation's scorecard from its scored agent turns, in order (columns: turn, labels, context)."""
    auto_fail = [
        {"turn": _turn_label(row["turn"]), "label": label}
        for _, row in turns.iterrows()
        for label in rubric.auto_fail
        if row[label] == 1
    ]
    contexts = turns["context"].fillna("").astype(str) if "context" in turns else pd.Series("", index=turns.index)
    hardship = contexts.map(lambda text: any(term in text for term in rubric.hardship_terms)).to_numpy()
    first_hardship = int(hardship.argmax()) if hardship.any() else None
    parts = {"polite": float(turns["polite"].mean()), "clear": float(turns["clear"].mean())}
    empathy_shown = None
    if first_hardship is not None:
        empathy_shown = bool((turns["empathetic"].iloc[first_hardship:] == 1).any())
        parts["empathy"] = float(empathy_shown)
    weights = {k: rubric.weights.get(k, 0.0) for k in parts}
    total = sum(weights.values())
    score = 0.0 if auto_fail else (100 * sum(weights[k] * parts[k] for k in parts) / total if total else 0.0)
    return {
        "replies": int(len(turns)),
        "auto_fail": auto_fail,
        "polite_share": round(parts["polite"], 4),
        "clear_share": round(parts["clear"], 4),
        "hardship_turn": _turn_label(turns["turn"].iloc[first_hardship]) if first_hardship is not None else None,
        "empathy_shown": empathy_shown,
        "score": round(score, 1),
    }


def _turn_label(value) -> int | str:
    return int(value) if pd.notna(value) and float(value).is_integer() else str(value)


def _first(values: pd.Series) -> str:
    present = values.dropna().astype(str)
    return present.mode().iloc[0] if len(present) else ""


def conversation_scorecards(
    frame: pd.DataFrame, rubric: ConversationRubric, keys: dict[str, pd.Series]
) -> dict[str, Any] | None:
    """Scorecards per conversation and conversation-level figures per agent and team; None when the
    file has no conversation id. `keys` are the report's agent/team/day columns."""
    column = conversation_column(frame, rubric)
    if column is None:
        return None
    scored = frame[frame["error"].isna() & frame[column].notna()].copy()
    scored["turn"] = _turn_order(frame, rubric).loc[scored.index]
    for name in ("agent", "team", "day"):
        scored[f"_{name}"] = keys[name].loc[scored.index] if name in keys else pd.NA
    cards = []
    for conversation, turns in scored.groupby(scored[column].astype(str), sort=False):
        turns = turns.sort_values("turn", kind="stable")
        days = turns["_day"].dropna()
        cards.append(
            {
                "conversation": conversation,
                "agent": _first(turns["_agent"]),
                "team": _first(turns["_team"]),
                "day": str(days.min()) if len(days) else "",
                **scorecard(turns, rubric),
            }
        )
    return {
        "id_column": column,
        "rubric": rubric.model_dump(),
        "conversations": len(cards),
        "auto_fail_rate": round(sum(bool(c["auto_fail"]) for c in cards) / len(cards), 4) if cards else None,
        "mean_score": round(sum(c["score"] for c in cards) / len(cards), 1) if cards else None,
        "by_agent": group_figures(cards, "agent"),
        "by_team": group_figures(cards, "team"),
        "cards": sorted(cards, key=lambda c: (c["score"], c["conversation"])),
    }


def group_figures(cards: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Per agent (or team): conversations, auto-fail rate, mean score, and the mean score's change
    from the previous ISO week to the latest week in the file (None without both weeks)."""
    if not cards:
        return []
    table = pd.DataFrame(cards)
    table = table[table[key] != ""]
    table["week"] = pd.to_datetime(table["day"], errors="coerce").dt.strftime("%G-W%V")
    weeks = sorted(w for w in table["week"].dropna().unique())
    latest, previous = (weeks[-1], weeks[-2]) if len(weeks) >= 2 else (None, None)
    rows = []
    for value, group in table.groupby(key):
        row = {
            key: value,
            "conversations": int(len(group)),
            "auto_fail_rate": round(float((group["auto_fail"].map(len) > 0).mean()), 4),
            "mean_score": round(float(group["score"].mean()), 1),
            "week_over_week": None,
        }
        if latest:
            this, last = group[group["week"] == latest], group[group["week"] == previous]
            if len(this) and len(last):
                row["week_over_week"] = round(float(this["score"].mean() - last["score"].mean()), 1)
        rows.append(row)
    return sorted(rows, key=lambda r: (-r["auto_fail_rate"], r["mean_score"]))
