"""The kernel's one ASGI layer around every HTTP request and WebSocket.

`KernelLayer` does, with one pass over the headers, one wrapper of `send` and
one of `receive`:

- request and trace ids: a sane `X-Request-Id` is kept, else one is made; a sane
  `X-Trace-Id` (jac-scale's correlation header) is kept for the access log; both
  are echoed on every response, with `X-Content-Type-Options: nosniff`;
- once shutdown began, every response carries `Connection: close`, so a client on
  a kept-alive connection sends its next request on a new connection;
- ambiguous framing: a request with both `Content-Length` and `Transfer-Encoding`
  is refused with 400 and the connection closed (a proxy in front may have read
  it the other way: request smuggling);
- body limits: a `Content-Length` over the limit is refused with 413 before the
  app reads anything; chunked bodies are counted as they arrive.
  multipart/form-data (file uploads) has its own, larger limit;
- slow bodies: after a grace period (`body_timeout_seconds`) a body must average
  at least `min_body_bytes_per_second` since the request began, else 408 and the
  connection is closed (a client dribbling a byte every few seconds cannot hold
  a connection and a worker's memory for minutes);
- crashes: an unhandled exception becomes the error envelope (500, or the status
  its `api_code` names); the operator's log gets the traceback, the client the
  exception's type and message with server paths removed, never a traceback.

Plugin middleware (`jacscale_middleware`) runs outside this layer, so it sees
each of these answers as the response it is. Request observers
(`jacscale_request_observer`: the access log, the admin console's counts) are
called by this layer once the answer is sent, without a layer of their own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jacscale_core import codec
from jacscale_core.context import AppContext
from jacscale_core.deadlines import by_deadline
from jacscale_core.errors import ApiError
from jacscale_core.shutdown import DRAINING_KEY

log = logging.getLogger("jacscale")

REQUEST_ID_HEADER = b"x-request-id"
# Browsers must not guess another type than the one declared (no MIME sniffing).
NOSNIFF = (b"x-content-type-options", b"nosniff")
TRACE_ID_HEADER = b"x-trace-id"
CONNECTION_CLOSE = (b"connection", b"close")
# A sane id: 1-128 characters of letters, digits and `. _ : -` (UUIDs, W3C trace
# ids, most tracers' formats). Nothing that could split a log line or a header.
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


# Starlette's request/response wrappers look their exception handlers up here;
# none: every exception reaches KernelLayer, which answers it.
_NO_HANDLERS: tuple[dict[Any, Any], dict[int, Any]] = ({}, {})
_HANDLERS_KEY = "starlette.exception_handlers"

# Called once per HTTP request after its answer: (scope, status, seconds).
Observer = Callable[[Scope, int, float], None]


def request_id_of(scope: Scope) -> str:
    """The id of the request in `scope` (set by KernelLayer)."""
    return str(scope.get("state", {}).get("request_id", "")) or "-"


def trace_id_of(scope: Scope) -> str | None:
    """The client's sane `X-Trace-Id` for the request in `scope`, if it sent one."""
    trace_id = scope.get("state", {}).get("trace_id")
    return str(trace_id) if trace_id else None


def _sane_id(value: bytes) -> str:
    """`value` as text when it is a sane id, else ""."""
    text = value.decode("latin-1")
    return text if _VALID_ID.match(text) else ""


class _TooLarge(Exception):
    """The body grew past the limit (raised out of `receive`, turned into a 413)."""

    api_code = "PAYLOAD_TOO_LARGE"


class _TooSlow(Exception):
    """The body stopped arriving (raised out of `receive`, turned into a 408)."""

    api_code = "REQUEST_TIMEOUT"


