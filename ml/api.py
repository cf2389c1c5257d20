"""Serve stage: the scoring API (FastAPI). `replyqa serve` runs it with uvicorn; docs at /docs.

Guarantees (the README repeats them for users):
- Auth is checked from the headers, before any body is read; the body is counted as it streams in
  and refused with 413 once it passes `max_body_bytes`, chunked or not; a body that stalls longer
  than `body_timeout_s` gets 408, and a client that does not finish its headers within
  `header_timeout_s` is disconnected (`TimedH11Protocol`).
- Plain scoring and evidence (`explain`) run under separate locks, so a slow explanation never
  holds up plain requests; each request has a deadline (`request_timeout_s`): waiting for the
  model past it answers 503 with Retry-After, scoring past it stops between batches and answers 504.
- Every error, whatever its status, has the body `{"error": str, "details": ...}`.
- Reply text never reaches the logs: only ids (control characters refused), lengths and decisions.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import threading
import time
import unicodedata
from contextlib import asynccontextmanager
from typing import Any

import h11
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from ml.config import ScoreConfig, ServeConfig
from ml.labels import LABELS
from ml.scorer import VISIBLE_CHAR, DeadlineExceeded, InvalidReply, Scorer
from ml.text import SURROGATE

log = logging.getLogger("replyqa.api")
PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]*$"  # what `_check_id` accepts
OPEN_PATHS = {"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
RETRY_AFTER_S = "1"


def _check_id(value: str | None) -> str | None:
    if value is None:
        return None
    if SURROGATE.search(value) or any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("id must not contain control characters or lone surrogates")
    return value


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: StrictStr = Field(description="The agent's reply.")
    context: StrictStr | None = Field(None, description="The customer's preceding message.")
    id: StrictStr | None = Field(None, max_length=256, description="Your id for this reply; echoed back.")

    _id_is_printable = field_validator("id")(_check_id)


class ScoreRequest(BaseModel):
    """Either one reply (`text`, `context`, `id`) or `items`: a list of replies."""

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
    id: StrictStr | None = Field(None, max_length=256)
    items: list[ReplyIn] | None = Field(None, description="Up to `max_items` replies (see GET /v1/model).")
    explain: StrictBool = Field(False, description="Add evidence spans for each positive label.")

    _id_is_printable = field_validator("id")(_check_id)

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
    start: int = Field(description="Offset of the span in the text as sent.")
    end: int
    text: str
    weight: float


class ScoreOut(BaseModel):
    id: str | None = Field(None, description="Your id, echoed back; absent when you sent none.")
    probabilities: dict[str, float]
    decisions: dict[str, bool]
    evidence: dict[str, list[SpanOut]] | None = Field(None, description="Only with `explain: true`.")


class ScoreResponse(BaseModel):
    model: str
    version: str
    results: list[ScoreOut]


class ModelOut(BaseModel):
    name: str
    version: str
    labels: list[str]
    thresholds: dict[str, float]
    max_chars: int
    max_context_chars: int
    max_items: int
    explain_max_items: int
    test_metrics: dict[str, Any]


class ErrorBody(BaseModel):
    """The one error shape of every non-2xx answer."""

    error: str
    details: Any = None


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    meaning = {
        400: "Malformed request.",
        401: "Missing or invalid API key.",
        408: "The request body stalled.",
        413: "Request body too large.",
        422: "Invalid input: the reason is in `error`, per-field problems in `details`.",
        503: "Busy or not ready: retry after the Retry-After header.",
        504: "The scoring work passed the request deadline.",
    }
    return {status: {"model": ErrorBody, "description": meaning[status]} for status in statuses}


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


def _error(status: int, message: str, details: Any = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message, "details": details}, headers=headers)


class ApiKeys:
    """Bearer keys from REPLYQA_API_KEYS (comma-separated); none set means no auth."""

    def __init__(self, raw: str) -> None:
        self.keys = [key.strip() for key in raw.split(",") if key.strip()]

    def allow(self, authorization: str | None) -> bool:
        if not self.keys:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and any(hmac.compare_digest(token.strip(), key) for key in self.keys)


class RequestGuard:
    """ASGI middleware in front of the app: auth from the headers before the body is read, the body
    counted while it streams (413 past the limit), and a stalled body answered with 408."""

    def __init__(self, app, keys: ApiKeys, open_paths: set[str], max_body_bytes: int, body_timeout_s: float):
        self.app, self.keys, self.open_paths = app, keys, open_paths
        self.max_body_bytes, self.body_timeout_s = max_body_bytes, body_timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        if scope["path"] not in self.open_paths and not self.keys.allow(headers.get("authorization")):
            message = "missing or invalid API key: send `Authorization: Bearer <key>`"
            return await _error(401, message, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return await _error(413, f"request body over {self.max_body_bytes} bytes")(scope, receive, send)
        received = 0

        async def counted_receive():
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout_s)
            except TimeoutError:
                raise HTTPException(408, f"no request data for {self.body_timeout_s} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(413, f"request body over {self.max_body_bytes} bytes")
            return message

        await self.app(scope, counted_receive, send)


class TimedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a header deadline: a connection that has not sent complete
    request headers `header_timeout_s` after it opened (or after its previous response) is closed."""

    header_timeout_s = 10.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._close_if_no_request)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE and self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._header_timer is None and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._close_if_no_request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def _close_if_no_request(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def document_limits(schema: dict[str, Any], max_chars: int, max_context_chars: int, serve: ServeConfig) -> None:
    """Write the configured input rules into the OpenAPI document, so that every request it calls
    valid is one the API accepts: exactly one of `text`/`items`, text with visible content and at
    most `max_chars` characters, context length, printable ids, item counts (fewer with `explain`)."""
    components = schema["components"]["schemas"]
    for name in ("ReplyIn", "ScoreRequest"):
        properties = components[name]["properties"]
        _string_branch(properties["text"]).update(maxLength=max_chars, pattern=VISIBLE_CHAR)
        _string_branch(properties["context"]).update(maxLength=max_context_chars)
        _string_branch(properties["id"]).update(pattern=PRINTABLE)
    request = components["ScoreRequest"]
    items = next(b for b in request["properties"]["items"]["anyOf"] if b.get("type") == "array")
    items.update(minItems=1, maxItems=serve.max_items)
    request["oneOf"] = [
        {"required": ["text"], "properties": {"text": {"type": "string"}, "items": {"type": "null"}}},
        {"required": ["items"], "properties": {"items": {"type": "array"}, "text": {"type": "null"}}},
    ]
    request["if"] = {"required": ["explain"], "properties": {"explain": {"const": True}}}
    request["then"] = {"properties": {"items": {"anyOf": [{"maxItems": serve.explain_max_items}, {"type": "null"}]}}}


def _string_branch(prop: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in prop.get("anyOf", [prop]) if b.get("type") == "string")


def timed_protocol(header_timeout_s: float) -> type[TimedH11Protocol]:
    return type("TimedH11Protocol", (TimedH11Protocol,), {"header_timeout_s": header_timeout_s})


def create_app(
    model: Scorer | str = "models/default", score: ScoreConfig | None = None, serve: ServeConfig | None = None
) -> FastAPI:
    score, serve = score or ScoreConfig(), serve or ServeConfig()
    state: dict[str, Any] = {"scorer": model if isinstance(model, Scorer) else None}
    plain_lock, explain_lock = threading.Lock(), threading.Lock()  # evidence never queues plain scoring
    metrics = ApiMetrics()
    keys = ApiKeys(os.environ.get("REPLYQA_API_KEYS", ""))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if state["scorer"] is None:
            state["scorer"] = Scorer.load(model, **score.scorer_options())
        yield

    app = FastAPI(
        title="replyqa scoring API",
        version="1",
        lifespan=lifespan,
        description="Scores agent replies on polite, clear, empathetic, threatening, privacy_risk. "
        'Every error answers `{"error": ..., "details": ...}`.',
    )
    bearer = HTTPBearer(auto_error=False)

    def require_key(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        # RequestGuard already refused bad keys before the body was read; this declares the scheme in OpenAPI
        # and keeps routes safe if the app is mounted without the guard.
        header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
        if not keys.allow(header):
            raise HTTPException(401, "missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})

    def scorer() -> Scorer:
        if state["scorer"] is None:
            raise HTTPException(503, "model not loaded yet", headers={"Retry-After": RETRY_AFTER_S})
        return state["scorer"]

    # The guard sits inside `observe`, so its 401/413/408 answers are counted, and its errors are raised
    # straight into the endpoint's body read (not through observe's task group).
    open_paths = OPEN_PATHS | ({"/metrics"} if not serve.metrics_require_key else set())
    app.add_middleware(
        RequestGuard,
        keys=keys,
        open_paths=open_paths,
        max_body_bytes=serve.max_body_bytes,
        body_timeout_s=serve.body_timeout_s,
    )

    @app.middleware("http")
    async def observe(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        path = request.scope.get("route").path if request.scope.get("route") else "unmatched"
        metrics.requests.labels(path, str(response.status_code)).inc()
        metrics.latency.labels(path).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        details = [{"where": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in error.errors()]
        return _error(422, "invalid request", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail), headers=dict(error.headers or {}))

    @app.post(
        "/v1/score",
        response_model=ScoreResponse,
        response_model_exclude_none=True,
        dependencies=[Depends(require_key)],
        responses=_responses(400, 401, 408, 413, 422, 503, 504),
    )
    def score_replies(request: ScoreRequest, model: Scorer = Depends(scorer)) -> ScoreResponse:
        deadline = time.monotonic() + serve.request_timeout_s
        replies = request.replies()
        limit = serve.explain_max_items if request.explain else serve.max_items
        if len(replies) > limit:
            what = "with `explain: true`" if request.explain else "in one request"
            raise HTTPException(422, f"at most {limit} replies {what}; got {len(replies)}")
        try:
            texts = [model.check_reply(reply.text, i) for i, reply in enumerate(replies)]
            for i, reply in enumerate(replies):
                model.check_context(reply.context, i)
        except InvalidReply as error:
            raise HTTPException(422, str(error)) from None
        lock = explain_lock if request.explain else plain_lock
        if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise HTTPException(
                503, "busy: the model was not free within the request deadline", headers={"Retry-After": RETRY_AFTER_S}
            )
        started = time.perf_counter()
        try:
            scores = model.score(
                [reply.text for reply in replies],
                [reply.context for reply in replies],
                explain=request.explain,
                deadline=deadline,
            )
        except DeadlineExceeded:
            raise HTTPException(504, f"scoring passed the {serve.request_timeout_s} s request deadline") from None
        finally:
            lock.release()
        elapsed_ms = (time.perf_counter() - started) * 1000
        return ScoreResponse(
            model=model.info.name,
            version=model.info.version,
            results=[
                _result_out(reply, text, result, elapsed_ms) for reply, text, result in zip(replies, texts, scores)
            ],
        )

    def _result_out(reply: ReplyIn, text: str, result, elapsed_ms: float) -> ScoreOut:
        positives = [label for label in LABELS if result.decisions[label]]
        metrics.replies.inc()
        for label in positives:
            metrics.flagged.labels(label).inc()
        log.info(
            "scored id=%s chars=%d positives=%s batch_ms=%.1f", reply.id, len(text), ",".join(positives), elapsed_ms
        )
        evidence = None
        if result.evidence is not None:
            evidence = {label: [SpanOut(**vars(span)) for span in spans] for label, spans in result.evidence.items()}
        return ScoreOut(id=reply.id, probabilities=result.probabilities, decisions=result.decisions, evidence=evidence)

    @app.get("/v1/model", response_model=ModelOut, dependencies=[Depends(require_key)], responses=_responses(401, 503))
    def model_info(model: Scorer = Depends(scorer)) -> ModelOut:
        info = model.info
        return ModelOut(
            name=info.name,
            version=info.version,
            labels=list(LABELS),
            thresholds=info.thresholds,
            max_chars=model.max_chars,
            max_context_chars=model.max_context_chars,
            max_items=serve.max_items,
            explain_max_items=serve.explain_max_items,
            test_metrics=info.test_metrics,
        )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", responses=_responses(503))
    def readyz() -> JSONResponse:
        if state["scorer"] is None:
            return _error(503, "model not loaded yet", {"ready": False}, headers={"Retry-After": RETRY_AFTER_S})
        return JSONResponse({"ready": True})

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"description": "Prometheus text format"}, **_responses(401)},
    )
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            limits = state["scorer"] or score
            document_limits(schema, limits.max_chars, limits.max_context_chars, serve)
            if not keys.keys:  # auth is off: do not advertise a key the API does not ask for
                schema.get("components", {}).pop("securitySchemes", None)
                for operation in (op for path in schema["paths"].values() for op in path.values()):
                    operation.pop("security", None)
                    operation["responses"].pop("401", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app
