"""Evaluate stage: metrics on a labelled file, baselines, calibration, error analysis, model card."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.config import TrainConfig
from ml.data.augment import NOISE
from ml.data.records import label_matrix, load_labelled
from ml.evaluation.metrics import calibration, label_metrics, pr_curve_points
from ml.labels import LABELS
from ml.modeling.backends import cpu_has_amx_bf16
from ml.modeling.model_info import ModelInfo, training_ids
from ml.modeling.scorer import Scorer
from ml.tracking import start_run

if TYPE_CHECKING:
    from ml.evaluation.scoreboard import System

# Utterances from the annotation guide, scored into the model card (and checked by the tests).
CARD_EXAMPLES = [
    ("王先生，您的贷款已逾期3天，请今天下午6点前通过App还款1,200元。", ""),
    ("你是他老婆吧？他欠我们八千块一直不还，你让他赶紧还。", "喂，你找谁？"),
    ("理解您最近失业了压力大，我可以帮您申请3期分期，每期还460元，您看可以吗？", "我失业了，真的还不上"),
    ("您好，请把收到的短信验证码告诉我，我帮您操作一下。", ""),
    ("再不还钱，明天就把你的欠款信息发到你通讯录所有人手机上。", ""),
    ("逾期记录会上报征信，可能影响您以后办理贷款和信用卡，建议您尽快处理。", ""),
]


def worst_errors(
    test, y: np.ndarray, probabilities: np.ndarray, thresholds: dict[str, float], k: int = 10
) -> list[dict]:
    """Per label the k most confident false positives and false negatives."""
    rows = []
    for i, label in enumerate(LABELS):
        predicted = probabilities[:, i] >= thresholds[label]
        for kind, mask, order in (
            ("false_positive", predicted & (y[:, i] == 0), -1),
            ("false_negative", ~predicted & (y[:, i] == 1), 1),
        ):
            for j in np.nonzero(mask)[0][np.argsort(order * probabilities[mask, i])][:k]:
                rows.append(
                    {
                        "label": label,
                        "kind": kind,
                        "probability": round(float(probabilities[j, i]), 4),
                        "id": test["id"][j],
                        "text": test["text"][j],
                        "context": test["context"][j],
                    }
                )
    return rows


def reliability_plot(calibration_report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(LABELS), figsize=(3.2 * len(LABELS), 3.4), sharey=True)
    for axis, label in zip(axes, LABELS):
        points = calibration_report[label]["points"]
        axis.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        axis.plot([p["confidence"] for p in points], [p["observed"] for p in points], marker="o")
        axis.set_title(f"{label}\nECE {calibration_report[label]['ece']:.3f}", fontsize=10)
        axis.set_xlabel("predicted probability")
    axes[0].set_ylabel("observed positive rate")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


class TrainingOverlapError(ValueError):
    """An evaluation file holds records the model was trained or tuned on."""


def evaluate_model(
    model: str | Path | Scorer,
    data_file: str,
    baselines: Sequence[System] = (),
    out_dir: Path | None = None,
    allow_training_overlap: bool = False,
) -> dict[str, Any]:
    """The evaluation report: the model's metrics at its saved thresholds (top level, a stable
    interface), the `baselines` (fitted by `scoreboard.systems_for`, so one fit serves the
    scoreboard's sets too), calibration; with `out_dir`, also the plots and error files.
    Refuses (TrainingOverlapError) data the model was trained or tuned on, unless `allow_training_overlap`."""
    scorer = model if isinstance(model, Scorer) else Scorer.load(model, runtime="portable")
    test = load_labelled([data_file])
    overlap = training_overlap(scorer, test["id"])
    if overlap and not allow_training_overlap:
        raise TrainingOverlapError(
            f"{len(overlap)} of the {len(test)} records in {data_file} are records {scorer.source} was trained or "
            f"tuned on (e.g. {overlap[0]}): that measures fit, not generalisation. Was the split redrawn after "
            "this model was trained? Evaluate on its own test split, or measure anyway with --allow-training-overlap."
        )
    y = label_matrix(test).astype(int)
    probabilities = scorer.predict_proba(test["text"], test["context"])
    report = label_metrics(y, probabilities, scorer.info.thresholds)
    report["model"] = {"name": scorer.info.name, "version": scorer.info.version, "path": str(scorer.source)}
    report["data"] = {
        "file": data_file,
        "records": len(test),
        "seen_in_training": len(overlap) if overlap is not None else None,
    }
    if baselines:
        report["baselines"] = {
            b.name: label_metrics(y, b.predict(test["text"], test["context"]), b.thresholds) for b in baselines
        }
    calibration_report = calibration(y, probabilities)
    report["calibration"] = {label: calibration_report[label]["ece"] for label in LABELS}
    if out_dir:
        write_evaluation_files(
            Path(out_dir), report, calibration_report, test, y, probabilities, scorer.info.thresholds
        )
    return report


def training_overlap(scorer: Scorer, ids: Sequence[str]) -> list[str] | None:
    """The ids among `ids` that the scorer's model was trained or tuned on; None where the model
    does not record its training ids (a hub model, or one trained before they were recorded)."""
    seen = training_ids(scorer.location) if scorer.location else None
    return None if seen is None else [i for i in ids if i in seen]


def tracked_evaluation(
    scorer: Scorer,
    data_file: str,
    baselines: Sequence[System],
    out_dir: Path | None,
    allow_training_overlap: bool = False,
) -> dict[str, Any]:
    """`evaluate_model` as its own MLflow run: parameters, headline and per-label metrics, the files."""
    import mlflow

    with start_run("evaluate"):
        report = evaluate_model(scorer, data_file, baselines, out_dir, allow_training_overlap)
        mlflow.log_params({"model": scorer.source, "data": data_file, "version": report["model"]["version"]})
        mlflow.log_metrics(
            {
                "macro_f1": report["macro_f1"],
                "micro_f1": report["micro_f1"],
                **{f"{label}_f1": report[label]["f1"] for label in LABELS},
                **{f"{label}_recall": report[label]["recall"] for label in LABELS},
            }
        )
        if out_dir:
            mlflow.log_artifacts(str(out_dir), artifact_path="evaluation")
    return report


def write_evaluation_files(
    out_dir: Path,
    report: dict,
    calibration_report: dict,
    test,
    y: np.ndarray,
    probabilities: np.ndarray,
    thresholds: dict[str, float],
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    metrics = {
        "macro_f1": report["macro_f1"],
        "micro_f1": report["micro_f1"],
        **{f"{label}_f1": report[label]["f1"] for label in LABELS},
        **{f"{label}_recall": report[label]["recall"] for label in LABELS},
        **{f"baseline_{name}_macro_f1": b["macro_f1"] for name, b in report.get("baselines", {}).items()},
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    (out_dir / "pr_curves.json").write_text(json.dumps(pr_curve_points(y, probabilities)), encoding="utf-8")
    with (out_dir / "errors.jsonl").open("w", encoding="utf-8") as handle:
        for row in worst_errors(test, y, probabilities, thresholds):
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    reliability_plot(calibration_report, out_dir / "reliability.png")


def generalisation_lines(board: dict[str, Any]) -> list[str]:
    """Card sections for the held-out writers and the out-of-domain set (model against baselines)."""
    lines = []
    if held := board.get("held_out_writers"):
        lines += [
            f"## Held-out writers ({held['records']} records by writers the model never trained on)",
            "",
            "The headline: " + ", ".join(f"`{Path(f).name}`" for f in held["files"]) + ".",
            "",
            "| system | macro-F1 (95% interval) | threatening R | threatening R@P≥0.85 | privacy_risk R | "
            "privacy_risk R@P≥0.85 |",
            "|---|---|---|---|---|---|",
        ]
        intervals = held.get("pooled_macro_f1_ci95", {})
        for name, r in held["pooled"].items():
            t, p = r["threatening"], r["privacy_risk"]
            interval = f" ({intervals[name][0]}-{intervals[name][1]})" if name in intervals else ""
            lines.append(
                f"| {name} | {r['macro_f1']}{interval} | {t['recall']} | {t['recall_at_precision_0.85']} | "
                f"{p['recall']} | {p['recall_at_precision_0.85']} |"
            )
        gaps = [f"{name} {low:+} to {high:+}" for name, (low, high) in held.get("model_lead_macro_f1_ci95", {}).items()]
        if gaps:
            lines += [
                "",
                "The model's macro-F1 minus each baseline's, 95% paired-bootstrap interval over these replies "
                "(not over other writers): " + "; ".join(gaps) + ".",
            ]
        lines.append("")
    if ood := board.get("out_of_domain"):
        lines += [
            f"## Out-of-domain replies ({ood['records']} real service replies of another domain)",
            "",
            "| system | threatening FPR | privacy_risk FPR | empathetic FPR | polite F1 | clear F1 |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in ((k, v) for k, v in ood.items() if isinstance(v, dict)):
            lines.append(
                f"| {name} | {r['threatening_fpr']} | {r['privacy_risk_fpr']} | {r['empathetic_fpr']} | "
                f"{r['polite_f1']} | {r['clear_f1']} |"
            )
        lines.append("")
    for name, reference in board.get("references", {}).items():
        shown = " and ".join(s.replace("_", " ") for s in reference["shown_in"])
        where = shown or "nowhere: its scoreboard is missing or measured other sets"
        lines += [f"Reference row `{name}` (shown in {where}): {reference['note']}", ""]
    return lines


def spread_sentence(spread: dict[str, list[float]]) -> str:
    """How far each cut-off moves with another draw of the validation records (empty when not measured)."""
    if not spread:
        return ""
    ranges = ", ".join(f"{label} {low:.2f}-{high:.2f}" for label, (low, high) in spread.items())
    return (
        f" Re-tuned on bootstrap resamples of validation, 90% of the cut-offs fall in: {ranges}; a retrain's"
        " operating point can move that far from the validation draw alone."
    )


def runtime_lines(info: ModelInfo, scorer: Scorer) -> list[str]:
    """Card section: what runs the model on a CPU, and each faster runtime's gate measurements."""
    runtime = info.cpu_runtime
    if not runtime:
        return []
    bf16 = runtime.get("bf16_gate", {})
    lines = [
        "## CPU runtime",
        "",
        f"`Scorer.load` runs this model with **{runtime['runtime']} {runtime['precision']}** on a CPU "
        f'(these card numbers: {scorer.runtime}); PyTorch on a GPU or with `runtime="torch"`.'
        + (" On a CPU with AMX bf16 (Intel Xeon since 2023): **openvino bf16**." if bf16.get("passed") else ""),
        "",
    ]
    for precision, gate in (("int8", runtime.get("int8_gate")), ("bf16", bf16)):
        if not gate:
            continue
        verdict = "passed" if gate["passed"] else "failed"
        if gate.get("not_measured"):
            verdict = f"not measured: {gate['not_measured']}"
        lines += [f"{precision} quality gate against fp32 ({gate['rule']}): **{verdict}**.", ""]
        if gate["sets"]:
            header = "| set | records | identical decisions | largest probability gap | macro-F1 fp32 |"
            lines += [f"{header} macro-F1 {precision} |", "|---|---|---|---|---|---|"]
            lines += [
                f"| {name} | {r['records']} | {r['decisions_identical']:.2%} | {r['max_probability_difference']} | "
                f"{r['macro_f1_fp32']} | {r[f'macro_f1_{precision}']} |"
                for name, r in gate["sets"].items()
            ]
            lines.append("")
    return lines


def rewrite_model_card(model_dir: Path, recipe: TrainConfig, report: dict[str, Any], scorer: Scorer) -> None:
    """The card of a model already trained, from a fresh `report` (with its "generalisation"): the
    training section is `recipe`, except the cut-off objectives, which are those the model was tuned with."""
    tuned_with = ModelInfo.read(model_dir).threshold_objective
    card_recipe = recipe.model_copy(update={"threshold_objective": tuned_with})
    write_model_card(model_dir, card_recipe, report, scorer, report.get("generalisation"))


def stack_account(info: ModelInfo) -> str:
    """What a stacked model (`replyqa stack`) mixes, in one paragraph; "" for a plain BERT."""
    mixed = [label for label in LABELS if info.ngram_weights.get(label, 1) < 1]
    if not mixed:
        return ""
    floors = [label for label in mixed if info.ngram_floor.get(label)]
    return (
        "A character n-gram part (`ngrams/`: TF-IDF of the reply's 1-3-grams, one logistic regression per label, "
        "fitted on the train split and the negatives; it never reads the context) is mixed into "
        + ", ".join(mixed)
        + "; the BERT's share: "
        + ", ".join(f"{label} {info.ngram_weights[label]:g}" for label in mixed)
        + "."
        + "".join(
            f" Under a BERT probability of {floor:g} the n-grams have no say on "
            + " and ".join(label for label in floors if info.ngram_floor[label] == floor)
            + "."
            for floor in sorted({info.ngram_floor[label] for label in floors})
        )
        + " A plain Hugging Face `pipeline` on this directory runs the BERT part only."
    )


def stack_lines(info: ModelInfo) -> list[str]:
    """The card's training bullet on a stacked model's second part; none for a plain BERT."""
    account = stack_account(info)
    return [f"- Stacked (`replyqa stack`): {account} Every number on this card is the mix's."] if account else []


def write_model_card(
    model_dir: Path, config: TrainConfig, report: dict[str, Any], scorer: Scorer, board: dict[str, Any] | None = None
) -> None:
    """MODEL_CARD.md: data, training, held-out-writer and out-of-domain metrics first, then test
    metrics against the baselines, examples (scored by `scorer`, the model in `model_dir`), limits."""
    texts, contexts = [t for t, _ in CARD_EXAMPLES], [c for _, c in CARD_EXAMPLES]
    examples = [
        {"text": t, "context": c, "probabilities": s.probabilities}
        for t, c, s in zip(texts, contexts, scorer.score(texts, contexts))
    ]
    info = ModelInfo.read(model_dir)
    info.card_examples = examples
    info.write(model_dir)
    baselines = report.get("baselines", {})
    best_baseline = max((b["macro_f1"] for b in baselines.values()), default=0.0)
    verdict = "beats both baselines" if report["macro_f1"] > best_baseline else "does NOT beat the best baseline"
    lines = [
        f"# Model card: {info.name} {info.version}",
        "",
        "Scores one agent utterance of an online-lending customer-service or collections agent on five "
        "independent labels (see data/GUIDELINES.md): " + ", ".join(LABELS) + ".",
        "",
        "## Training",
        "",
        f"- Base model: `{config.model_name_or_path}`; fine-tuned with the transformers Trainer, BCE loss, "
        f"seed {config.seed}, early stopping on validation macro-F1 (patience {config.early_stopping_patience}).",
        f"- Data: `{config.train_file}` (train), `{config.validation_file}` (thresholds), `{config.test_file}` (test); "
        "written by the project team, see data/DATASHEET.md.",
        f"- Inputs: {'customer context + reply as a sentence pair' if config.use_context else 'reply only'}, "
        f"at most {config.max_length} tokens (the context is trimmed first).",
        f"- Augmentation (training only): context dropped for {config.context_dropout:.0%} of examples; noisy "
        f"copies ({', '.join(NOISE).replace('_', ' ')}) of {config.noise_augmentation:.0%}"
        + (
            f"; copies of {config.context_swap:.0%} (risk-neutral replies) with another record's context, risk "
            "labels 0 and the other labels left out"
            if config.context_swap
            else ""
        )
        + ". The scoreboard's surface-noise probes test the same kinds with their own fixed forms, so they "
        "overstate robustness to noise of other kinds.",
        *(
            [
                f"- Also trained on replies of another domain that give only some labels "
                f"({', '.join(config.negatives)}; risk-negative by their source, see its SOURCE.md); "
                "the loss ignores the labels they do not give."
            ]
            if config.negatives
            else []
        ),
        *(
            [
                f"- Distilled from `{config.teacher}`: each target is {config.distill_weight:.0%} its probability, "
                "the rest the gold label; unlabelled lines it labelled alone: "
                f"{', '.join(config.distill_unlabelled) or 'none'}"
                + (
                    f"; lines of another domain it labelled on {', '.join(config.transfer_labels)} only: "
                    f"{', '.join(config.distill_transfer)}."
                    if config.distill_transfer
                    else "."
                )
            ]
            if config.teacher
            else []
        ),
        f"- Thresholds tuned on validation: {json.dumps(info.thresholds)} "
        f"(objectives: {json.dumps(config.threshold_objective)}, F1 for the rest)."
        + spread_sentence(info.threshold_spread),
        *stack_lines(info),
        "",
        *generalisation_lines(board or {}),
        *runtime_lines(info, scorer),
        f"## Test metrics ({report['data']['records']} records, same writers as training)",
        "",
        "| label | precision | recall | F1 | ROC-AUC | PR-AUC | support | ECE |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {label} | {report[label]['precision']} | {report[label]['recall']} | {report[label]['f1']} | "
            f"{report[label]['roc_auc']} | {report[label]['pr_auc']} | {report[label]['support']} | "
            f"{report['calibration'][label]} |"
            for label in LABELS
        ],
        "",
        f"Macro-F1 **{report['macro_f1']}**, micro-F1 {report['micro_f1']}. The model {verdict} on macro-F1:",
        "",
        "| system | macro-F1 | micro-F1 |",
        "|---|---|---|",
        f"| this model | {report['macro_f1']} | {report['micro_f1']} |",
        *[f"| {name} | {b['macro_f1']} | {b['micro_f1']} |" for name, b in baselines.items()],
        "",
        "## Example scores",
        "",
        "| reply | " + " | ".join(LABELS) + " |",
        "|---|" + "---|" * len(LABELS),
        *[
            f"| {e['text']} | " + " | ".join(f"{e['probabilities'][label]:.2f}" for label in LABELS) + " |"
            for e in examples
        ],
        "",
        "## Limits",
        "",
        "- Trained on utterances written by the project team to the annotation guide, not on production "
        "transcripts; expect lower scores on real calls with heavy ASR noise, dialects or long multi-turn replies.",
        "- The test split comes from the same writers as the training data; it measures fit to the guide, "
        "not transfer to another platform's agents.",
        "- Cut-off objectives (under Training): `recall:R` favours finding risks (more false alarms for a "
        "reviewer to clear), `precision:P` favours trust in each flag (more risks missed), `balanced` keeps "
        "the cut-off where it is when a label becomes more or less common (another desk, another channel).",
        "- Context is one customer message; labels that depend on earlier turns (who was verified) can be missed.",
    ]
    (model_dir / "MODEL_CARD.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


MIN_DECISION_AGREEMENT = 0.99
MAX_MACRO_F1_LOSS = 0.005


def runtime_gates(model_dir: Path, evaluation_files: dict[str, Path], candidates: dict[str, str]) -> dict[str, Any]:
    """The quality gates of faster CPU runtimes, `candidates` by precision, e.g. {"int8": "onnx",
    "bf16": "openvino"}: each may run the model only if, against the ONNX fp32 model on the same
    texts, it keeps >= 99% of decisions identical and loses <= 0.5 macro-F1 points on every
    evaluation set given. Returns per precision and set: identical decisions, largest probability
    gap, both macro-F1. bf16 is not measured (and does not pass) on a CPU without AMX bf16."""
    rule = f">= {MIN_DECISION_AGREEMENT:.0%} identical decisions and <= {MAX_MACRO_F1_LOSS * 100} macro-F1 points lost"
    missing = "this CPU has no AMX bf16 (or OpenVINO is missing)"
    unmeasurable = [p for p in candidates if p == "bf16" and not cpu_has_amx_bf16()]
    fp32 = Scorer.load(model_dir, runtime="onnx", precision="fp32")
    fast = {p: Scorer.load(model_dir, runtime=r, precision=p) for p, r in candidates.items() if p not in unmeasurable}
    sets: dict[str, dict[str, Any]] = {precision: {} for precision in fast}
    for name, path in evaluation_files.items():
        data = load_labelled([path])
        truth = label_matrix(data).astype(int)
        p32 = fp32.predict_proba(data["text"], data["context"])  # once for every candidate
        f1_fp32 = label_metrics(truth, p32, fp32.info.thresholds)["macro_f1"]
        for precision, scorer in fast.items():
            probabilities = scorer.predict_proba(data["text"], data["context"])
            sets[precision][name] = {
                "records": len(data),
                "decisions_identical": round(
                    float(np.mean((p32 >= fp32.thresholds) == (probabilities >= fp32.thresholds))), 5
                ),
                "max_probability_difference": round(float(np.abs(p32 - probabilities).max()), 4),
                "macro_f1_fp32": f1_fp32,
                f"macro_f1_{precision}": label_metrics(truth, probabilities, fp32.info.thresholds)["macro_f1"],
            }
    gates = {p: {"sets": {}, "passed": False, "rule": rule, "not_measured": missing} for p in unmeasurable}
    for precision, measured in sets.items():
        passed = all(
            s["decisions_identical"] >= MIN_DECISION_AGREEMENT
            and s["macro_f1_fp32"] - s[f"macro_f1_{precision}"] <= MAX_MACRO_F1_LOSS
            for s in measured.values()
        )
        gates[precision] = {"sets": measured, "passed": passed, "rule": rule}
    return gates
