"""Weight averaging over the last epochs against the best epoch, from one training run per seed
(experiments/weight_averaging/README.md). Both arms share every step of training; they differ only
in which weights are saved: the best epoch's (the default recipe) or the uniform average of the
last four epochs' (`average_last_epochs: 4`). Each arm gets the train stage's own cut-offs,
exports, card and then the scoreboard.

    OMP_NUM_THREADS=1 MLFLOW_TRACKING_URI=sqlite:///experiments/weight_averaging/mlflow_seed13.db \
        python experiments/weight_averaging/run.py 13
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

from ml.config import ProjectConfig, load_config
from ml.evaluation.scoreboard import tracked_scoreboard
from ml.modeling.train import (
    EpochWeights,
    average_weights,
    describe_model,
    fine_tune,
    save_model,
    set_thresholds,
)
from ml.tracking import start_run

HERE = Path(__file__).parent
AVERAGED_EPOCHS = 4  # the best epoch and the three the early stopping ran past it (patience 3)


def main(seed: int) -> None:
    settings = load_config(HERE / "config.yaml", ProjectConfig)
    recipe = settings.train.model_copy(update={"seed": seed, "average_last_epochs": 0})
    work = HERE / f"checkpoints_seed{seed}"
    recorder = EpochWeights()
    with start_run("train"):
        model, tokenizer = fine_tune(recipe, work, recorder)
    averaged = average_weights(copy.deepcopy(model), recorder.states[-AVERAGED_EPOCHS:])
    shutil.rmtree(work, ignore_errors=True)
    versions = {"epochs_run": len(recorder.states)}
    for arm, weights in (("best", model), ("averaged", averaged)):
        config = recipe.model_copy(update={"output_dir": str(HERE / f"model_{arm}_seed{seed}")})
        output_dir = save_model(weights, tokenizer, config)
        set_thresholds(output_dir, config)
        describe_model(output_dir, config, settings.scoreboard)
        board_config = settings.scoreboard.model_copy(update={"out_dir": str(HERE / f"scoreboard_{arm}_seed{seed}")})
        board = tracked_scoreboard(str(output_dir), config, board_config)
        versions[arm] = board["model"]["version"]
    (HERE / f"versions_seed{seed}.json").write_text(json.dumps(versions, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main(int(sys.argv[1]))
