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

    python data/negatives/make_kdconv.py              # the 1,500 turns used in training
    python data/negatives/make_kdconv.py --more 3000  # 3,000 turns the first file does not hold
"""

from __future__ import annotations

import argparse
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


def write(turns: list[dict], out: Path, first_id: int) -> None:
    with out.open("w", encoding="utf-8") as handle:
        for index, turn in enumerate(turns, first_id):
            record = {"id": f"neg-kd-{index:04d}", **turn, "labels": KNOWN_LABELS}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"{out}: {len(turns)} turns")


def main(more: int) -> None:
    exclude = EvaluationFilter(evaluation_texts(Path(p) for p in DataConfig().corpus_exclude))
    turns = [t for t in candidate_turns() if not exclude(normalise_for_model(t["text"]))]
    print(f"{len(turns)} eligible turns")
    if not more:
        write(random.Random(SEED).sample(turns, SIZE), HERE / "kdconv_film_music.jsonl", 1)
        return
    # Only turns the committed file does not hold, so that it stays as it is.
    taken = {json.loads(line)["source"] for line in (HERE / "kdconv_film_music.jsonl").open(encoding="utf-8")}
    rest = [t for t in turns if t["source"] not in taken]
    write(random.Random(SEED + 1).sample(rest, more), HERE / "kdconv_film_music_more.jsonl", SIZE + 1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--more", type=int, default=0, help="write this many turns the first file lacks to *_more.jsonl (it stays)"
    )
    main(parser.parse_args().more)
