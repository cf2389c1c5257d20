"""Micro-batching in the API: concurrent requests share model calls, each caller gets its own
results in its own order, a full queue answers 503, and a request whose deadline passes in the queue
is never scored."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np

from ml.config import ServeConfig
from ml.serving import create_app
from ml.serving.batcher import MicroBatcher, _Request

TEXTS = [f"您好，您本期应还{100 + i}元，请在{i % 28 + 1}号前还款。" for i in range(24)]


def slow_predictions(monkeypatch, scorer, seconds: float) -> list[int]:
    """Make each model call take `seconds`; return the list of call sizes as it fills."""
    real = type(scorer).predict_proba
    sizes: list[int] = []

    def slow(self, texts, contexts=None, deadline=None):
        sizes.append(len(texts))
        time.sleep(seconds)
        return real(self, texts, contexts, deadline)

    monkeypatch.setattr(type(scorer), "predict_proba", slow)
    return sizes


def test_concurrent_callers_share_model_calls_and_get_their_own_results(tiny_scorer, monkeypatch, live_server):
    expected = {text: tiny_scorer.score(text).probabilities for text in TEXTS}
    sizes = slow_predictions(monkeypatch, tiny_scorer, 0.2)
    answers: dict[int, httpx.Response] = {}
    serve = ServeConfig(batch_wait_ms=20, batch_max_replies=64)
    with live_server(create_app(tiny_scorer, serve=serve)) as server:

        def call(i: int) -> None:
            # two replies per request, so each caller also checks the order within its own rows
            body = {"items": [{"id": "a", "text": TEXTS[i]}, {"id": "b", "text": TEXTS[-1 - i]}]}
            answers[i] = httpx.post(f"{server.url}/v1/score", json=body, timeout=20)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        metrics = httpx.get(f"{server.url}/metrics").text
    assert all(answer.status_code == 200 for answer in answers.values())
    for i, answer in answers.items():
        first, second = answer.json()["results"]
        assert (first["id"], second["id"]) == ("a", "b")
        assert first["probabilities"] == expected[TEXTS[i]]
        assert second["probabilities"] == expected[TEXTS[-1 - i]]
    assert sum(sizes) == 24 and len(sizes) < 12  # fewer model calls than requests
    assert "replyqa_batch_replies_count" in metrics and "replyqa_queue_depth" in metrics


def test_a_full_queue_answers_503_at_once(tiny_scorer, monkeypatch, live_server):
    slow_predictions(monkeypatch, tiny_scorer, 1.0)
    serve = ServeConfig(queue_size=1, batch_wait_ms=0, request_timeout_s=5)
    statuses: list[int] = []
    with live_server(create_app(tiny_scorer, serve=serve)) as server:
        url = f"{server.url}/v1/score"

        def call(text: str) -> None:
            statuses.append(httpx.post(url, json={"text": text}, timeout=10).status_code)

        first = threading.Thread(target=call, args=("第一条",))
        first.start()
        time.sleep(0.3)  # the worker is busy with the first request
        second = threading.Thread(target=call, args=("第二条",))
        second.start()
        time.sleep(0.3)  # the second waits in the queue, which is now full
        started = time.monotonic()
        refused = httpx.post(url, json={"text": "第三条"}, timeout=10)
        refused_after = time.monotonic() - started
        first.join()
        second.join()
    assert refused.status_code == 503 and refused.headers["retry-after"] and "busy" in refused.json()["error"]
    assert refused_after < 0.5
    assert sorted(statuses) == [200, 200]


def test_a_request_whose_deadline_passes_in_the_queue_is_never_scored(tiny_scorer, monkeypatch, live_server):
    sizes = slow_predictions(monkeypatch, tiny_scorer, 1.0)
    serve = ServeConfig(request_timeout_s=0.5, batch_wait_ms=0)
    with live_server(create_app(tiny_scorer, serve=serve)) as server:
        url = f"{server.url}/v1/score"
        blocker = threading.Thread(target=lambda: httpx.post(url, json={"text": "第一条"}, timeout=10))
        blocker.start()
        time.sleep(0.2)
        late = httpx.post(url, json={"text": "第二条"}, timeout=10)
        blocker.join()
        time.sleep(0.3)
    assert late.status_code == 503 and "deadline" in late.json()["error"]
    assert sizes == [1]  # only the first request reached the model


def test_a_batched_request_whose_deadline_passes_while_it_is_scored_gets_504(tiny_scorer, monkeypatch):
    from fastapi.testclient import TestClient

    slow_predictions(monkeypatch, tiny_scorer, 1.0)
    with TestClient(create_app(tiny_scorer, serve=ServeConfig(request_timeout_s=0.3))) as client:
        late = client.post("/v1/score", json={"items": [{"text": text} for text in TEXTS]})
    assert late.status_code == 504 and "deadline" in late.json()["error"]  # the model took it: not "busy"


def test_serve_with_two_worker_processes(tiny_trained_model, tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "ml.cli", "serve", "--model", str(tiny_trained_model), "--port", str(port)]
    server = subprocess.Popen([*command, "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        answers = [httpx.post(f"http://127.0.0.1:{port}/v1/score", json={"text": t}, timeout=10) for t in TEXTS[:6]]
        assert [a.status_code for a in answers] == [200] * 6
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0].decode(errors="replace")
    assert log.count("Started server process") == 2


def test_a_request_given_up_in_the_queue_takes_no_room_in_the_batch():
    """A caller that gave up (its future cancelled) must not use up max_batch for the live callers."""
    release, calls = threading.Event(), []

    class FakeScorer:
        def predict_proba(self, texts, contexts=None, deadline=None):
            calls.append(len(texts))
            if len(calls) == 1:
                release.wait(5)  # hold the worker while the queue fills
            return np.zeros((len(texts), 5), dtype=np.float32)

    batcher = MicroBatcher(FakeScorer(), max_batch=4, wait_ms=500)
    far = time.monotonic() + 30
    first = batcher._submit(_Request(["先到"], [""], far))
    while not calls:
        time.sleep(0.01)
    batcher._submit(_Request(["放弃"] * 3, [""] * 3, far)).cancel()
    live = [batcher._submit(_Request([text] * 2, [""] * 2, far)) for text in ("甲", "乙")]
    release.set()
    for future in [first, *live]:
        assert future.result(timeout=5).shape[1] == 5
    assert calls == [1, 4]  # both live requests in one call; the 3 given-up replies never counted
