"""Side check: a uniform average ("soup") of the two seeds' best weights, on validation macro-F1 at a
0.5 cut, beside each seed. Needs the two models run.py leaves behind."""

import torch
from sklearn.metrics import f1_score
from transformers import AutoModelForSequenceClassification

from ml.data.records import label_matrix, load_labelled
from ml.modeling.backends import TorchBackend
from ml.modeling.scorer import Scorer

val = load_labelled(["data/split/validation.jsonl"])
y = label_matrix(val)
dirs = ["experiments/weight_averaging/model_best_seed13", "experiments/weight_averaging/model_best_seed14"]
models = [AutoModelForSequenceClassification.from_pretrained(d, dtype=torch.float32) for d in dirs]
weights = [m.state_dict() for m in models]
soup = AutoModelForSequenceClassification.from_pretrained(dirs[0], dtype=torch.float32)
soup.load_state_dict({k: (weights[0][k] + weights[1][k]) / 2 for k in weights[0]})
scorer = Scorer.load(dirs[0], runtime="torch")  # its tokenizer and input handling; the weights are swapped in
for name, m in [("s13", models[0]), ("s14", models[1]), ("soup", soup)]:
    scorer.backend = TorchBackend(m)
    p = scorer.predict_proba(val["text"], val["context"])
    print(name, round(f1_score(y, p >= 0.5, average="macro"), 4))
