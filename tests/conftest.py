"""Shared fixtures: a tiny BERT built and saved locally (the real from_pretrained path, no hub),
a small labelled data set, and a tiny fine-tuned model trained once per session."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABELLED = sorted((ROOT / "data" / "labelled").glob("*.jsonl"))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def corpus_sample(n: int, seed: int = 7) -> list[dict]:
    rows = [json.loads(line) for path in LABELLED for line in path.read_text(encoding="utf-8").splitlines()]
    random.Random(seed).shuffle(rows)
    return rows[:n]


@pytest.fixture(autouse=True, scope="session")
def isolated_mlflow(tmp_path_factory):
    """Every MLflow run of the tests goes to a throw-away store, never to experiments/."""
    store = tmp_path_factory.mktemp("mlflow")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    os.environ["REPLYQA_CACHE"] = str(tmp_path_factory.mktemp("replyqa-cache"))  # ONNX exports made on request
    yield


@pytest.fixture(scope="session")
def small_splits(tmp_path_factory) -> dict[str, Path]:
    """Train/validation/test files drawn from the project's corpus (120/40/40 records)."""
    folder = tmp_path_factory.mktemp("splits")
    rows = corpus_sample(200)
    return {
        "train": write_jsonl(folder / "train.jsonl", rows[:120]),
        "validation": write_jsonl(folder / "validation.jsonl", rows[120:160]),
        "test": write_jsonl(folder / "test.jsonl", rows[160:]),
    }


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory, small_splits) -> Path:
    """A 2-layer, 32-wide BERT with a character vocabulary, saved with save_pretrained."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    from ml.data.text import normalise_for_model

    chars = sorted(
        {
            ch
            for path in small_splits.values()
            for line in path.read_text(encoding="utf-8").splitlines()
            for ch in normalise_for_model(json.loads(line)["text"] + json.loads(line)["context"]).lower()
        }
    )
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars])}
    tokenizer = BertTokenizer(vocab=vocab)
    model = BertForMaskedLM(
        BertConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=256,
        )
    )
    folder = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_trained_model(tmp_path_factory, tiny_base_model, small_splits) -> Path:
    """The full `train` stage on the tiny model: fine-tune, save, thresholds, evaluate, card."""
    from ml.config import TrainConfig
    from ml.modeling.train import train

    output = tmp_path_factory.mktemp("trained") / "model"
    negatives = tmp_path_factory.mktemp("negatives") / "negatives.jsonl"
    lines = [
        json.dumps({"id": f"n{i}", "text": text, "context": "", "source": "test", "labels": {"threatening": 0}})
        for i, text in enumerate(["这部电影2004年上映。", "导演是尼克·卡索维茨。", "他是加拿大的演员。"])
    ]
    negatives.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = TrainConfig(
        negatives=[str(negatives)],
        model_name_or_path=str(tiny_base_model),
        output_dir=str(output),
        train_file=str(small_splits["train"]),
        validation_file=str(small_splits["validation"]),
        test_file=str(small_splits["test"]),
        num_train_epochs=2,
        batch_size=16,
        learning_rate=1e-3,
        max_length=96,
        register_name="replyqa-test",
    )
    train(config)
    return output


@pytest.fixture(scope="session")
def tiny_scorer(tiny_trained_model):
    from ml import Scorer

    return Scorer.load(tiny_trained_model, max_chars=300)


class LiveServer:
    """A real uvicorn server on a free loopback port, in a thread (for tests of the HTTP layer itself)."""

    def __init__(self, app, header_timeout_s: float = 10.0) -> None:
        import socket
        import threading

        import uvicorn

        from ml.serving import timed_protocol

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", http=timed_protocol(header_timeout_s)
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        import time

        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started, "uvicorn did not start"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture()
def live_server():
    """LiveServer(app, header_timeout_s=...) as a context manager."""
    return LiveServer
