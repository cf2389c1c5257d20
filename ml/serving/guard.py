"""The HTTP layer in front of the app: API keys, auth before the body, a streamed body limit,
body and header timeouts."""

from __future__ import annotations

import asyncio
import hmac
import os

import h11
from fastapi import HTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from ml.serving.schemas import error_response


class ApiKeys:
    """Bearer keys from REPLYQA_API_KEYS (comma-separated); none set means no auth."""

    def __init__(self, raw: str) -> None:
        self.keys = [key.strip() for key in raw.split(",") if key.strip()]

    def allow(self, authorization: str | None) -> bool:
        if not self.keys:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and any(
            hmac.compare_digest(_bytes(token.strip()), _bytes(key)) for key in self.keys
        )


def _bytes(text: str) -> bytes:
    # compare_digest refuses str holding non-ASCII characters; header values and keys can hold any
    return text.encode("utf-8", "surrogatepass")


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
            return await error_response(401, message, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return await error_response(413, f"request body over {self.max_body_bytes} bytes")(scope, receive, send)
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

    # `replyqa serve --workers N` passes the setting to its worker processes through the environment
    header_timeout_s = float(os.environ.get("REPLYQA_HEADER_TIMEOUT_S", "10"))

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


def timed_protocol(header_timeout_s: float) -> type[TimedH11Protocol]:
    return type("TimedH11Protocol", (TimedH11Protocol,), {"header_timeout_s": header_timeout_s})
