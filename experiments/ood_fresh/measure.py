"""Off-domain false alarms of several models on the original out-of-domain set (data/ood) and on the
fresh sample that no model was ever judged on (data/ood_fresh), side by side, with the scoreboard's
own measure (`ml.evaluation.scoreboard.out_of_domain`). The baselines are fitted on the split.

    python experiments/ood_fresh/measure.py models/default experiments/student3/model ... > results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ml.evaluation.scoreboard import model_system, out_of_domain, systems_for
from ml.modeling.scorer import Scorer

SETS = {"ood": Path("data/ood/crosswoz_sys.jsonl"), "ood_fresh": Path("data/ood_fresh/crosswoz_sys_fresh.jsonl")}

default, *others = sys.argv[1:]
systems = systems_for(Scorer.load(default), "data/split/train.jsonl", "data/split/validation.jsonl")
systems[0].name = default
for path in others:
    system = model_system(Scorer.load(path))
    system.name = path
    systems.append(system)
print(json.dumps({name: out_of_domain(systems, [path]) for name, path in SETS.items()}, indent=1))
