"""Prune the feed-forward blocks of a trained BERT classifier to fewer intermediate units, keeping in
each layer the units with the largest product of input and output weight norms, and save the result
as a starting point for a distilled student (same depth, fewer FLOPs a token).

    python experiments/student_ffn/prune.py models/default experiments/student_ffn/base 512
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

source, target, units = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
model = AutoModelForSequenceClassification.from_pretrained(source, dtype=torch.float32)
with torch.no_grad():
    for layer in model.bert.encoder.layer:
        grow, shrink = layer.intermediate.dense, layer.output.dense  # d -> 4d, 4d -> d
        importance = grow.weight.norm(dim=1) * shrink.weight.norm(dim=0)
        keep = importance.topk(units).indices.sort().values
        grow.weight = torch.nn.Parameter(grow.weight[keep].clone())
        grow.bias = torch.nn.Parameter(grow.bias[keep].clone())
        grow.out_features = units
        shrink.weight = torch.nn.Parameter(shrink.weight[:, keep].clone())
        shrink.in_features = units
model.config.intermediate_size = units
model.save_pretrained(target)
for name in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(source / name, target / name)
print(f"{target}: {units} feed-forward units kept in each of {len(model.bert.encoder.layer)} layers")
