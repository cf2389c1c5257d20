"""Rebuild `nfkc_t2s.charsmap`: the text normalisation every replyqa tokenizer carries.

For every code point c: NFKC(c), then each character through OpenCC's one-to-one Traditional to
Simplified table (TSCharacters, first choice). The map is compiled by SentencePiece's normaliser
builder into the charsmap format that `tokenizers.normalizers.Precompiled` reads (one trie, one pass).
A character map cannot do OpenCC's phrase-level choices (乾隆 becomes 干隆); that is the price of
running inside any tokenizer. Needs the `sentencepiece` package (a dev dependency):

    python -m ml.modeling.resources.build_charsmap
"""

from __future__ import annotations

import tempfile
import unicodedata
from pathlib import Path

TARGET = Path(__file__).with_name("nfkc_t2s.charsmap")


def traditional_to_simplified_chars() -> dict[str, str]:
    import opencc

    table = Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt"
    mapping = {}
    for line in table.read_text(encoding="utf-8").splitlines():
        source, _, targets = line.partition("\t")
        if len(source) == 1 and targets:
            mapping[source] = targets.split(" ")[0]
    return mapping


def normalisation_rules() -> list[tuple[str, str]]:
    t2s = traditional_to_simplified_chars()
    rules = []
    for point in range(0x110000):
        if 0xD800 <= point <= 0xDFFF:
            continue
        char = chr(point)
        target = "".join(t2s.get(c, c) for c in unicodedata.normalize("NFKC", char))
        if target and target != char:
            rules.append((char, target))
    return rules


def build_charsmap() -> bytes:
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "rules.tsv").write_text(
            "".join(
                " ".join(f"{ord(c):X}" for c in source) + "\t" + " ".join(f"{ord(c):X}" for c in target) + "\n"
                for source, target in normalisation_rules()
            ),
            encoding="utf-8",
        )
        (work / "input.txt").write_text("您好，请问有什么可以帮您\nabc def 123\n" * 50, encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(work / "input.txt"),
            model_prefix=str(work / "m"),
            vocab_size=30,
            hard_vocab_limit=False,
            normalization_rule_tsv=str(work / "rules.tsv"),
            character_coverage=1.0,
            add_dummy_prefix=False,
            remove_extra_whitespaces=False,
            minloglevel=2,
        )
        model = sentencepiece_model_pb2.ModelProto()
        model.ParseFromString((work / "m.model").read_bytes())
        return model.normalizer_spec.precompiled_charsmap


if __name__ == "__main__":
    TARGET.write_bytes(build_charsmap())
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes)")
