"""Training-time augmentation (never applied to evaluation data).

- Context dropout: a seeded share of training examples lose their context. The labels judge the
  reply, so they stay; the model learns not to lean on the customer's message.
- Noise copies: a seeded share of training examples gain a copy whose reply is written the way
  other channels write it (half-width or missing punctuation, ASR spaces or underscores, a leading
  @mention, an emoji, a Traditional character form).
- Context-swap copies: a seeded share of training examples whose reply is neither threatening nor a
  privacy risk gain a copy with another record's context. An unrelated customer message cannot make
  a neutral reply a threat, so both risk labels stay 0; polite, clear and empathetic may depend on
  the context, so the copy does not give them (UNKNOWN: the loss ignores them). Its id is the
  source record's id plus CONTEXT_SWAP_SUFFIX (a teacher judges the copy by its source's context).

Copies of both kinds together stay at or under 15% of the training set and are counted in the
MLflow run.

The scoreboard's invariance probes (ml/evaluation/scoreboard.py) use their own transforms; the overlap
(punctuation width, stripped punctuation, spaces, underscores, @mentions, emoji, Traditional) is
stated in the model card; the handles and break points here are drawn at random, not the probes' fixed ones.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from datasets import Dataset

from ml.config import check_copy_shares
from ml.data.records import UNKNOWN
from ml.data.text import to_traditional

_PUNCT = re.compile(r"[，。！？：；、,.!?:;]")
_WIDTH = str.maketrans("，。！？：；,.!?:;", ",.!?:;，。！？：；")


CONTEXT_SWAP_SUFFIX = "~context_swap"
_HANDLES = ["用户", "小", "阿", "Mr", "momo", "一只", "橙子", "Lucky", "大", "jia"]


def _breaks(text: str, rng: random.Random, mark: str) -> str:
    """ASR-style word breaks: punctuation becomes `mark`, and `mark` falls between characters at random."""
    broken = "".join(ch + (mark if rng.random() < 0.3 else "") for ch in _PUNCT.sub(mark, text))
    return re.sub(f"{re.escape(mark)}+", mark, broken).strip(mark + " ")


def _mention(text: str, rng: random.Random) -> str:
    handle = rng.choice(_HANDLES) + "".join(rng.choice("0123456789abcxyz") for _ in range(rng.randint(0, 5)))
    return f"@{handle}{rng.choice([' ', '：', ' ', ''])}{text}"


NOISE: dict[str, Callable[[str, random.Random], str]] = {
    "punctuation_width": lambda t, rng: t.translate(_WIDTH),
    "punctuation_dropped": lambda t, rng: _PUNCT.sub("", t),
    "asr_spaces": lambda t, rng: _breaks(t, rng, " "),
    "asr_underscores": lambda t, rng: _breaks(t, rng, "_"),
    "leading_mention": _mention,
    "emoji": lambda t, rng: t + rng.choice(["😊", "🙏", "👍", "~", "～～"]),
    "traditional": lambda t, rng: to_traditional(t),
}


def augment(
    dataset: Dataset, context_dropout: float, noise_share: float, seed: int, context_swap: float = 0.0
) -> tuple[Dataset, dict]:
    """The training set with contexts dropped, noisy copies and context-swap copies added; and what
    was done, in numbers."""
    check_copy_shares(noise_share, context_swap)
    rng = random.Random(seed)
    rows = dataset.to_list()
    contexts = sorted({row["context"] for row in rows if row["context"]})
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
    swaps = _context_swaps(rows, contexts, context_swap, rng)
    summary = {
        "contexts_dropped": dropped,
        "noise_copies": len(copies),
        "context_swaps": len(swaps),
        "train_examples": len(rows) + len(copies) + len(swaps),
    }
    return Dataset.from_list(rows + copies + swaps, features=dataset.features), summary


def _context_swaps(rows: list[dict], contexts: list[str], share: float, rng: random.Random) -> list[dict]:
    if not contexts:
        return []
    neutral = [row for row in rows if row["threatening"] == 0 and row["privacy_risk"] == 0]
    swaps = []
    for row in rng.sample(neutral, min(len(neutral), round(share * len(rows)))):
        context = rng.choice(contexts)
        if context != row["context"]:
            swap = {
                **row,
                "id": row["id"] + CONTEXT_SWAP_SUFFIX,
                "context": context,
                "source": "augmented:context_swap",
            }
            swaps.append({**swap, **dict.fromkeys(("polite", "clear", "empathetic"), UNKNOWN)})
    return swaps
