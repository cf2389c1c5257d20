"""Knowledge distillation: a trained teacher's probabilities become (part of) the targets a smaller
student trains on, so that the student learns the teacher's behaviour, not only the hard labels.

- labelled records: target = (1 - weight) * gold label + weight * teacher probability;
- labels a record does not give (UNKNOWN, e.g. polite/clear of `negatives`): the teacher's probability;
- context-swap copies (a reply paired with another record's context): the teacher's probability on
  the reply with its own context, so the student learns that a foreign customer message does not
  change what the reply is worth (the teacher on the swapped pair would teach it the opposite);
- unlabelled dialogue lines (`data/indomain/*.txt`, each line scored with the line before it as
  context): the teacher's probabilities alone;
- transfer dialogue of another domain: the teacher's probabilities on the labels such text can
  carry (default: the three that should stay 0 off the domain); the others stay UNKNOWN, so the
  student is not taught what the teacher guesses about the politeness of film chit-chat.

The loss stays BCE-with-logits, which takes these soft targets as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from datasets import Dataset

from ml.data.augment import CONTEXT_SWAP_SUFFIX
from ml.data.records import UNKNOWN, label_matrix
from ml.labels import LABELS


def soft_targets(gold: np.ndarray, teacher: np.ndarray, weight: float) -> np.ndarray:
    """Gold labels mixed with teacher probabilities; where gold is UNKNOWN, the teacher alone."""
    mixed = (1 - weight) * gold + weight * teacher
    return np.where(gold == UNKNOWN, teacher, mixed).astype(np.float32)


def with_teacher_targets(dataset: Dataset, teacher, weight: float, labels: Sequence[str] = LABELS) -> Dataset:
    """`dataset` (text, context, the five labels) with the given labels replaced by soft targets;
    the others keep their gold value (UNKNOWN on unlabelled lines, which the loss ignores)."""
    probabilities = teacher.predict_proba(list(dataset["text"]), teacher_contexts(dataset))
    gold = label_matrix(dataset)
    untouched = [label not in labels for label in LABELS]
    targets = soft_targets(gold, probabilities, weight)
    targets[:, untouched] = gold[:, untouched]
    dataset = dataset.remove_columns(list(LABELS))
    for i, label in enumerate(LABELS):
        dataset = dataset.add_column(label, targets[:, i].tolist())
    return dataset


def teacher_contexts(dataset: Dataset) -> list[str]:
    """The context the teacher reads with each row: the row's own, except that a context-swap copy
    is read with its source record's context."""
    contexts = list(dataset["context"])
    if "id" not in dataset.column_names:
        return contexts
    own = dict(zip(dataset["id"], contexts))
    return [
        own[i.removesuffix(CONTEXT_SWAP_SUFFIX)] if i.endswith(CONTEXT_SWAP_SUFFIX) else c
        for i, c in zip(dataset["id"], contexts)
    ]


def dialogue_lines(paths: Iterable[str | Path], max_chars: int = 2000) -> Dataset:
    """Every line of the unlabelled dialogue files (.txt, or folders of them) as a reply, the line
    before it as its context (empty at the top of a file); labels UNKNOWN until a teacher fills them."""
    texts, contexts = [], []
    files = [f for p in map(Path, paths) for f in (sorted(p.glob("*.txt")) if p.is_dir() else [p])]
    for path in files:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        lines = [line[:max_chars] for line in lines]
        texts += lines
        contexts += [""] + lines[:-1]
    unknown = [UNKNOWN] * len(texts)
    return Dataset.from_dict({"text": texts, "context": contexts, **{label: unknown for label in LABELS}})
