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
- Courtesy copies: a seeded share (of the training set) of copies of threatening replies, wrapped in
  a service greeting and/or sign-off (您好，… 祝您生活愉快). Courtesy never cancels a threat and a threat
  anywhere makes a reply impolite (data/GUIDELINES.md), so every label stays. The shipped model loses
  threats once they are wrapped so (experiments/courtesy_copies/): this teaches it otherwise.

Copies of all kinds together stay at or under 15% of the training set and are counted in the
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
COURTESY_OPENERS = [
    "您好，",
    "您好！",
    "你好，",
    "亲，",
    "亲亲您好～",
    "不好意思打扰您了，",
    "打扰一下，",
    "温馨提示：",
    "【温馨提示】",
    "尊敬的客户您好，",
    "先生您好，",
    "女士您好，",
    "早上好，",
    "您好，这边是贷后服务中心，",
    "抱歉打扰，",
    "麻烦您听我说一下，",
    "感谢您接听，",
    "您好 我这边是客服 ",
]
COURTESY_CLOSERS = [
    "谢谢您的配合。",
    "祝您生活愉快！",
    "感谢您的理解和支持～",
    "有任何疑问欢迎随时联系我们。",
    "辛苦了🙏",
    "麻烦您了，谢谢！",
    "祝您一切顺利。",
    "感谢您的耐心～",
    "请您知悉，谢谢。",
    "谢谢！",
    "祝您周末愉快😊",
    "感谢您的支持 再见",
]
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
    dataset: Dataset,
    context_dropout: float,
    noise_share: float,
    seed: int,
    context_swap: float = 0.0,
    courtesy_threats: float = 0.0,
) -> tuple[Dataset, dict]:
    """The training set with contexts dropped, and noisy, context-swap and courtesy copies added; and
    what was done, in numbers."""
    check_copy_shares(noise_share, context_swap, courtesy_threats)
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
    courteous = _courtesy_copies(rows, courtesy_threats, rng)
    summary = {
        "contexts_dropped": dropped,
        "noise_copies": len(copies),
        "context_swaps": len(swaps),
        "courtesy_copies": len(courteous),
        "train_examples": len(rows) + len(copies) + len(swaps) + len(courteous),
    }
    return Dataset.from_list(rows + copies + swaps + courteous, features=dataset.features), summary


def wrap_in_courtesy(text: str, rng: random.Random, openers: list[str], closers: list[str]) -> str:
    """`text` with a greeting, a sign-off or both, drawn from `openers` and `closers`."""
    opener, closer = rng.choice([(True, False), (False, True), (True, True)])
    return (rng.choice(openers) if opener else "") + text + (rng.choice(closers) if closer else "")


def _courtesy_copies(rows: list[dict], share: float, rng: random.Random) -> list[dict]:
    threats = [row for row in rows if row["threatening"] == 1]
    copies = []
    for row in rng.sample(threats, min(len(threats), round(share * len(rows)))):
        text = wrap_in_courtesy(row["text"], rng, COURTESY_OPENERS, COURTESY_CLOSERS)
        copies.append({**row, "id": f"{row['id']}~courtesy", "text": text, "source": "augmented:courtesy"})
    return copies


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
