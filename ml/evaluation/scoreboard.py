"""The generalisation scoreboard: how the model and both baselines do on data its writers did not
produce, and how stable its decisions are, not how well it fits its own test split.

1. held-out writers: labelled files by writers and briefs the model never trained on (per file and
   pooled); and, for the baselines, leave-one-slice-out cross-validation over the training slices;
2. out-of-domain false alarms: real service replies from other domains (`data/ood/`);
3. invariance: decisions that change when the context is swapped or removed, under surface noise,
   or when a service greeting or sign-off is wrapped around a threat;
4. hard-case probes: small hand-written files per known failure class (`data/probes/`).

Nothing here trains on or tunes to these sets: the systems come in already fitted.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset

from ml.config import ReferenceRow, ScoreboardConfig, TrainConfig
from ml.data.augment import wrap_in_courtesy
from ml.data.records import expand_paths, label_matrix, load_labelled, normalise_text
from ml.data.text import to_traditional
from ml.evaluation.baselines import fit_baselines
from ml.evaluation.metrics import label_metrics, macro_f1_intervals, recall_at_precision
from ml.labels import LABELS
from ml.modeling.scorer import Scorer

RISK_LABELS = ("threatening", "privacy_risk")


@dataclass
class System:
    """Something that scores replies: the model or a baseline, with its decision thresholds."""

    name: str
    predict: Callable[[Sequence[str], Sequence[str]], np.ndarray]  # (texts, contexts) -> (n, 5)
    thresholds: dict[str, float]
    reads_context: bool

    def decide(self, texts: Sequence[str], contexts: Sequence[str]) -> np.ndarray:
        return self.cut(self.predict(list(texts), list(contexts)))

    def cut(self, probabilities: np.ndarray) -> np.ndarray:
        return probabilities >= np.array([self.thresholds[label] for label in LABELS])


def model_system(scorer: Scorer) -> System:
    return System("model", scorer.predict_proba, scorer.info.thresholds, scorer.info.use_context)


def baseline_systems(train_file: str, validation_file: str, objectives: dict[str, str]) -> list[System]:
    """Each baseline fitted on the model's train split, thresholds tuned on its validation split."""
    fitted = fit_baselines(load_labelled([train_file]), load_labelled([validation_file]), objectives)
    return [System(b.name, lambda t, c, b=b: b.predict_proba(t), thresholds, False) for b, thresholds in fitted]


# ---------------------------------------------------------------- 1. held-out writers


def set_metrics(y: np.ndarray, probabilities: np.ndarray, thresholds: dict[str, float]) -> dict[str, Any]:
    """label_metrics plus, for the risk labels, the best recall reachable at precision >= 0.85."""
    report = label_metrics(y, probabilities, thresholds)
    for label in RISK_LABELS:
        i = LABELS.index(label)
        report[label]["recall_at_precision_0.85"] = recall_at_precision(y[:, i], probabilities[:, i], 0.85)
    return report


