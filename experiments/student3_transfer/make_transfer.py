"""Build transfer/kdconv_film_music.txt: unlabelled KdConv film and music dialogues (Apache-2.0,
thu-coai/KdConv) that the teacher scores and the student learns from, so that the student sees the
teacher's behaviour on ordinary text of another domain, not only on lending dialogue.

Whole dialogues, one turn a line, one after another (the distillation reader takes each line's
previous line as its context, so a dialogue's first turn gets the previous dialogue's last one).
Left out: the travel domain (close to the out-of-domain evaluation set), turns already in
data/negatives, and any turn sharing a 16-character run with an evaluation text, as in the
pretraining corpus. Needs data/external/kdconv (data/DATASHEET.md).

    python experiments/student3_transfer/make_transfer.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ml.config import DataConfig
from ml.data.corpus import EvaluationFilter, evaluation_texts
from ml.data.text import normalise_for_model

SOURCE = Path("data/external/kdconv")
NEGATIVES = Path("data/negatives/kdconv_film_music.jsonl")
OUT = Path(__file__).parent / "transfer" / "kdconv_film_music.txt"
DOMAINS = ("film", "music")
MAX_LINES = 4000
SEED = 13


def dialogues() -> list[list[str]]:
    found = []
    for domain in DOMAINS:
        for split in ("dev", "test"):
            for dialogue in json.loads((SOURCE / domain / f"{split}.json").read_text(encoding="utf-8")):
                found.append([m["message"].strip() for m in dialogue["messages"] if m["message"].strip()])
    return found


def main() -> None:
    exclude = EvaluationFilter(evaluation_texts(Path(p) for p in DataConfig().corpus_exclude))
    negatives = {json.loads(line)["text"] for line in NEGATIVES.read_text(encoding="utf-8").splitlines()}
    candidates = dialogues()
    random.Random(SEED).shuffle(candidates)
    kept: list[list[str]] = []
    lines = 0
    for turns in candidates:
        turns = [t for t in turns if t not in negatives and not exclude(normalise_for_model(t))]
        if len(turns) < 2:
            continue
        kept.append(turns)
        lines += len(turns)
        if lines >= MAX_LINES:
            break
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(line + "\n" for turns in kept for line in turns), encoding="utf-8")
    print(f"{OUT}: {lines} lines in {len(kept)} dialogues")


if __name__ == "__main__":
    main()
