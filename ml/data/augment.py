"""Training-time augmentation (never applied to evaluation data).

- Context dropout: a seeded share of training examples lose their context. The labels judge the
  reply, so they stay; the model learns not to lean on the customer's message.
- Noise copies: a seeded share of training examples gain a copy whose reply is written the way
  other channels write it (half-width or missing punctuation, ASR spaces, an emoji, a Traditional
  character form). Copies stay under 15% of the training set and are counted in the MLflow run.

The scoreboard's invariance probes (ml/evaluation/scoreboard.py) use their own transforms; the overlap
(punctuation width, stripped punctuation, spaces, emoji, Traditional) is stated in the model card.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from datasets import Dataset

from ml.data.text import to_traditional

MAX_NOISE_SHARE = 0.15
_PUNCT = re.compile(r"[，。！？：；、,.!?:;]")
_WIDTH = str.maketrans("，。！？：；,.!?:;", ",.!?:;，。！？：；")


def _spaces(text: str, rng: random.Random) -> str:
    return "".join(ch + (" " if rng.random() < 0.3 else "") for ch in _PUNCT.sub(" ", text)).strip()


NOISE: dict[str, Callable[[str, random.Random], str]] = {
    "punctuation_width": lambda t, rng: t.translate(_WIDTH),
    "punctuation_dropped": lambda t, rng: _PUNCT.sub("", t),
    "asr_spaces": _spaces,
    "emoji": lambda t, rng: t + rng.choice(["😊", "🙏", "👍", "~", "～～"]),
    "traditional": lambda t, rng: to_traditional(t),
}


def augment(dataset: Dataset, context_dropout: float, noise_share: float, seed: int) -> tuple[Dataset, dict]:
    """The training set with contexts dropped and noisy copies added; and what was done, in numbers."""
    if not 0 <= noise_share <= MAX_NOISE_SHARE:
        raise ValueError(f"noise_augmentation must be between 0 and {MAX_NOISE_SHARE}")
    rng = random.Random(seed)
    rows = dataset.to_list()
    dropped = 0
    for row in rows:
        if row["context"] and rng.random() < context_dropout:
            row["context"], dropped = "", dropped + 1
    copies = []
    for row in rng.sample(rows, round(noise_share * len(rows))):
        kind = rng.choice(sorted(NOISE))
        noisy = NOISE[kind](row["text"], rng)
        if noisy.strip() and noisy != row["text"]:
            copies.append({**row, "id": f"{row['id']}~{kind}", "text": noisy, "source": f"augmented:{kind}"})
    summary = {"contexts_dropped": dropped, "noise_copies": len(copies), "train_examples": len(rows) + len(copies)}
    return Dataset.from_list(rows + copies, features=dataset.features), summary
