"""Regression tests for the API defects of the outside probe (issue "Hardening"): body limits that
stream, auth before the body, timeouts, deadlines, explain budgets, one error shape, input rules."""

import json
import socket
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from ml.config import ServeConfig
from ml.serving import create_app


@pytest.fixture()
def client(tiny_scorer):
    with TestClient(create_app(tiny_scorer)) as test_client:
        yield test_client


def raw_request(port: int, head: bytes, body_pieces=(), pause: float = 0.0, read_timeout: float = 5.0) -> bytes:
    """Send a hand-made request over a socket, piece by piece, and return what the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as connection:
        connection.sendall(head)
        for piece in body_pieces:
            try:
                connection.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server stopped reading, as it should
            time.sleep(pause)
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and b'"error"' in answer:
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return answer


# ---------------------------------------------------------------- body size, auth, timeouts (live server)


def test_a_chunked_body_is_cut_off_at_the_limit_not_read_to_the_end(tiny_scorer, live_server):
    serve = ServeConfig(max_body_bytes=64 * 1024)
    head = b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    piece = b"%x\r\n%s\r\n" % (16 * 1024, b"a" * 16 * 1024)
    with live_server(create_app(tiny_scorer, serve=serve)) as server:
        # 40 pieces = 640 KiB, ten times the limit, and the body never ends (no closing 0-chunk):
        # a server that reads the whole body before checking would never answer.
        answer = raw_request(server.port, head, [piece] * 40, pause=0.005)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"request body over 65536 bytes" in answer


def test_auth_is_checked_before_the_body_is_read(tiny_scorer, monkeypatch, live_server):
    monkeypatch.setenv("REPLYQA_API_KEYS", "k1")
    head = b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    with live_server(create_app(tiny_scorer)) as server:
        started = time.monotonic()
        answer = raw_request(server.port, head)  # headers only: the promised megabyte never comes
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert time.monotonic() - started < 3
        assert httpx.get(f"{server.url}/metrics").status_code == 401  # /metrics needs the key too


def test_a_key_with_bytes_that_are_not_ascii_gets_401_not_500(tiny_scorer, monkeypatch):
    monkeypatch.setenv("REPLYQA_API_KEYS", "k1")
    with TestClient(create_app(tiny_scorer)) as client:
        for header in (b"Bearer \xe9", "Bearer k1é".encode()):  # a raw latin-1 byte, UTF-8 text
            answer = client.post("/v1/score", json={"text": "您好"}, headers={"Authorization": header})
            assert answer.status_code == 401 and "API key" in answer.json()["error"]


def test_metrics_can_be_opened_for_scrapers(tiny_scorer, monkeypatch):
    monkeypatch.setenv("REPLYQA_API_KEYS", "k1")
    with TestClient(create_app(tiny_scorer, serve=ServeConfig(metrics_require_key=False))) as client:
        assert client.get("/metrics").status_code == 200
        assert client.post("/v1/score", json={"text": "您好"}).status_code == 401


def test_a_client_that_never_finishes_its_headers_is_disconnected(tiny_scorer, live_server):
    with live_server(create_app(tiny_scorer), header_timeout_s=0.5) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
            connection.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\n")  # no blank line: headers never end
            started = time.monotonic()
            assert connection.recv(1024) == b""  # closed by the server, not by our 5 s timeout
            assert time.monotonic() - started < 3
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as idle:
            assert idle.recv(1024) == b""  # a connection that sends nothing is closed too


def test_a_stalled_body_gets_408(tiny_scorer, live_server):
    serve = ServeConfig(body_timeout_s=0.5)
    head = b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    with live_server(create_app(tiny_scorer, serve=serve)) as server:
        answer = raw_request(server.port, head, [b'{"text": "'])
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


# ---------------------------------------------------------------- work per request is bounded


def test_context_length_is_limited(tiny_scorer):
    with TestClient(create_app(tiny_scorer)) as client:
        too_long = client.post(
            "/v1/score", json={"text": "您好", "context": "啊" * (tiny_scorer.max_context_chars + 1)}
        )
        assert too_long.status_code == 422 and "context has" in too_long.json()["error"]
        fine = client.post("/v1/score", json={"text": "您好", "context": "啊" * tiny_scorer.max_context_chars})
        assert fine.status_code == 200


def test_explain_is_limited_per_request(tiny_scorer):
    serve = ServeConfig(explain_max_items=2)
    with TestClient(create_app(tiny_scorer, serve=serve)) as client:
        items = [{"text": "您好"}] * 3
        refused = client.post("/v1/score", json={"items": items, "explain": True})
        assert refused.status_code == 422 and "at most 2 replies with `explain: true`" in refused.json()["error"]
        assert client.post("/v1/score", json={"items": items}).status_code == 200


def test_evidence_on_a_long_reply_costs_a_bounded_number_of_rescores(tiny_scorer, monkeypatch):
    calls = []
    real = type(tiny_scorer).predict_proba

    def counting(self, texts, contexts=None, deadline=None):
        calls.append(len(texts))
        return real(self, texts, contexts, deadline)

    monkeypatch.setattr(type(tiny_scorer), "predict_proba", counting)
    long_reply = "您好，" + "，".join(f"第{i}期应还{i * 37}元请按时还款" for i in range(60))
    result = tiny_scorer.score(long_reply[:300], explain=True)
    assert calls[0] == 1 and all(n <= tiny_scorer.explain_units for n in calls[1:])
    assert set(result.evidence) == {label for label, yes in result.decisions.items() if yes}


def test_a_request_past_its_deadline_gets_504_and_frees_the_model(tiny_scorer):
    serve = ServeConfig(request_timeout_s=1e-6, micro_batching=False)  # batched requests: tests/test_api_batching.py
    with TestClient(create_app(tiny_scorer, serve=serve)) as client:
        late = client.post("/v1/score", json={"text": "您好"})
        assert late.status_code == 504 and "deadline" in late.json()["error"]
        assert client.post("/v1/score", json={"text": "您好"}).status_code == 504  # the lock was released


def test_explanations_do_not_hold_up_plain_scoring_and_a_busy_model_answers_503(tiny_scorer, monkeypatch, live_server):
    real_explain = type(tiny_scorer).explain

    def slow_explain(self, *args, **kwargs):
        time.sleep(1.5)
        return real_explain(self, *args, **kwargs)

    monkeypatch.setattr(type(tiny_scorer), "explain", slow_explain)
    serve = ServeConfig(request_timeout_s=0.8)
    with live_server(create_app(tiny_scorer, serve=serve)) as server:
        url = f"{server.url}/v1/score"
        explained = {}
        slow = threading.Thread(
            target=lambda: explained.update(r=httpx.post(url, json={"text": "您好", "explain": True}, timeout=10))
        )
        slow.start()
        time.sleep(0.2)
        started = time.monotonic()
        plain = httpx.post(url, json={"text": "您好"}, timeout=10)
        plain_seconds = time.monotonic() - started
        second = httpx.post(url, json={"text": "请稍等", "explain": True}, timeout=10)
        slow.join()
    assert plain.status_code == 200 and plain_seconds < 1.0
    assert second.status_code == 503 and second.headers["retry-after"] and "busy" in second.json()["error"]
    assert explained["r"].status_code in (200, 504)  # one slow explain still ends within its deadline


# ---------------------------------------------------------------- input rules


@pytest.mark.parametrize(
    "body, words",
    [
        ({"text": "\ud800您好"}, "lone surrogate"),
        ({"text": "您好", "context": "\udfff"}, "lone surrogate"),
        ({"items": [{"text": "您好"}, {"text": "好\ud800"}]}, "item 1"),
        ({"text": "您好", "id": "a\ud800"}, "body.id"),
        ({"text": "您好", "id": "a\nINFO forged log line"}, "control characters"),
        ({"text": "您好", "id": "a\x00b"}, "control characters"),
        ({"text": "您好", "id": "a\u2028INFO forged log line"}, "line separators"),  # a line break in log viewers
        ({"text": "您好", "id": "user\u202e1gpj.exe"}, "bidi controls"),  # shown reversed
        ({"text": "\x00\x00"}, "empty"),
        ({"text": "\u200b\u200b\ufeff"}, "empty"),
        ({"text": "您好", "explain": "yes"}, "valid boolean"),
        ({"text": "您好", "explain": 1}, "valid boolean"),
    ],
)
def test_invalid_text_ids_and_flags_get_422_not_500(client, body, words):
    payload = json.dumps(body, ensure_ascii=True).encode()  # \ud800 travels as a JSON escape, as a client sends it
    response = client.post("/v1/score", content=payload, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert words in json.dumps(response.json(), ensure_ascii=False)


def test_evidence_offsets_index_the_text_as_sent(client):
    text = "   再不还钱就把你欠钱的事发到公司群里"
    response = client.post("/v1/score", json={"items": [{"text": text}], "explain": True})
    for spans in response.json()["results"][0]["evidence"].values():
        for span in spans:
            assert text[span["start"] : span["end"]] == span["text"]


# ---------------------------------------------------------------- one error shape, documented


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("get", "/nowhere", None, 404),
        ("get", "/v1/score", None, 405),
        ("post", "/v1/score", b"[" * 100_000, 400),  # nesting too deep for the JSON parser
        ("post", "/v1/score", b"{not json", 422),
    ],
)
def test_every_error_has_the_same_shape(client, method, path, body, status):
    response = client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert set(response.json()) == {"error", "details"} and response.json()["error"]


def test_openapi_documents_the_errors_and_the_optional_id(tiny_scorer, monkeypatch):
    with TestClient(create_app(tiny_scorer)) as client:
        open_schema = client.get("/openapi.json").json()
    assert "security" not in open_schema["paths"]["/v1/score"]["post"]  # no keys set: none advertised
    monkeypatch.setenv("REPLYQA_API_KEYS", "k1")
    with TestClient(create_app(tiny_scorer)) as client:
        schema = client.get("/openapi.json").json()
    responses = schema["paths"]["/v1/score"]["post"]["responses"]
    assert {"400", "401", "408", "413", "422", "503", "504"} <= set(responses)
    assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "id" not in schema["components"]["schemas"]["ScoreOut"].get("required", [])
    text = schema["components"]["schemas"]["ReplyIn"]["properties"]["text"]
    assert text["maxLength"] == tiny_scorer.max_chars and text["pattern"]


def test_ids_are_logged_only_when_printable(client, caplog):
    caplog.set_level("INFO")
    client.post("/v1/score", json={"text": "您好", "id": "x\nforged"})
    client.post("/v1/score", json={"text": "您好", "id": "ok-1"})
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "forged" not in logged and "id=ok-1" in logged