def held_out_writers(
    systems: list[System], sets: dict[Path, Dataset], exclude: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Per file and pooled; each system scores each file once. Records whose ids are in `exclude`
    (texts the training split also holds, see `shared_with_training`) are left out and listed."""
    files = list(sets)
    kept = [d.select([i for i, record_id in enumerate(d["id"]) if record_id not in exclude]) for d in sets.values()]
    truths = [label_matrix(d).astype(int) for d in kept]
    result: dict[str, Any] = {"files": [str(f) for f in files], "records": sum(len(d) for d in kept)}
    result["excluded_shared_with_training"] = sorted(exclude)
    result["pooled"], result["per_file"] = {}, {}
    pooled_truth, pooled_decisions = np.vstack(truths), {}
    for system in systems:
        predicted = [system.predict(d["text"], d["context"]) for d in kept]
        pooled = np.vstack(predicted)
        result["pooled"][system.name] = set_metrics(pooled_truth, pooled, system.thresholds)
        result["per_file"][system.name] = {
            f.stem: label_metrics(y, p, system.thresholds)["macro_f1"] for f, y, p in zip(files, truths, predicted)
        }
        pooled_decisions[system.name] = system.cut(pooled).astype(int)
    result["pooled_macro_f1_ci95"], result["model_lead_macro_f1_ci95"] = macro_f1_intervals(
        pooled_truth, pooled_decisions
    )
    return result


def slice_folds(files: list[Path]) -> list[tuple[list[Path], Path]]:
    """Leave-one-slice-out: each file (one writer's slice) is held out once, trained on the rest."""
    return [([f for f in files if f != held], held) for held in files]


MAX_SHARED_SHORT_CHARS = 6  # a reply this short ("本人吗？", "收到") can be written by two writers independently
MAX_SHARED_SHARE = 0.04  # an archive-like file holds about 3% one-word replies (好的, 嗯嗯, 在吗)


def shared_with_training(training_file: str, sets: dict[Path, Dataset]) -> frozenset[str]:
    """Ids of held-out records whose normalised text the training split also holds. A few short
    formulaic replies are a coincidence: they are returned, to be left out of the measurement. Any
    longer shared text, or more than 4% of a file shared, is a leak: ValueError (it would measure fit)."""
    train = load_labelled([training_file])
    seen_ids, seen_texts = set(train["id"]), {normalise_text(t) for t in train["text"]}
    excluded: set[str] = set()
    for path, held in sets.items():
        normalised = [(i, normalise_text(t)) for i, t in zip(held["id"], held["text"])]
        shared = [(i, text) for i, text in normalised if i in seen_ids or text in seen_texts]
        leaks = [i for i, text in shared if i in seen_ids or len(text) > MAX_SHARED_SHORT_CHARS]
        if leaks or len(shared) > MAX_SHARED_SHARE * len(held):
            example = (leaks or [i for i, _ in shared])[0]
            raise ValueError(f"{path} shares {len(shared)} records with {training_file} (e.g. {example})")
        excluded |= {i for i, _ in shared}
    return frozenset(excluded)


def leave_one_slice_out(files: list[Path], objectives: dict[str, str], seed: int = 13) -> dict[str, Any]:
    """Baselines only (cheap to refit): each slice held out in turn, fitted on the others (thresholds
    tuned on a seeded 10% of them); macro-F1 per held-out slice and pooled over all predictions."""
    truths, decisions, per_slice = [], defaultdict(list), defaultdict(dict)
    for train_files, held in slice_folds(files):
        train, test = load_labelled(train_files), load_labelled([held])
        order = np.random.default_rng(seed).permutation(len(train))
        cut = len(train) // 10
        y = label_matrix(test).astype(int)
        truths.append(y)
        for baseline, thresholds in fit_baselines(train.select(order[cut:]), train.select(order[:cut]), objectives):
            p = baseline.predict_proba(test["text"])
            per_slice[baseline.name][held.stem] = label_metrics(y, p, thresholds)["macro_f1"]
            decisions[baseline.name].append(p >= np.array([thresholds[label] for label in LABELS]))
    result: dict[str, Any] = {}
    for name, decided in decisions.items():
        pooled = label_metrics(np.vstack(truths), np.vstack(decided).astype(float), dict.fromkeys(LABELS, 0.5))
        result[name] = {"per_slice": per_slice[name], "pooled_macro_f1": pooled["macro_f1"], "pooled": pooled}
    return result


# ---------------------------------------------------------------- 2. out-of-domain false alarms


def out_of_domain(systems: list[System], files: list[Path]) -> dict[str, Any]:
    """False-positive rate per label on real replies from other domains; F1 for polite and clear."""
    dataset = load_labelled(files)
    y = label_matrix(dataset).astype(bool)
    result: dict[str, Any] = {"files": [str(f) for f in files], "records": len(dataset)}
    for system in systems:
        decided = system.decide(dataset["text"], dataset["context"])
        rates = {}
        for label in ("threatening", "privacy_risk", "empathetic"):
            i = LABELS.index(label)
            negatives = ~y[:, i]
            rates[f"{label}_fpr"] = round(float(decided[negatives, i].mean()), 4) if negatives.any() else None
        report = label_metrics(y.astype(int), decided.astype(float), dict.fromkeys(LABELS, 0.5))
        rates.update({f"{label}_f1": report[label]["f1"] for label in ("polite", "clear")})
        result[system.name] = rates
    return result


# ---------------------------------------------------------------- 3. invariance


FULL_TO_HALF = str.maketrans("，。！？：；（）“”‘’", ",.!?:;()\"\"''")
HALF_TO_FULL = str.maketrans(",.!?:;()", "，。！？：；（）")
PUNCTUATION = re.compile(r"[，。！？：；、,.!?:;\"'“”‘’（）()…~～]")
SURFACE_NOISE: dict[str, Callable[[str], str]] = {
    "halfwidth_punctuation": lambda t: t.translate(FULL_TO_HALF),
    "fullwidth_punctuation": lambda t: t.translate(HALF_TO_FULL),
    "punctuation_stripped": lambda t: PUNCTUATION.sub("", t),
    "asr_spaces": lambda t: " ".join(PUNCTUATION.sub("", t)),
    "asr_underscores": lambda t: "_".join(PUNCTUATION.sub(" ", t).split()),
    "leading_mention": lambda t: "@用户7391 " + t,
    "emoji": lambda t: t + " 🙂",
    "traditional": to_traditional,
}
# Greetings and sign-offs for the courtesy probe: none of them is among the training copies' (ml/data/augment.py).
PROBE_OPENERS = [
    "王经理您好，",
    "非常抱歉打扰到您，",
    "感谢您一直以来的支持，",
    "您好呀，",
    "尊敬的用户：",
    "哈喽您好，",
    "您好 这里是还款提醒 ",
]
PROBE_CLOSERS = [
    "期待您的回复。",
    "祝您身体健康。",
    "如有疑问请拨打客服热线。",
    "谢谢您哈～",
    "感谢配合，祝好！",
    "好的 谢谢您 再见",
]


def courtesy_wrapped(texts: Sequence[str], seed: int = 5) -> list[str]:
    """Each reply with a greeting, a sign-off or both, drawn with a seeded generator. Courtesy never
    cancels a threat (data/GUIDELINES.md), so a threat decision should survive it."""
    rng = random.Random(seed)
    return [wrap_in_courtesy(text, rng, PROBE_OPENERS, PROBE_CLOSERS) for text in texts]


def invariance(system: System, dataset, context_swaps: int = 5, seed: int = 13) -> dict[str, Any]:
    """Share of decisions that change (a) when the reply's context is replaced by none or by other
    replies' contexts: over all replies, and for the risk labels over replies whose gold labels are
    neutral (no threat, no privacy risk); (b) under each kind of surface noise of the reply. Only
    trials that change the input count: a reply without context cannot lose it, and a kind of noise
    that leaves a reply as it was (no punctuation to strip) cannot change a decision."""
    texts, contexts = list(dataset["text"]), list(dataset["context"])
    y = label_matrix(dataset).astype(bool)
    own = system.decide(texts, contexts)
    rng = random.Random(seed)
    pool = [c for c in contexts if c.strip()]
    swaps = context_swaps if pool else 0  # a set without contexts can only lose them
    swapped_contexts = [[""] * len(texts)] + [[rng.choice(pool) for _ in texts] for _ in range(swaps)]
    swapped = np.stack([system.decide(texts, alt) for alt in swapped_contexts])  # (k, n, 5)
    tried = np.array([[alt != c for alt, c in zip(variant, contexts)] for variant in swapped_contexts])  # (k, n)
    changed = swapped != own[None]
    neutral = ~(y[:, LABELS.index("threatening")] | y[:, LABELS.index("privacy_risk")])
    context_report = {label: changed_share(changed[:, :, i], tried) for i, label in enumerate(LABELS)}
    context_report.update(
        {
            f"{label}_on_neutral_replies": changed_share(changed[:, neutral, LABELS.index(label)], tried[:, neutral])
            for label in RISK_LABELS
        }
    )
    context_report["trials"] = int(tried.sum())
    noise_report, noise_changed, noise_tried = {}, [], []
    for name, transform in SURFACE_NOISE.items():
        noisy_texts = [transform(t) for t in texts]
        noise_changed.append(system.decide(noisy_texts, contexts) != own)
        noise_tried.append(np.array([noisy != t for noisy, t in zip(noisy_texts, texts)], dtype=bool))
        noise_report[name] = changed_share(noise_changed[-1], noise_tried[-1][:, None])
    changed, tried = np.stack(noise_changed), np.stack(noise_tried)  # (kinds, n, 5), (kinds, n)
    noise_report["all_labels_all_kinds"] = changed_share(changed, tried[:, :, None])
    noise_report.update({label: changed_share(changed[:, :, i], tried) for i, label in enumerate(LABELS)})
    noise_report["trials"] = {name: int(t.sum()) for name, t in zip(SURFACE_NOISE, noise_tried)}
    threat = LABELS.index("threatening")
    found = own[:, threat] & y[:, threat]
    wrapped = system.decide(courtesy_wrapped(texts), contexts)[:, threat]
    courtesy_report = {
        "threats_found": int(found.sum()),
        "threats_lost": round(float((found & ~wrapped).sum() / found.sum()), 4) if found.any() else None,
        "threat_decisions_changed": round(float((wrapped != own[:, threat]).mean()), 4),
    }
    return {
        "records": len(texts),
        "context_swap": context_report,
        "surface_noise": noise_report,
        "courtesy_wrapper": courtesy_report,
    }


def changed_share(changed: np.ndarray, tried: np.ndarray) -> float | None:
    """The share of `changed` decisions among the trials that changed the input (`tried`, broadcast
    over labels); None where no trial changed it."""
    tried = np.broadcast_to(tried, changed.shape)
    return round(float(changed[tried].mean()), 4) if tried.any() else None


# ---------------------------------------------------------------- 4. hard-case probes


def probes(systems: list[System], files: list[Path]) -> dict[str, Any]:
    """Per probe file and label: accuracy, false positives and false negatives."""
    result: dict[str, Any] = {}
    for path in files:
        dataset = load_labelled([path])
        y = label_matrix(dataset).astype(bool)
        result[path.stem] = {"records": len(dataset)}
        for system in systems:
            decided = system.decide(dataset["text"], dataset["context"])
            result[path.stem][system.name] = {
                label: {
                    "accuracy": round(float((decided[:, i] == y[:, i]).mean()), 4),
                    "false_positives": int((decided[:, i] & ~y[:, i]).sum()),
                    "false_negatives": int((~decided[:, i] & y[:, i]).sum()),
                }
                for i, label in enumerate(LABELS)
            }
    return result


# ---------------------------------------------------------------- the whole board


def existing_files(where: str | list[str]) -> list[Path]:
    """The data files of a scoreboard set (folders or globs); a place that does not exist gives none."""
    return [path for path in expand_paths([where] if isinstance(where, str) else where) if path.exists()]


def systems_for(scorer: Scorer, train_file: str, validation_file: str) -> list[System]:
    """The model and both baselines, the baselines fitted on the model's own train/validation split."""
    objectives = scorer.info.threshold_objective
    return [model_system(scorer), *baseline_systems(train_file, validation_file, objectives)]


def generalisation(systems: list[System], train_file: str, config: ScoreboardConfig) -> dict[str, Any]:
    """Held-out writers and out-of-domain false alarms: the numbers the model card leads with."""
    board: dict[str, Any] = {}
    if held_out := existing_files(config.held_out):
        sets = {path: load_labelled([path]) for path in held_out}
        board["held_out_writers"] = held_out_writers(systems, sets, shared_with_training(train_file, sets))
    if ood := existing_files(config.ood):
        board["out_of_domain"] = out_of_domain(systems, ood)
    add_references(board, config.references)
    return board


def add_references(board: dict[str, Any], references: list[ReferenceRow]) -> None:
    """Each reference model's pooled held-out and out-of-domain row, taken from its own scoreboard,
    beside ours: only where it was measured on the same files and records; `board["references"]`
    says for each whether it was shown and what it is."""

    def system_rows(section: str, report: dict[str, Any]) -> dict[str, Any]:
        return report["pooled"] if section == "held_out_writers" else report

    for reference in references:
        path = Path(reference.scoreboard)
        other = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        shown = []
        for section in ("held_out_writers", "out_of_domain"):
            mine, theirs = board.get(section), other.get(section)
            if not mine or not theirs or (theirs["files"], theirs["records"]) != (mine["files"], mine["records"]):
                continue
            system_rows(section, mine)[reference.name] = system_rows(section, theirs)["model"]
            shown.append(section)
        board.setdefault("references", {})[reference.name] = {"note": reference.note, "shown_in": shown}


def scoreboard(scorer: Scorer, train_file: str, validation_file: str, config: ScoreboardConfig) -> dict[str, Any]:
    systems = systems_for(scorer, train_file, validation_file)
    board: dict[str, Any] = {"model": {"name": scorer.info.name, "version": scorer.info.version}}
    board.update(generalisation(systems, train_file, config))
    if len(slices := existing_files(config.training_slices)) > 1:
        board["baselines_leave_one_slice_out"] = leave_one_slice_out(slices, scorer.info.threshold_objective)
    invariance_set = load_labelled([config.invariance_file])
    board["invariance"] = {
        system.name: invariance(system, invariance_set, config.context_swaps, config.seed) for system in systems
    }
    if probe_files := existing_files(config.probes):
        board["probes"] = probes(systems, probe_files)
    return board


# The model's headline metrics that experiment rules judge, by the names their tables give them.
JUDGED_METRICS = {
    "held-out macro-F1": "held_out_model_macro_f1",
    "held-out threatening R@P≥0.85": "held_out_model_threatening_recall_at_p85",
    "held-out privacy_risk R@P≥0.85": "held_out_model_privacy_risk_recall_at_p85",
    "held-out threatening recall": "held_out_model_threatening_recall",
    "held-out privacy_risk recall": "held_out_model_privacy_risk_recall",
    "OOD threatening FPR": "ood_model_threatening_fpr",
    "OOD privacy_risk FPR": "ood_model_privacy_risk_fpr",
    "OOD empathetic FPR": "ood_model_empathetic_fpr",
    "OOD polite F1": "ood_model_polite_f1",
    "OOD clear F1": "ood_model_clear_f1",
    "context swap threatening (neutral)": "context_swap_model_threatening_on_neutral",
    "context swap privacy_risk (neutral)": "context_swap_model_privacy_risk_on_neutral",
    "surface noise": "surface_noise_model_changed",
}


def headline_metrics(board: dict[str, Any]) -> dict[str, float | None]:
    """The flat numbers `dvc metrics show` prints: held-out writers first."""
    metrics: dict[str, float | None] = {}
    held_out = board.get("held_out_writers", {})
    for name, report in held_out.get("pooled", {}).items():
        metrics[f"held_out_{name}_macro_f1"] = report["macro_f1"]
        for label in RISK_LABELS:
            metrics[f"held_out_{name}_{label}_recall"] = report[label]["recall"]
            metrics[f"held_out_{name}_{label}_recall_at_p85"] = report[label]["recall_at_precision_0.85"]
    for name, (low, high) in held_out.get("pooled_macro_f1_ci95", {}).items():
        metrics[f"held_out_{name}_macro_f1_ci95_low"], metrics[f"held_out_{name}_macro_f1_ci95_high"] = low, high
    for name, (low, high) in held_out.get("model_lead_macro_f1_ci95", {}).items():
        metrics[f"held_out_model_minus_{name}_macro_f1_ci95_low"] = low
        metrics[f"held_out_model_minus_{name}_macro_f1_ci95_high"] = high
    for name, report in board.get("baselines_leave_one_slice_out", {}).items():
        metrics[f"loso_{name}_macro_f1"] = report["pooled_macro_f1"]
    for name, rates in board.get("out_of_domain", {}).items():
        if isinstance(rates, dict):
            metrics.update({f"ood_{name}_{key}": value for key, value in rates.items()})
    for name, report in board.get("invariance", {}).items():
        swap = report["context_swap"]
        metrics.update(
            {f"context_swap_{name}_{label}_on_neutral": swap[f"{label}_on_neutral_replies"] for label in RISK_LABELS}
        )
        metrics[f"surface_noise_{name}_changed"] = report["surface_noise"]["all_labels_all_kinds"]
        metrics[f"courtesy_wrapper_{name}_threats_lost"] = report["courtesy_wrapper"]["threats_lost"]
    return metrics


def write_scoreboard(board: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scoreboard.json").write_text(json.dumps(board, ensure_ascii=False, indent=2), encoding="utf-8")
    (out_dir / "metrics.json").write_text(json.dumps(headline_metrics(board), indent=2), encoding="utf-8")


def tracked_scoreboard(model: str, train: TrainConfig, config: ScoreboardConfig) -> dict[str, Any]:
    """The scoreboard as its own MLflow run; files under `config.out_dir` (metrics.json for DVC)."""
    import mlflow

    from ml.tracking import start_run

    with start_run("scoreboard"):
        board = scoreboard(Scorer.load(model, runtime="portable"), train.train_file, train.validation_file, config)
        board["headline"] = headline_metrics(board)
        write_scoreboard(board, Path(config.out_dir))
        mlflow.log_params({"model": model, "version": board["model"]["version"]})
        mlflow.log_metrics({k: v for k, v in board["headline"].items() if v is not None})
        mlflow.log_artifacts(config.out_dir, artifact_path="scoreboard")
    return board
