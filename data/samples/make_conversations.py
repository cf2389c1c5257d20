"""Build data/samples/conversations.csv from the hand-written conversations in
data/samples/conversations/*.jsonl (one conversation a line: channel, scenario, turns of
{"speaker": "customer"|"agent", "text"}).

Only agent turns become rows (the scorer judges agents); each row's `context` is the customer's
message(s) since the agent's previous turn. Conversation ids, agents, teams and timestamps (two weeks,
2026-11-16 to 2026-11-29, Asia/Shanghai) are assigned here with a fixed seed; the texts are as written.

    python data/samples/make_conversations.py
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
TEAMS = {  # source file -> (team, agents)
    "collection_calls": ("催收一组", ["C101", "C102", "C103", "C104"]),
    "collection_chat": ("催收二组", ["C201", "C202", "C203"]),
    "service_chat": ("客服中心", ["S301", "S302", "S303"]),
    "complaints": ("投诉处理组", ["P401", "P402"]),
}
START = datetime(2026, 11, 16, tzinfo=timezone(timedelta(hours=8)))


def rows_for(conversation: dict, number: int, team: str, agent: str, started: datetime) -> list[dict]:
    rows, waiting, clock, turn = [], [], started, 0
    for item in conversation["turns"]:
        clock += timedelta(seconds=random.randint(15, 90))
        turn += 1
        if item["speaker"] == "customer":
            waiting.append(item["text"])
            continue
        rows.append(
            {
                "id": f"cv-{number:04d}-{turn:02d}",
                "conversation_id": f"cv-{number:04d}",
                "turn": turn,
                "agent_id": agent,
                "team": team,
                "timestamp": clock.isoformat(timespec="seconds"),
                "channel": conversation["channel"],
                "scenario": conversation["scenario"],
                "context": " ".join(waiting),
                "text": item["text"],
            }
        )
        waiting = []
    return rows


def main() -> None:
    random.seed(20261116)
    conversations = []
    for source, (team, agents) in TEAMS.items():
        for line in (HERE / "conversations" / f"{source}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                conversations.append((json.loads(line), team, agents))
    random.shuffle(conversations)
    rows = []
    for number, (conversation, team, agents) in enumerate(conversations, start=1):
        offset = timedelta(days=random.randrange(14), hours=random.randint(9, 20), minutes=random.randrange(60))
        started = START + offset
        rows += rows_for(conversation, number, team, random.choice(agents), started)
    frame = pd.DataFrame(rows).sort_values(["timestamp", "conversation_id", "turn"], kind="stable")
    frame.to_csv(HERE / "conversations.csv", index=False)
    print(f"{frame['conversation_id'].nunique()} conversations, {len(frame)} agent turns")


if __name__ == "__main__":
    main()
