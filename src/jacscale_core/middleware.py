"""ASGI middleware the kernel always installs: request and trace ids, body size limits."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jacscale_core import codec
from jacscale_core.errors import ApiError

log = logging.getLogger("jacscale")

REQUEST_ID_HEADER = b"x-request-id"
# Browsers must not guess another type than the one declared (no MIME sniffing).
NOSNIFF = (b"x-content-type-options", b"nosniff")
TRACE_ID_HEADER = b"x-trace-id"
# A sane id: 1-128 characters of letters, digits and `. _ : -` (UUIDs, W3C trace
# ids, most tracers' formats). Nothing that could split a log line or a header.
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(scope: Scope) -> str:
    """The id of the request in `scope` (set by RequestIdMiddleware)."""
    return str(scope.get("state", {}).get("request_id", "")) or "-"


def trace_id_of(scope: Scope) -> str | None:
    """The client's sane `X-Trace-Id` for the request in `scope`, if it sent one."""
    trace_id = scope.get("state", {}).get("trace_id")
    return str(trace_id) if trace_id else None


def _sane_id(value: bytes) -> str:
    """`value` as text when it is a sane id, else ""."""
    text = value.decode("latin-1")
    return text if _VALID_ID.match(text) else ""


class RequestIdMiddleware:
    """Accept a sane `X-Request-Id` or make one; echo it on every response.

    A sane `X-Trace-Id` (jac-scale's correlation header) is kept in the scope for
    the access log and echoed too; one that is not sane is dropped, not echoed.

    Every response also gets `X-Content-Type-Options: nosniff` here (the same
    wrapper of `send`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = trace = None
        for key, value in scope.get("headers", []):
            if key == REQUEST_ID_HEADER and rid is None:
                rid = _sane_id(value)
            elif key == TRACE_ID_HEADER and trace is None:
                trace = _sane_id(value)
        rid = rid or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        echoed = [(REQUEST_ID_HEADER, rid.encode())]
        if trace:
            state["trace_id"] = trace
            echoed.append((TRACE_ID_HEADER, trace.encode()))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *echoed, NOSNIFF]
            await send(message)

        await self.app(scope, receive, send_with_id)


class CrashMiddleware:
    """Turn an unhandled exception into the 500 error envelope (inside the request id).

    The operator's log gets the traceback; the client gets the exception's type
    and message with server paths removed (`scrub`), never a traceback.
    """

    def __init__(self, app: ASGIApp, scrub: Callable[[str], str]) -> None:
        self.app = app
        self.scrub = scrub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            # Exceptions may name the answer they deserve (`api_code = "BAD_REQUEST"`).
            code = getattr(exc, "api_code", None) or "EXECUTION_ERROR"
            err = ApiError(code, self.scrub(f"{type(exc).__name__}: {exc}"))
            if err.status < 500:  # the client's mistake: one line, no traceback to flood the log
                log.info("request %s refused: %s", request_id_of(scope), err.message)
            else:
                log.error("request %s failed: %s", request_id_of(scope), exc, exc_info=exc)
            if started:
                raise
            body = codec.encode(codec.error_envelope(err, request_id_of(scope)))
            headers: list[Any] = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({"type": "http.response.start", "status": err.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuse bodies over the limit with 413 before the app reads them all.

    `Content-Length` is checked up front; chunked bodies are counted as they
    arrive. multipart/form-data (file uploads) has its own, larger limit.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_upload = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        ctype = headers.get(b"content-type", b"").decode("latin-1").lower()
        limit = self.max_upload if ctype.startswith("multipart/form-data") else self.max_body
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _reject(scope, send, limit)
            return
        seen = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await _reject(scope, send, limit)


class _TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"body over {limit} bytes")


async def _reject(scope: Scope, send: Send, limit: int) -> None:
    err = ApiError("PAYLOAD_TOO_LARGE", f"Request body is larger than {limit} bytes")
    body = codec.encode(codec.error_envelope(err, request_id_of(scope)))
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
