"""`replyqa stack`: a stacked model directory, i.e. a trained model plus a character n-gram part
(`ml/modeling/ngrams.py`) fitted on the same train split and negatives, mixed per label with the
BERT shares of the config's `stack` section. Those shares were chosen on writer-grouped
out-of-fold predictions, never on an evaluation set (`experiments/stacking/`). Cut-offs of the
mixed labels are tuned on the validation split with the model's own objectives; labels the BERT
keeps alone keep its cut-offs. The result loads with `Scorer.load` like any model directory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from ml.config import StackConfig, TrainConfig
from ml.data.records import expand_paths, label_matrix, load_labelled, load_partially_labelled, record_ids
from ml.evaluation.evaluate import evaluate_model, stack_account
from ml.evaluation.metrics import tune_thresholds
from ml.labels import LABELS
from ml.modeling.model_info import ModelInfo, ModelLoadError, write_training_ids
from ml.modeling.ngrams import NGRAM_DIR, CharNgrams, mix
from ml.modeling.scorer import Scorer

CARD_NOTE = """> **Stacked model** (`replyqa stack`): this directory is `{source}` (`{bert_version}`) with an n-gram
> part. {account}
> Cut-offs of the mixed labels were tuned on the validation split: {thresholds}.
> Test split macro-F1 of the mix: {test_macro_f1:.3f}. The numbers below this note are the BERT's
> alone until `replyqa evaluate --card` rewrites the card for the mix.

"""


def fit_ngrams(train: TrainConfig, config: StackConfig) -> CharNgrams:
    """The n-gram part on the model's own train split, the stack's extra labelled data, and the
    negatives (their given labels only), with the stack's regularisation."""
    labelled = load_labelled([train.train_file, *expand_paths(config.extra_data)])
    negatives = load_partially_labelled(train.negatives)
    texts = list(labelled["text"]) + list(negatives["text"])
    return CharNgrams.fit(texts, np.vstack([label_matrix(labelled), label_matrix(negatives)]), config.ngram_c)


def stacked_thresholds(scorer: Scorer, ngrams: CharNgrams, shares: dict[str, float], validation_file: str):
    """Cut-offs of the mixed labels, tuned without the floor: the floor only vetoes alarms, it must not
    lower the cut-offs to win the vetoed recall back (`experiments/stack_gate/`, candidate G)."""
    validation = load_labelled([validation_file])
    bert = scorer.predict_proba(validation["text"], validation["context"])
    mixed = mix(bert, ngrams.predict_proba(validation["text"]), np.array([shares[label] for label in LABELS]))
    tuned = tune_thresholds(label_matrix(validation), mixed, scorer.info.threshold_objective)
    return {label: scorer.info.thresholds[label] if shares[label] == 1 else round(tuned[label], 4) for label in LABELS}


def stack(model_dir: Path, out_dir: Path, train: TrainConfig, config: StackConfig) -> ModelInfo:
    """Write the stacked copy of `model_dir` to `out_dir` (replacing an earlier stacked model there),
    or stack `model_dir` in place when `out_dir` is the same directory (the pipeline's default model)."""
    scorer = Scorer.load(model_dir, runtime="portable")  # cut-offs that do not depend on the CPU
    if scorer.info.ngram_weights:
        raise ModelLoadError(
            f"{model_dir}: already a stacked model; stack a BERT alone (what `replyqa train` writes) instead"
        )
    in_place = out_dir.exists() and out_dir.resolve() == model_dir.resolve()
    if out_dir.exists() and not in_place:
        if not (out_dir / NGRAM_DIR).is_dir():
            raise FileExistsError(f"{out_dir} exists and is not a stacked model; choose another --out")
        shutil.rmtree(out_dir)
    ngrams = fit_ngrams(train, config)
    shares = dict(config.bert_share)
    floors = dict(config.bert_floor) if any(config.bert_floor.values()) else {}  # none: no floor at all
    thresholds = stacked_thresholds(scorer, ngrams, shares, train.validation_file)

    if not in_place:
        shutil.copytree(model_dir, out_dir)
    ngrams.save(out_dir)
    digest = hashlib.sha256((model_dir / "model.safetensors").read_bytes())
    digest.update((out_dir / NGRAM_DIR / "weights.npz").read_bytes())
    if floors:  # the floor changes scores, so it is part of the version
        digest.update(json.dumps(floors, sort_keys=True).encode())
    info = replace(
        scorer.info,
        name=f"{scorer.info.name}-stacked",
        thresholds=thresholds,
        ngram_weights=shares,
        ngram_floor=floors,
        version=digest.hexdigest()[:12],
        threshold_spread={},  # the BERT's; the mixed cut-offs' spread is not measured
    )
    if config.extra_data:  # the n-gram part also learned from these
        write_training_ids(
            out_dir,
            record_ids([train.train_file, *train.negatives, *config.extra_data]),
            record_ids([train.validation_file]),
        )
    stacked = Scorer(scorer.backend, scorer.encoder, info, source=str(out_dir), ngrams=ngrams)  # no second load
    report = evaluate_model(stacked, train.test_file)
    info.test_metrics = {key: report[key] for key in ("macro_f1", "micro_f1", *LABELS)}
    info.write(out_dir)
    card = out_dir / "MODEL_CARD.md"
    note = CARD_NOTE.format(
        source=model_dir,
        bert_version=scorer.info.version,
        account=stack_account(info),
        thresholds=", ".join(f"{label} {thresholds[label]:.3f}" for label in LABELS if shares[label] < 1),
        test_macro_f1=report["macro_f1"],
    )
    card.write_text(note + (card.read_text(encoding="utf-8") if card.exists() else ""), encoding="utf-8")
    return info