class KernelLayer:
    """Request ids, drain, framing, body limits, slow bodies and the error envelope (module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        ctx: AppContext,
        scrub: Callable[[str], str],
        max_body_bytes: int,
        max_upload_bytes: int,
        grace_seconds: float,
        min_bytes_per_second: float,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.app = app
        self.observers = tuple(observers)
        self.state = ctx.state
        self.scrub = scrub
        self.max_body = max_body_bytes
        self.max_upload = max_upload_bytes
        self.grace = grace_seconds
        self.rate = min_bytes_per_second

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
            return
        if kind == "websocket":
            rid = trace = ""
            for key, value in scope.get("headers", ()):
                if key == REQUEST_ID_HEADER and not rid:
                    rid = _sane_id(value)
                elif key == TRACE_ID_HEADER and not trace:
                    trace = _sane_id(value)
            state = scope.setdefault("state", {})
            state["request_id"] = rid or os.urandom(16).hex()
            if trace:
                state["trace_id"] = trace
            scope[_HANDLERS_KEY] = _NO_HANDLERS
        await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = trace = ""
        length: bytes | None = None
        ctype = b""
        chunked = False
        for key, value in scope["headers"]:
            if key == b"content-length":
                length = value
            elif key == b"content-type":
                ctype = value
            elif key == b"transfer-encoding":
                chunked = True
            elif key == REQUEST_ID_HEADER and not rid:
                rid = _sane_id(value)
            elif key == TRACE_ID_HEADER and not trace:
                trace = _sane_id(value)
        rid = rid or os.urandom(16).hex()
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        scope[_HANDLERS_KEY] = _NO_HANDLERS
        echoed = [(REQUEST_ID_HEADER, rid.encode()), NOSNIFF]
        if trace:
            state["trace_id"] = trace
            echoed.append((TRACE_ID_HEADER, trace.encode()))
        draining = self.state
        started = False
        status = 500  # until an answer starts: what the client gets if none does
        arrived = time.perf_counter()

        async def kernel_send(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = message.get("headers", [])
                if draining.get(DRAINING_KEY):
                    headers = [(k, v) for k, v in headers if k.lower() != b"connection"]
                    headers.append(CONNECTION_CLOSE)
                message["headers"] = [*headers, *echoed]
            await send(message)

        try:
            if length is not None and chunked:
                await _answer(kernel_send, rid, ApiError(
                    "BAD_REQUEST",
                    "A request must not carry both Content-Length and Transfer-Encoding",
                    details=[{"loc": ["header", "transfer-encoding"],
                              "msg": "Conflicts with Content-Length", "type": "framing"}],
                ), close=True)  # fmt: skip
                return
            upload = ctype[:19].lower() == b"multipart/form-data"
            limit = self.max_upload if upload else self.max_body
            if length is not None and length.isdigit() and int(length) > limit:
                await _answer(kernel_send, rid, _too_large(limit), close=True)
                return
            grace, rate = self.grace, self.rate
            received = 0
            complete = False

            async def kernel_receive() -> Message:
                nonlocal received, complete
                if complete:  # the body is in: what follows is only the disconnect
                    return await receive()
                if grace > 0:
                    allowed = grace + (received / rate if rate > 0 else float("inf"))
                    message = await _receive_within(receive, arrived + allowed - time.perf_counter())
                else:
                    message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise _TooLarge()
                    complete = not message.get("more_body", False)
                return message

            try:
                await self.app(scope, kernel_receive, kernel_send)
            except _TooLarge:
                if not started:
                    await _answer(kernel_send, rid, _too_large(limit), close=True)
            except _TooSlow:
                if started:
                    raise
                await _answer(kernel_send, rid, ApiError(
                    "REQUEST_TIMEOUT",
                    f"The request body arrived too slowly (under {rate:g} bytes/s after {grace:g}s)",
                    status=408,
                ), close=True)  # fmt: skip
            except ApiError as exc:
                if started:
                    raise
                await _answer(kernel_send, rid, exc, close=False)
            except HTTPException as exc:  # the router's 404 and 405
                if started:
                    raise
                await _answer(kernel_send, rid, _http_error(scope, exc), close=False)
            except Exception as exc:
                # Exceptions may name the answer they deserve (`api_code = "BAD_REQUEST"`).
                code = getattr(exc, "api_code", None) or "EXECUTION_ERROR"
                err = ApiError(code, self.scrub(f"{type(exc).__name__}: {exc}"))
                if err.status < 500:  # the client's mistake: one line, no traceback to flood the log
                    log.info("request %s refused: %s", rid, err.message)
                else:
                    log.error("request %s failed: %s", rid, exc, exc_info=exc)
                if started:
                    raise
                await _answer(kernel_send, rid, err, close=False)
        finally:
            if self.observers:
                self._observe(scope, status, time.perf_counter() - arrived)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        for observe in self.observers:
            try:
                observe(scope, status, seconds)
            except Exception:  # noqa: BLE001 - logged in full; the answer is already sent
                log.exception("request observer %s failed", getattr(observe, "__qualname__", observe))


async def _receive_within(receive: Receive, seconds: float) -> Message:
    """`await receive()`, or raise _TooSlow after `seconds`."""
    if seconds == float("inf"):
        return await receive()
    try:
        return await by_deadline(asyncio.get_running_loop().time() + max(seconds, 0.0), receive())
    except TimeoutError:
        raise _TooSlow() from None


def _http_error(scope: Scope, exc: HTTPException) -> ApiError:
    """Starlette's HTTPException as the error envelope's ApiError."""
    if exc.status_code == 404:
        return ApiError("NOT_FOUND", f"No route for {scope.get('path', '')}")
    if exc.status_code == 405:
        method = scope.get("method", "")
        return ApiError("METHOD_NOT_ALLOWED", f"{method} is not allowed here", headers=dict(exc.headers or {}))
    return ApiError("BAD_REQUEST", str(exc.detail), status=exc.status_code, headers=dict(exc.headers or {}))


def _too_large(limit: int) -> ApiError:
    return ApiError("PAYLOAD_TOO_LARGE", f"Request body is larger than {limit} bytes")


async def _answer(send: Send, rid: str, err: ApiError, close: bool) -> None:
    """Send `err` as the error envelope (and `Connection: close` when the body was not read)."""
    body = codec.encode(codec.error_envelope(err, rid))
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in err.headers.items())
    if close:
        headers.append(CONNECTION_CLOSE)
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
