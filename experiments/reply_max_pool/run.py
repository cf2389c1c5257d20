"""Experiment (README.md here): the teacher recipe with the reply-max-pooling head.

OMP_NUM_THREADS=1 python experiments/reply_max_pool/run.py train experiments/reply_max_pool/config_seed13.yaml
python experiments/reply_max_pool/run.py scoreboard experiments/reply_max_pool/config_seed13.yaml
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from pooling import use_reply_max_pooling  # noqa: E402

from ml.config import load_config  # noqa: E402


def main(action: str, config_path: str) -> None:
    use_reply_max_pooling()
    settings = load_config(Path(config_path))
    if action == "train":
        from ml.modeling.train import train

        summary = train(settings.teacher, config_path=Path(config_path), board=settings.scoreboard)
    else:
        from ml.evaluation.scoreboard import tracked_scoreboard

        summary = tracked_scoreboard(settings.teacher.output_dir, settings.train, settings.scoreboard)["headline"]
    print(json.dumps(summary, ensure_ascii=False, indent=2, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:])
