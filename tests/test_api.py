import pytest
from fastapi.testclient import TestClient

from ml.config import ServeConfig
from ml.labels import LABELS
from ml.serving import create_app


@pytest.fixture()
def client(tiny_scorer):
    with TestClient(create_app(tiny_scorer)) as test_client:
        yield test_client


def test_one_reply(client):
    response = client.post("/v1/score", json={"text": "您好，您本期应还1,280元。", "context": "要还多少", "id": "x1"})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "replyqa-test" and body["version"]
    [result] = body["results"]
    assert result["id"] == "x1" and set(result["probabilities"]) == set(LABELS)
    assert "evidence" not in result


def test_a_list_with_evidence(client):
    items = [{"text": "再不还钱就把你欠钱的事发到公司群里", "id": "a"}, {"text": "请稍等", "id": "b"}]
    response = client.post("/v1/score", json={"items": items, "explain": True})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["id"] for r in results] == ["a", "b"]
    for result in results:
        assert set(result["evidence"]) == {label for label, yes in result["decisions"].items() if yes}


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"text": "   "}, 422, "empty"),
        ({"text": "好" * 301}, 422, "maximum is 300"),
        ({"items": [{"text": "好"}] * (ServeConfig().max_items + 1)}, 422, "at most 256"),
        ({"items": []}, 422, "at least one"),
        ({"text": 123}, 422, "valid string"),
        ({"items": [{"text": ["a"]}]}, 422, "valid string"),
        ({"text": "好", "items": [{"text": "好"}]}, 422, "not both"),
        ({}, 422, "either"),
        ({"text": "好", "colour": "red"}, 422, "Extra inputs"),
        ({"items": [{"text": "您好"}, {"text": ""}]}, 422, "item 1"),
        ({"items": [{"text": "好的，我们会处理"}], "context": "我失业了", "id": "top"}, 422, "inside each item"),
    ],
)
def test_bad_requests_get_4xx_with_a_json_reason(client, body, status, words):
    response = client.post("/v1/score", json=body)
    assert response.status_code == status
    assert words in str(response.json())


def test_malformed_json_and_oversized_bodies(client):
    response = client.post("/v1/score", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["error"] == "invalid request"
    big = b'{"text": "' + "好".encode() * 1_000_000 + b'"}'
    response = client.post("/v1/score", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "bytes" in response.json()["error"]
    chunked = client.post(
        "/v1/score", content=iter([big[:1_000_000], big[1_000_000:]]), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413


def test_model_health_and_readiness(client, tiny_scorer):
    info = client.get("/v1/model").json()
    assert info["labels"] == list(LABELS) and info["thresholds"] == tiny_scorer.info.thresholds
    assert "macro_f1" in info["test_metrics"] and info["runtime"] == tiny_scorer.runtime
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_api_keys(tiny_scorer, monkeypatch):
    monkeypatch.setenv("REPLYQA_API_KEYS", "k1, k2")
    with TestClient(create_app(tiny_scorer)) as client:
        assert client.post("/v1/score", json={"text": "您好"}).status_code == 401
        wrong = client.post("/v1/score", json={"text": "您好"}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "API key" in wrong.json()["error"]
        assert (
            client.post("/v1/score", json={"text": "您好"}, headers={"Authorization": "Bearer k2"}).status_code == 200
        )
        assert client.get("/healthz").status_code == 200  # probes stay open


def test_metrics_count_requests_and_flags(client):
    client.post("/v1/score", json={"items": [{"text": "您好"}, {"text": "请稍等"}]})
    client.post("/v1/score", json={"text": ""})
    text = client.get("/metrics").text
    assert 'replyqa_requests_total{path="/v1/score",status="200"} 1.0' in text
    assert 'replyqa_requests_total{path="/v1/score",status="422"} 1.0' in text
    assert "replyqa_replies_scored_total 2.0" in text
    assert "replyqa_request_seconds_bucket" in text


def test_reply_text_never_reaches_the_logs(client, caplog):
    caplog.set_level("DEBUG")
    client.post("/v1/score", json={"text": "张三的身份证号是110101199001011234", "id": "secret-1"})
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "secret-1" in logged and "110101199001011234" not in logged and "张三" not in logged
