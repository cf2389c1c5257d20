"""Draw data/ood_fresh's turns: CrossWOZ system turns (val and test, the commit and files of
data/ood/SOURCE.md) that data/ood does not hold, for a second, untouched off-domain sample.

One turn a dialogue, drawn at random among the system turns that follow a user turn and have at
least 4 characters; a turn is refused when data/ood holds it or when its normalised text reaches
rapidfuzz ratio 85 against a data/ood text, a labelled training text or a turn already drawn.
Writes the unlabelled turns (id, text, context, source) for the annotators to `out`.

    python data/ood_fresh/make_sample.py /tmp/cw /tmp/oodf/sample.jsonl   # /tmp/cw: val.json, test.json
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from rapidfuzz import fuzz, process

from ml.data.records import load_labelled, normalise_text

COMMIT = "df82c9fdff91b9b130f2d6b89110d3870ba6260e"
PER_SPLIT = 400
SEED = 2028


def main(folder: Path, out: Path) -> None:
    ood = load_labelled(["data/ood/crosswoz_sys.jsonl"])
    taken = set(ood["source"])
    labelled = load_labelled(sorted(Path("data/labelled").glob("*.jsonl")))
    refuse = [normalise_text(t) for t in [*ood["text"], *labelled["text"]]]
    rng = random.Random(SEED)
    drawn = []
    for split in ("val", "test"):
        dialogues = json.loads((folder / f"{split}.json").read_text(encoding="utf-8"))
        ids = sorted(dialogues, key=int)
        rng.shuffle(ids)
        kept = 0
        for did in ids:
            if kept == PER_SPLIT:
                break
            messages = dialogues[did]["messages"]
            eligible = [
                i
                for i in range(1, len(messages))
                if messages[i]["role"] == "sys"
                and messages[i - 1]["role"] == "usr"
                and len(messages[i]["content"].strip()) >= 4
                and f"crosswoz@{COMMIT}:{split}/{did}/{i}" not in taken
            ]
            if not eligible:
                continue
            i = rng.choice(eligible)
            text = normalise_text(messages[i]["content"])
            if process.extractOne(text, refuse, scorer=fuzz.ratio, score_cutoff=85):
                continue
            refuse.append(text)
            kept += 1
            drawn.append(
                {
                    "id": f"oodf-cw-{len(drawn) + 1:04d}",
                    "text": messages[i]["content"],
                    "context": messages[i - 1]["content"],
                    "source": f"crosswoz@{COMMIT}:{split}/{did}/{i}",
                }
            )
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in drawn), encoding="utf-8")
    print(f"{out}: {len(drawn)} turns")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
