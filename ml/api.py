"""Serve stage: the scoring API (FastAPI). `replyqa serve` runs it with uvicorn; docs at /docs.

The model loads once at start-up; model calls are serialised with a lock (one CPU model, many
request threads). Reply text never reaches the logs: only ids, lengths, latencies and decisions.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from ml.config import ScoreConfig
from ml.labels import LABELS
from ml.scorer import InvalidReply, Scorer

MAX_ITEMS = 256
MAX_BODY_BYTES = 2 * 1024 * 1024
log = logging.getLogger("replyqa.api")


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: StrictStr = Field(description="The agent's reply.")
    context: StrictStr | None = Field(None, description="The customer's preceding message.")
    id: StrictStr | None = Field(None, description="Your id for this reply; echoed back.")


class ScoreRequest(BaseModel):
    """Either one reply (`text`, `context`, `id`) or `items`: a list of up to 256 replies."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "text": "王先生您好，您本期应还1,280元，请于6月15日前在App还款。",
                    "context": "我这个月要还多少？",
                    "id": "c-1",
                },
                {"items": [{"text": "再不还钱就把你欠钱的事发到你们公司群里。", "id": "c-2"}], "explain": True},
            ]
        },
    )
    text: StrictStr | None = None
    context: StrictStr | None = None
    id: StrictStr | None = None
    items: list[ReplyIn] | None = Field(None, max_length=MAX_ITEMS)
    explain: bool = Field(False, description="Add evidence spans for each positive label.")

    @model_validator(mode="after")
    def one_form(self) -> ScoreRequest:
        if (self.items is None) == (self.text is None):
            raise ValueError("send either `text` (one reply) or `items` (a list of replies), not both or neither")
        if self.items is not None and not self.items:
            raise ValueError("`items` must hold at least one reply")
        return self

    def replies(self) -> list[ReplyIn]:
        return self.items if self.items is not None else [ReplyIn(text=self.text, context=self.context, id=self.id)]


class SpanOut(BaseModel):
    start: int
    end: int
    text: str
    weight: float


class ScoreOut(BaseModel):
    id: str | None
    probabilities: dict[str, float]
    decisions: dict[str, bool]
    evidence: dict[str, list[SpanOut]] | None = None


class ScoreResponse(BaseModel):
    model: str
    version: str
    results: list[ScoreOut]


class ApiMetrics:
    """Prometheus metrics in the app's own registry (so several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("replyqa_requests_total", "HTTP requests", ["path", "status"], registry=self.registry)
        self.latency = Histogram(
            "replyqa_request_seconds",
            "Request latency",
            ["path"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.replies = Counter("replyqa_replies_scored_total", "Replies scored", registry=self.registry)
        self.flagged = Counter(
            "replyqa_flagged_total", "Replies decided positive, per label", ["label"], registry=self.registry
        )


def _error(status: int, message: str, details: Any = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message, "details": details})


def create_app(model: Scorer | str = "models/default", settings: ScoreConfig | None = None) -> FastAPI:
    settings = settings or ScoreConfig()
    state: dict[str, Any] = {"scorer": model if isinstance(model, Scorer) else None}
    lock = threading.Lock()
    metrics = ApiMetrics()
    api_keys = {key.strip() for key in os.environ.get("REPLYQA_API_KEYS", "").split(",") if key.strip()}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if state["scorer"] is None:
            state["scorer"] = Scorer.load(model, max_chars=settings.max_chars, batch_size=settings.batch_size)
        yield

    app = FastAPI(
        title="replyqa scoring API",
        version="1",
        lifespan=lifespan,
        description="Scores agent replies on polite, clear, empathetic, threatening, privacy_risk.",
    )
    bearer = HTTPBearer(auto_error=False)

    def require_key(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if api_keys and (credentials is None or credentials.credentials not in api_keys):
            raise HTTPException(
                401,
                "missing or invalid API key: send `Authorization: Bearer <key>`",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def scorer() -> Scorer:
        if state["scorer"] is None:
            raise HTTPException(503, "model not loaded yet")
        return state["scorer"]

    @app.middleware("http")
    async def observe(request: Request, call_next):
        started = time.perf_counter()
        declared = request.headers.get("content-length")
        if declared is None and request.method == "POST":  # chunked upload: measure the body itself
            declared = str(len(await request.body()))
        if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            response = _error(413, f"request body over {MAX_BODY_BYTES} bytes")
        else:
            response = await call_next(request)
        path = request.scope.get("route").path if request.scope.get("route") else "unmatched"
        metrics.requests.labels(path, str(response.status_code)).inc()
        metrics.latency.labels(path).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        details = [{"where": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in error.errors()]
        return _error(422, "invalid request", details)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        response = _error(error.status_code, str(error.detail))
        response.headers.update(error.headers or {})
        return response

    @app.post(
        "/v1/score", response_model=ScoreResponse, response_model_exclude_none=True, dependencies=[Depends(require_key)]
    )
    def score(request: ScoreRequest, model: Scorer = Depends(scorer)) -> ScoreResponse:
        replies = request.replies()
        try:
            texts = [model.check_reply(reply.text, i) for i, reply in enumerate(replies)]
        except InvalidReply as error:
            raise HTTPException(422, str(error)) from None
        started = time.perf_counter()
        with lock:
            scores = model.score(texts, [reply.context or "" for reply in replies], explain=request.explain)
        elapsed_ms = (time.perf_counter() - started) * 1000
        results = []
        for reply, text, result in zip(replies, texts, scores):
            positives = [label for label in LABELS if result.decisions[label]]
            metrics.replies.inc()
            for label in positives:
                metrics.flagged.labels(label).inc()
            log.info(
                "scored id=%s chars=%d positives=%s batch_ms=%.1f", reply.id, len(text), ",".join(positives), elapsed_ms
            )
            results.append(
                ScoreOut(
                    id=reply.id,
                    probabilities=result.probabilities,
                    decisions=result.decisions,
                    evidence=(
                        {k: [SpanOut(**vars(s)) for s in v] for k, v in result.evidence.items()}
                        if result.evidence is not None
                        else None
                    ),
                )
            )
        return ScoreResponse(model=model.info.name, version=model.info.version, results=results)

    @app.get("/v1/model", dependencies=[Depends(require_key)])
    def model_info(model: Scorer = Depends(scorer)) -> dict[str, Any]:
        info = model.info
        return {
            "name": info.name,
            "version": info.version,
            "labels": list(LABELS),
            "thresholds": info.thresholds,
            "max_chars": model.max_chars,
            "max_items": MAX_ITEMS,
            "test_metrics": info.test_metrics,
        }

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        ready = state["scorer"] is not None
        return JSONResponse(status_code=200 if ready else 503, content={"ready": ready})

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
