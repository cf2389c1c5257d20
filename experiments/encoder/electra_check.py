"""Is the ELECTRA objective broken, or only starved? (the question `experiments/encoder/` left open)

Trains a tiny encoder (2 layers x 128) on the first 9,000 lines of `data/indomain/` with the
project's own `ReplacedTokenObjective` and `WholeWordMaskCollator`, in one of two set-ups:

- `uniform`: the discriminator alone, on tokens replaced by uniformly random vocabulary entries
  (most of them rare characters, so that word frequency alone gives them away);
- `electra`: the whole objective, generator samples as the replacements.

and prints, every 50 steps, the detection loss next to its base rate: the entropy of the share of
tokens actually replaced (a detector that has learnt nothing sits at that rate).

    python experiments/encoder/electra_check.py uniform
    python experiments/encoder/electra_check.py electra [--steps 1500]
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
from pathlib import Path

import torch

from ml.config import PretrainConfig
from ml.modeling.pretrain import (
    ReplacedTokenObjective,
    WholeWordMaskCollator,
    bert_config,
    pack_corpus,
    train_tokenizer,
)


def entropy(share: float) -> float:
    return -(share * math.log(share) + (1 - share) * math.log(1 - share)) if 0 < share < 1 else 0.0


def uniform_detection_loss(
    objective: ReplacedTokenObjective, batch: dict, vocab_size: int
) -> tuple[torch.Tensor, float]:
    ids, labels, attention = batch["input_ids"], batch["labels"], batch["attention_mask"]
    picked = labels != -100
    corrupted = ids.clone()
    corrupted[picked] = torch.randint(5, vocab_size, (int(picked.sum()),))
    replaced = (corrupted != torch.where(picked, labels, ids)).float()
    share = float(replaced[attention.bool()].mean())
    return objective.detection_loss(corrupted, attention, replaced), share


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["uniform", "electra"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    args = parser.parse_args()
    torch.manual_seed(0)
    random.seed(0)
    lines = [
        line
        for path in sorted(Path("data/indomain").glob("*.txt"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    work = Path(tempfile.mkdtemp())
    (work / "corpus.txt").write_text("\n".join(lines[:9000]), encoding="utf-8")
    config = PretrainConfig(
        corpus_path=str(work / "corpus.txt"),
        vocab_size=3000,
        max_length=64,
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=512,
        objective="electra",
    )
    tokenizer = train_tokenizer(config.corpus_path, config.vocab_size, work / "tokenizer")
    blocks = pack_corpus(lines[:9000], tokenizer, config.max_length)
    objective = ReplacedTokenObjective(
        bert_config(config, len(tokenizer), tokenizer.pad_token_id),
        bert_config(config, len(tokenizer), tokenizer.pad_token_id, generator=True),
    )
    collator = WholeWordMaskCollator(tokenizer, config.mlm_probability, bert_replacement=False)
    optimiser = torch.optim.AdamW(objective.parameters(), lr=args.learning_rate)
    for step in range(args.steps + 1):
        batch = collator([blocks[i] for i in random.sample(range(len(blocks)), 32)])
        if args.mode == "uniform":
            loss, share = uniform_detection_loss(objective, batch, len(tokenizer))
            parts = {"rtd_loss": float(loss)}
        else:
            outputs = objective(**batch)
            loss, parts = outputs["loss"], {k: float(v) for k, v in outputs.items() if k != "loss"}
            share = float(outputs["replaced_share"])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 50 == 0:
            shown = " ".join(f"{k} {v:.3f}" for k, v in parts.items())
            print(f"step {step:4d}  {shown}  base rate {entropy(share):.3f} (replaced {share:.3f})")


if __name__ == "__main__":
    main()
