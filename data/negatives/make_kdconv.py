"""Build data/negatives/kdconv_film_music.jsonl: replies from another domain whose risk labels are
known without reading them one by one.

KdConv (thu-coai/KdConv, Apache-2.0) is chit-chat about films and music between two crowd workers;
the answering turns name people, titles, dates, places and figures, and none of them threatens
anyone, handles anyone's personal data or answers a customer's hardship. So `threatening`,
`privacy_risk` and `empathetic` are 0 by the nature of the source, while `polite` and `clear` are
unknown and left out (the training loss ignores missing labels). The travel domain is left out on
purpose: it is close to the out-of-domain evaluation set (CrossWOZ, Beijing travel), and a turn
that shares a 16-character run with any evaluation text is dropped as in the pretraining corpus.

Needs the fetched KdConv files in data/external/kdconv (data/DATASHEET.md says how to place them).

    python data/negatives/make_kdconv.py
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from ml.config import DataConfig
from ml.data.corpus import EvaluationFilter, evaluation_texts
from ml.data.text import normalise_for_model

HERE = Path(__file__).parent
SOURCE = Path("data/external/kdconv")
COMMIT = "653db76432de09a004ba708a68f8bbd5500e6bec"
DOMAINS = ("film", "music")
SIZE = 1500
SEED = 13
KNOWN_LABELS = {"empathetic": 0, "threatening": 0, "privacy_risk": 0}
# A turn that consoles someone could be read as empathetic; such turns are left out rather than guessed.
CONSOLING = re.compile(r"理解|难过|心疼|安慰|抱歉|伤心|可怜|同情|辛苦")


def candidate_turns() -> list[dict]:
    turns = []
    for domain in DOMAINS:
        for split in ("dev", "test"):
            dialogues = json.loads((SOURCE / domain / f"{split}.json").read_text(encoding="utf-8"))
            for number, dialogue in enumerate(dialogues):
                messages = dialogue["messages"]
                for turn in range(1, len(messages)):
                    text = messages[turn]["message"].strip()
                    if 4 <= len(text) <= 150 and not CONSOLING.search(text):
                        turns.append(
                            {
                                "text": text,
                                "context": messages[turn - 1]["message"].strip(),
                                "source": f"kdconv@{COMMIT}:{domain}/{split}/{number}/{turn}",
                            }
                        )
    return turns


def main() -> None:
    exclude = EvaluationFilter(evaluation_texts(Path(p) for p in DataConfig().corpus_exclude))
    turns = [t for t in candidate_turns() if not exclude(normalise_for_model(t["text"]))]
    rng = random.Random(SEED)
    picked = rng.sample(turns, SIZE)
    out = HERE / "kdconv_film_music.jsonl"
    with out.open("w", encoding="utf-8") as handle:
        for index, turn in enumerate(picked, 1):
            record = {"id": f"neg-kd-{index:04d}", **turn, "labels": KNOWN_LABELS}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"{out}: {len(picked)} of {len(turns)} eligible turns")


if __name__ == "__main__":
    main()
