"""Cut-offs tuned on writer-grouped folds instead of the random validation split (generalisation
issue, "threshold tuning on the writer-held-out folds").

The training writers (one brief and writer per file of data/labelled, told apart by the id prefix)
are cut into 3 folds. For each fold a model is fine-tuned with the given config on the other
writers' train-split records (early stopping on their validation records), and it scores the
held-out writers' train + validation records. The pooled out-of-fold probabilities, each scored
by a model that never saw its writer, give the cut-offs (same objectives as the config). They are
written into a copy of the trained model, which the scoreboard then measures. Evaluation sets
(held-out writers, OOD, probes, test split) take no part.

    python experiments/grouped_thresholds/run.py --config configs/default.yaml --model models/default
    replyqa scoreboard --model experiments/grouped_thresholds/model --config experiments/grouped_thresholds/config.yaml
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from ml.config import load_config
from ml.data.records import label_matrix, load_labelled, writer_slice
from ml.evaluation.metrics import tune_thresholds
from ml.modeling.model_info import ModelInfo
from ml.modeling.scorer import Scorer
from ml.modeling.train import fine_tune, save_model, store_thresholds

HERE = Path(__file__).parent
FOLDS = [  # each fold mixes collection, service, privacy and third-party writers of every data version
    ["a", "d", "g", "v2b", "v3a", "v4a"],
    ["b", "e", "h", "v2c", "v3b", "v4b"],
    ["c", "f", "v2d", "v2e", "v3c", "v4c"],
]


def write_subset(sources: list[str], writers: set[str], inside: bool, target: Path) -> Path:
    """The records of `sources` whose writer is (inside=True) or is not in `writers`."""
    lines = [line for source in sources for line in Path(source).read_text(encoding="utf-8").splitlines()]
    kept = [line for line in lines if line.strip() and (writer_slice(json.loads(line)["id"]) in writers) == inside]
    target.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return target


def out_of_fold(config_path: Path) -> tuple[np.ndarray, np.ndarray]:
    base = load_config(config_path).train
    truths, probabilities = [], []
    for k, held in enumerate(FOLDS):
        work = HERE / f"fold_{k}"
        work.mkdir(parents=True, exist_ok=True)
        train = write_subset([base.train_file], set(held), False, work / "train.jsonl")
        validation = write_subset([base.validation_file], set(held), False, work / "validation.jsonl")
        scored = write_subset([base.train_file, base.validation_file], set(held), True, work / "out_of_fold.jsonl")
        config = base.model_copy(
            update={
                "train_file": str(train),
                "validation_file": str(validation),
                "output_dir": str(work / "model"),
                "export_onnx": False,
                "register_name": None,
            }
        )
        model, tokenizer = fine_tune(config, work / "checkpoints")
        scorer = Scorer.load(save_model(model, tokenizer, config), runtime="torch")
        records = load_labelled([scored])
        truths.append(label_matrix(records))
        probabilities.append(scorer.predict_proba(records["text"], records["context"]))
        shutil.rmtree(work / "checkpoints", ignore_errors=True)
        print(f"fold {k}: held out {held}, {len(records)} records scored", flush=True)
    return np.vstack(truths), np.vstack(probabilities)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, default=Path("configs/default.yaml"))
    parser.add_argument("--model", type=Path, default=Path("models/default"))
    args = parser.parse_args()
    truth, probabilities = out_of_fold(args.config)
    np.save(HERE / "oof_probabilities.npy", probabilities)
    np.save(HERE / "oof_truth.npy", truth)
    objectives = load_config(args.config).train.threshold_objective
    target = HERE / "model"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(args.model, target)
    before = ModelInfo.read(target).thresholds
    thresholds = store_thresholds(target, tune_thresholds(truth, probabilities, objectives))
    result = {"validation_split": before, "writer_grouped_folds": thresholds, "records": len(truth)}
    (HERE / "thresholds.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
