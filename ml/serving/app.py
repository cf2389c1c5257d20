"""Serve stage: the scoring API (FastAPI), its routes and model locks. `replyqa serve` runs it with
uvicorn; docs at /docs.

Guarantees (the README repeats them for users):
- Auth is checked from the headers, before any body is read; the body is counted as it streams in
  and refused with 413 once it passes `max_body_bytes`, chunked or not; a body that stalls longer
  than `body_timeout_s` gets 408, and a client that does not finish its headers within
  `header_timeout_s` is disconnected (`TimedH11Protocol`).
- Plain scoring and evidence (`explain`) run under separate locks, so a slow explanation never
  holds up plain requests; each request has a deadline (`request_timeout_s`): waiting for the
  model past it answers 503 with Retry-After, scoring past it answers 504 (unbatched scoring stops
  between batches).
- Every error, whatever its status, has the body `{"error": str, "details": ...}`.
- Reply text never reaches the logs: only ids (control characters refused), lengths and decisions.
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
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ml.config import ScoreConfig, ServeConfig
from ml.labels import LABELS
from ml.modeling.scorer import DeadlineExceeded, InvalidReply, Scorer
from ml.serving.batcher import MicroBatcher, NotScheduled, QueueFull
from ml.serving.guard import ApiKeys, RequestGuard
from ml.serving.schemas import (
    ModelOut,
    PiiOut,
    ReplyIn,
    ScoreOut,
    ScoreRequest,
    ScoreResponse,
    SpanOut,
    document_limits,
    error_response,
    error_responses,
)

log = logging.getLogger("replyqa.api")
OPEN_PATHS = {"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
RETRY_AFTER_S = "1"


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
        self.queue_depth = Gauge("replyqa_queue_depth", "Requests waiting for the model", registry=self.registry)
        self.batch_replies = Histogram(
            "replyqa_batch_replies",
            "Replies per model call",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )
        self.model_seconds = Histogram(
            "replyqa_model_seconds",
            "Time per model call",
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
        )


class RequestMetrics:
    """ASGI middleware that counts and times every HTTP request by route and status (plain ASGI:
    Starlette's BaseHTTPMiddleware adds a task group and streams to every request)."""

    def __init__(self, app, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            path = scope["route"].path if scope.get("route") else "unmatched"
            self.metrics.requests.labels(path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)


def create_app(
    model: Scorer | str = "models/default", score: ScoreConfig | None = None, serve: ServeConfig | None = None
) -> FastAPI:
    score, serve = score or ScoreConfig(), serve or ServeConfig()
    state: dict[str, Any] = {"scorer": model if isinstance(model, Scorer) else None}
    plain_lock, explain_lock = threading.Lock(), threading.Lock()  # evidence never queues plain scoring
    metrics = ApiMetrics()
    keys = ApiKeys(os.environ.get("REPLYQA_API_KEYS", ""))

    def start_batcher() -> None:
        if serve.micro_batching and state.get("batcher") is None:
            state["batcher"] = MicroBatcher(
                state["scorer"], serve.batch_max_replies, serve.batch_wait_ms, serve.queue_size, metrics
            )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if state["scorer"] is None:
            state["scorer"] = Scorer.load(model, **score.scorer_options())
        start_batcher()
        yield

    app = FastAPI(
        title="replyqa scoring API",
        version="1",
        lifespan=lifespan,
        description="Scores agent replies on polite, clear, empathetic, threatening, privacy_risk. "
        'Every error answers `{"error": ..., "details": ...}`.',
    )
    bearer = HTTPBearer(auto_error=False)

    async def require_key(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        # RequestGuard already refused bad keys before the body was read; this declares the scheme in OpenAPI
        # and keeps routes safe if the app is mounted without the guard.
        header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
        if not keys.allow(header):
            raise HTTPException(401, "missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})

    async def scorer() -> Scorer:
        if state["scorer"] is None:
            raise HTTPException(503, "model not loaded yet", headers={"Retry-After": RETRY_AFTER_S})
        start_batcher()  # an app used without its lifespan (some test clients) still batches
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

    app.add_middleware(RequestMetrics, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        details = [{"where": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in error.errors()]
        return error_response(422, "invalid request", details)

    @app.exception_handler(StarletteHTTPException)
    async def httperror_response(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), headers=dict(error.headers or {}))

    @app.post(
        "/v1/score",
        response_model=ScoreResponse,
        response_model_exclude_none=True,
        dependencies=[Depends(require_key)],
        responses=error_responses(400, 401, 408, 413, 422, 503, 504),
    )
    async def score_replies(request: ScoreRequest, model: Scorer = Depends(scorer)) -> ScoreResponse:
        deadline = time.monotonic() + serve.request_timeout_s
        replies = request.replies()
        limit = serve.explain_max_items if request.explain else serve.max_items
        if len(replies) > limit:
            what = "with `explain: true`" if request.explain else "in one request"
            raise HTTPException(422, f"at most {limit} replies {what}; got {len(replies)}")
        try:
            texts = [model.check_reply(reply.text, i) for i, reply in enumerate(replies)]
            contexts = [model.check_context(reply.context, i) for i, reply in enumerate(replies)]
        except InvalidReply as error:
            raise HTTPException(422, str(error)) from None
        started = time.perf_counter()
        if state.get("batcher") and not request.explain:
            scores = await _batched(model, replies, texts, contexts, deadline)
        else:  # model work that blocks runs in the thread pool, never on the event loop
            scores = await run_in_threadpool(_locked, model, replies, request.explain, deadline)
        elapsed_ms = (time.perf_counter() - started) * 1000
        return ScoreResponse(
            model=model.info.name,
            version=model.info.version,
            results=[
                _result_out(reply, text, result, elapsed_ms) for reply, text, result in zip(replies, texts, scores)
            ],
        )

    def _busy(reason: str) -> HTTPException:
        return HTTPException(503, f"busy: {reason}", headers={"Retry-After": RETRY_AFTER_S})

    def _too_late() -> HTTPException:
        return HTTPException(504, f"scoring passed the {serve.request_timeout_s} s request deadline")

    async def _batched(model: Scorer, replies: list[ReplyIn], texts: list[str], contexts: list[str], deadline: float):
        try:
            probabilities = await state["batcher"].predict(texts, contexts, deadline)
        except QueueFull as error:
            raise _busy(str(error)) from None
        except NotScheduled:
            raise _busy("the model was not free within the request deadline") from None
        except DeadlineExceeded:
            raise _too_late() from None
        return model.results(probabilities, [reply.text for reply in replies])

    def _locked(model: Scorer, replies: list[ReplyIn], explain: bool, deadline: float):
        lock = explain_lock if explain else plain_lock
        if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise _busy("the model was not free within the request deadline")
        try:
            return model.score(
                [reply.text for reply in replies],
                [reply.context for reply in replies],
                explain=explain,
                deadline=deadline,
            )
        except DeadlineExceeded:
            raise _too_late() from None
        finally:
            lock.release()

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
        return ScoreOut(
            id=reply.id,
            probabilities=result.probabilities,
            decisions=result.decisions,
            evidence=evidence,
            pii=[PiiOut(**finding.to_dict()) for finding in result.pii],
        )

    @app.get(
        "/v1/model", response_model=ModelOut, dependencies=[Depends(require_key)], responses=error_responses(401, 503)
    )
    def model_info(model: Scorer = Depends(scorer)) -> ModelOut:
        info = model.info
        return ModelOut(
            name=info.name,
            version=info.version,
            runtime=model.runtime,
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

    @app.get("/readyz", responses=error_responses(503))
    def readyz() -> JSONResponse:
        if state["scorer"] is None:
            return error_response(503, "model not loaded yet", {"ready": False}, headers={"Retry-After": RETRY_AFTER_S})
        return JSONResponse({"ready": True})

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"description": "Prometheus text format"}, **error_responses(401)},
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


def app_from_env() -> FastAPI:
    """The app of one `replyqa serve --workers N` process: model and config from the environment
    (REPLYQA_MODEL, REPLYQA_CONFIG); the model loads in the process's lifespan."""
    from pathlib import Path

    from ml.config import ProjectConfig, load_config

    config = Path(os.environ.get("REPLYQA_CONFIG", "configs/default.yaml"))
    settings = load_config(config) if config.exists() else ProjectConfig()
    return create_app(os.environ.get("REPLYQA_MODEL", "models/default"), settings.score, settings.serve)
