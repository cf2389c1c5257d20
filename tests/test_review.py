"""Review loop: export Label Studio tasks from a scored file, import a Label Studio export back as
validated records (agreement, disagreement, skipped and unannotated tasks), split keeps them in train."""

import json

import pandas as pd
from typer.testing import CliRunner

from ml.cli import app
from ml.data.records import load_records
from ml.data.review import labelling_config, select_rows
from ml.data.split import split_records
from ml.serving.batch import ScoreJob

ROWS = [
    {"id": f"r{i}", "agent_id": f"A{i % 3}", "text": text, "context": "", "channel": "call"}
    for i, text in enumerate(
        [
            "您好，您本期应还1,280元。",
            "再不还钱就去你单位闹",
            "理解您的难处，我帮您申请分期。",
            "请稍等",
            "你老婆电话给我",
        ]
        * 4
    )
]


def annotation(reviewer, labels, scenario="collection", channel="call", cancelled=False):
    result = [
        {"from_name": "labels", "to_name": "text", "type": "choices", "value": {"choices": labels}},
        {"from_name": "scenario", "to_name": "text", "type": "choices", "value": {"choices": [scenario]}},
        {"from_name": "channel", "to_name": "text", "type": "choices", "value": {"choices": [channel]}},
    ]
    return {
        "id": reviewer * 10,
        "completed_by": {"id": reviewer, "email": f"qa{reviewer}@lender.cn"},
        "result": [] if cancelled else result,
        "was_cancelled": cancelled,
        "created_at": "2026-11-28T09:00:00Z",
        "updated_at": "2026-11-28T09:05:00Z",
    }


def test_export_then_import_round_trip(tiny_scorer, tiny_trained_model, tmp_path):
    source, scored, tasks_file = tmp_path / "in.csv", tmp_path / "scored.csv", tmp_path / "tasks.json"
    pd.DataFrame(ROWS).to_csv(source, index=False)
    ScoreJob(tiny_scorer, str(source), str(scored)).run(show_progress=False)
    run = CliRunner().invoke(
        app,
        [
            "review",
            "export",
            str(scored),
            "-o",
            str(tasks_file),
            "--n",
            "6",
            "--per-agent",
            "2",
            "--model",
            str(tiny_trained_model),
        ],
    )
    assert run.exit_code == 0, run.output
    tasks = json.loads(tasks_file.read_text(encoding="utf-8"))
    assert len(tasks) == 6 and max(pd.Series([t["data"]["agent_id"] for t in tasks]).value_counts()) <= 2
    assert tasks[0]["predictions"][0]["result"][0]["from_name"] == "labels"
    assert '<Choices name="labels" toName="text" choice="multiple"' in tasks_file.with_suffix(".xml").read_text()

    # What Label Studio exports after review: ids, annotations (one skipped, one conflict), no annotation.
    exported = []
    for number, task in enumerate(tasks[:5], start=1):
        task = {"id": number, "data": task["data"], "annotations": [], "predictions": task["predictions"]}
        if number == 1:
            task["annotations"] = [annotation(1, ["polite", "clear"])]
        elif number == 2:
            task["annotations"] = [annotation(1, ["threatening"]), annotation(2, ["threatening"])]
        elif number == 3:
            task["annotations"] = [annotation(1, ["threatening"]), annotation(2, ["threatening", "privacy_risk"])]
        elif number == 4:
            task["annotations"] = [annotation(1, [], cancelled=True)]
        exported.append(task)
    export_file, output = tmp_path / "export.json", tmp_path / "review-2026-11-28.jsonl"
    export_file.write_text(json.dumps(exported, ensure_ascii=False), encoding="utf-8")
    run = CliRunner().invoke(app, ["review", "import", str(export_file), "-o", str(output)])
    assert run.exit_code == 0, run.output
    counts = json.loads(run.stdout)
    assert (
        counts["records"] == 2 and counts["conflicts"] == 1 and counts["skipped"] == 1 and counts["not_annotated"] == 1
    )
    loaded = load_records([output])
    assert loaded.errors == [] and len(loaded.records) == 2
    agreed = loaded.records[1]
    assert agreed.source == "reviewed" and agreed.labels.threatening == 1 and agreed.labels.privacy_risk == 0
    assert "qa1@lender.cn at 2026-11-28T09:05:00Z" in agreed.notes and "qa2@lender.cn" in agreed.notes
    conflicts = json.loads(output.with_suffix(".conflicts.json").read_text(encoding="utf-8"))
    assert len(conflicts) == 1 and len(conflicts[0]["decisions"]) == 2


def test_uncertain_selection_takes_replies_nearest_a_threshold():
    frame = pd.DataFrame(
        {
            "id": ["far", "near", "mid"],
            "error": [None, None, None],
            **{
                f"p_{label}": [0.99, 0.51, 0.7]
                for label in ("polite", "clear", "empathetic", "threatening", "privacy_risk")
            },
        }
    )
    chosen = select_rows(
        frame, dict.fromkeys(["polite", "clear", "empathetic", "threatening", "privacy_risk"], 0.5), "uncertain", 2, 10
    )
    assert list(chosen["id"]) == ["near", "mid"]


def test_reviewed_records_stay_out_of_evaluation(tmp_path):
    lines = []
    for i in range(60):
        lines.append(
            {
                "id": f"x-{i:03d}",
                "text": f"您好，第{i}期账单{i * 37}元已出，请按时还款。",
                "context": "",
                "scenario": "service",
                "channel": "chat",
                "labels": {"polite": 1, "clear": 1, "empathetic": 0, "threatening": 0, "privacy_risk": 0},
                "source": "reviewed" if i % 3 == 0 else "written",
            }
        )
    path = tmp_path / "all.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), encoding="utf-8")
    split = split_records(load_records([path]).records)
    assert all(r.source != "reviewed" for name in ("validation", "test") for r in split[name])
    assert sum(r.source == "reviewed" for r in split["train"]) == 20


def test_the_config_names_every_label():
    config = labelling_config()
    assert all(
        f'<Choice value="{label}"' in config
        for label in ("polite", "clear", "empathetic", "threatening", "privacy_risk")
    )
