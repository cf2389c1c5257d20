"""The project config: sections that depend on each other."""

from __future__ import annotations

from pathlib import Path

from ml.config import load_config


def test_split_files_follow_the_split_folder_unless_named(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "data:\n  split_dir: elsewhere/split\ntrain:\n  output_dir: out\n  validation_file: mine/validation.jsonl\n",
        encoding="utf-8",
    )
    train = load_config(config).train
    assert train.train_file == "elsewhere/split/train.jsonl"
    assert train.test_file == "elsewhere/split/test.jsonl"
    assert train.validation_file == "mine/validation.jsonl"  # a file the config names is kept
    assert load_config(Path("configs/default.yaml")).train.train_file == "data/split/train.jsonl"
