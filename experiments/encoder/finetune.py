"""Experiment: which pretrained encoder makes the better classifier on data its writers did not produce?

Fine-tunes the classifier exactly as `replyqa train` does (configs/default.yaml), but from the given
encoder, and records the numbers the choice is made on: held-out writers (macro-F1, risk recall),
out-of-domain false alarms, the test split last; plus the pretraining summary (objective, steps,
tokens, losses, fill-mask probes). One process per candidate, so candidates can run side by side:

    OMP_NUM_THREADS=1 python experiments/encoder/finetune.py NAME ENCODER_DIR [CONFIG]
    python experiments/encoder/summarise.py   # -> results.json and the README table
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ml.config import load_config
from ml.data.records import load_labelled
from ml.evaluation.scoreboard import generalisation, invariance, model_system
from ml.modeling.scorer import Scorer
from ml.modeling.train import train

HERE = Path(__file__).parent


def main(name: str, encoder: str, config_path: str = "configs/default.yaml") -> None:
    settings = load_config(Path(config_path))
    out = HERE / "runs" / name
    config = settings.train.model_copy(
        update={"model_name_or_path": encoder, "output_dir": str(out / "model"), "register_name": f"encoder-{name}"}
    )
    summary = train(config, board=settings.scoreboard)
    scorer = Scorer.load(out / "model")
    board = generalisation([model_system(scorer)], config.train_file, settings.scoreboard)
    stability = invariance(model_system(scorer), load_labelled([settings.scoreboard.invariance_file]))
    pretraining = json.loads((Path(encoder) / "pretrain_summary.json").read_text(encoding="utf-8"))
    result = {
        "name": name,
        "encoder": encoder,
        "pretraining": {k: v for k, v in pretraining.items() if k != "loss_curve"}
        | {"last_losses": pretraining["loss_curve"][-4:]},
        "runtime": scorer.runtime,
        "held_out_writers": board["held_out_writers"]["pooled"]["model"],
        "held_out_per_file": board["held_out_writers"]["per_file"]["model"],
        "out_of_domain": board["out_of_domain"]["model"],
        "context_swap": {k: v for k, v in stability["context_swap"].items() if "on_neutral" in k},
        "surface_noise_changed": stability["surface_noise"]["all_labels_all_kinds"],
        "test_macro_f1": summary["test_macro_f1"],
    }
    (out / "result.json").write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:4])
