"""Micro-batching for the API: concurrent requests are gathered into one model call.

One worker thread owns the model for plain scoring. A request puts its replies on a bounded queue
and awaits them (no thread is held while it waits); the worker takes the first waiting request
and, while other callers are in flight, gathers more for at most `wait_ms` or until `max_batch`
replies (a lone request does not wait), scores them in one `predict_proba` call (in length
batches inside), and hands each request its own rows. A full queue is refused at once (the
route answers 503 with Retry-After) instead of letting latency grow without bound; a request
whose deadline passes while it waits is answered with NotScheduled and never scored (503), one
whose deadline passes while its batch is scored with DeadlineExceeded (504).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from ml.modeling.scorer import DeadlineExceeded, Scorer


class QueueFull(RuntimeError):
    """More requests are waiting than the queue holds."""


class NotScheduled(DeadlineExceeded):
    """The request's deadline passed before the model took it; it was never scored."""


@dataclass
class _Request:
    texts: list[str]
    contexts: list[str]
    deadline: float
    result: Future = field(default_factory=Future)


class MicroBatcher:
    def __init__(self, scorer: Scorer, max_batch: int = 32, wait_ms: float = 5.0, queue_size: int = 64, metrics=None):
        self.scorer = scorer
        self.max_batch = max_batch
        self.wait_s = wait_ms / 1000
        self.queue: queue.Queue[_Request] = queue.Queue(maxsize=queue_size)
        self.metrics = metrics
        self._in_flight = 0  # callers between put and answer; the worker waits for more only if some are queued
        self._count_lock = threading.Lock()
        self._worker = threading.Thread(target=self._run, name="replyqa-batcher", daemon=True)
        self._worker.start()

    async def predict(self, texts: list[str], contexts: list[str], deadline: float) -> np.ndarray:
        """Probabilities for one request's replies (already checked), in LABELS order, awaited without
        holding a thread. Raises QueueFull when the queue is full, NotScheduled when `deadline` passes
        while the request waits (it is then never scored) and DeadlineExceeded when it passes while the
        request's batch is scored."""
        future = self._submit(_Request(list(texts), list(contexts), deadline))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), max(0.0, deadline - time.monotonic()) + 0.05)
        except TimeoutError:
            if future.cancelled():  # the timeout cancels a request still queued; a running one cannot be
                raise NotScheduled("the request deadline passed while it waited for the model") from None
            raise DeadlineExceeded("the request deadline passed while its replies were scored") from None

    def _submit(self, request: _Request) -> Future:
        with self._count_lock:
            self._in_flight += 1
        request.result.add_done_callback(self._answered)
        try:
            self.queue.put_nowait(request)
        except queue.Full:
            request.result.cancel()
            raise QueueFull(f"{self.queue.maxsize} requests are already waiting") from None
        if self.metrics:
            self.metrics.queue_depth.set(self.queue.qsize())
        return request.result

    def _answered(self, _: Future) -> None:
        with self._count_lock:
            self._in_flight -= 1

    def _gather(self) -> list[_Request]:
        """Requests for one model call; those whose callers gave up are dropped, not counted."""
        first = self.queue.get()
        while first.result.cancelled():
            first = self.queue.get()
        batch, size = [first], len(first.texts)
        closes = time.monotonic() + self.wait_s
        # A lone request is scored at once; the window is only waited when other callers are in flight.
        while size < self.max_batch and (self._in_flight > len(batch) or not self.queue.empty()):
            try:
                request = self.queue.get(timeout=max(0.0, closes - time.monotonic()))
            except queue.Empty:
                break
            if not request.result.cancelled():
                batch.append(request)
                size += len(request.texts)
        return batch

    def _run(self) -> None:
        while True:
            batch = self._gather()
            now = time.monotonic()
            live = []
            for request in batch:
                if not request.result.set_running_or_notify_cancel():
                    continue  # its caller gave up
                if now > request.deadline:
                    request.result.set_exception(NotScheduled("the request deadline passed in the queue"))
                else:
                    live.append(request)
            if not live:
                continue
            started = time.perf_counter()
            try:
                probabilities = self.scorer.predict_proba(
                    [t for r in live for t in r.texts], [c for r in live for c in r.contexts]
                )
            except Exception as error:  # the callers see the model's error; the worker lives on
                for request in live:
                    request.result.set_exception(error)
                continue
            if self.metrics:
                self.metrics.batch_replies.observe(len(probabilities))
                self.metrics.model_seconds.observe(time.perf_counter() - started)
                self.metrics.queue_depth.set(self.queue.qsize())
            start = 0
            for request in live:
                request.result.set_result(probabilities[start : start + len(request.texts)])
                start += len(request.texts)
