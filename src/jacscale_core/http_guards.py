"""Connection-level hardening: slow clients, ambiguous framing, h2c upgrades, the server header.

- `SlowBodyMiddleware`: a request body must keep arriving. After a grace period
  (`body_timeout_seconds`, default 30) it must average at least
  `min_body_bytes_per_second` (default 1024) since the request began, else
  408 and the connection is closed. A client dribbling a byte every few seconds
  cannot hold a connection (and a worker's memory) for minutes; a large upload
  on a slow but honest link keeps going. Slow *headers* and idle kept-alive
  connections are bounded by hypercorn's keep-alive timeout
  (`keep_alive_timeout_seconds`, default 75).
- Also there: a request carrying both `Content-Length` and `Transfer-Encoding`
  is refused with 400 and the connection closed (the two framings disagree; a
  proxy in front may have read it the other way: request smuggling).
- `harden(config)`: hypercorn settings: no `Server` header (no version to
  fingerprint), the keep-alive timeout, and no `Upgrade: h2c` on cleartext
  connections (answered as the HTTP/1.1 request it is; HTTP/2 stays available
  over TLS through ALPN).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hypercorn.config import Config
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jacscale_core import codec
from jacscale_core.errors import ApiError
from jacscale_core.middleware import request_id_of


class SlowBodyMiddleware:
    """408 for a body that stops arriving; 400 for Content-Length with Transfer-Encoding."""

    def __init__(self, app: ASGIApp, grace_seconds: float, min_bytes_per_second: float) -> None:
        self.app = app
        self.grace = grace_seconds
        self.rate = min_bytes_per_second

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        names = {k.lower() for k, _ in scope.get("headers", [])}
        if b"content-length" in names and b"transfer-encoding" in names:
            await _refuse(scope, send, 400, ApiError(
                "BAD_REQUEST",
                "A request must not carry both Content-Length and Transfer-Encoding",
                details=[{"loc": ["header", "transfer-encoding"],
                          "msg": "Conflicts with Content-Length", "type": "framing"}],
            ))  # fmt: skip
            return
        if self.grace <= 0:
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        received = 0
        complete = False
        response_started = False

        async def paced_receive() -> Message:
            nonlocal received, complete
            if complete:  # the body is in: what follows is only the disconnect
                return await receive()
            allowed = self.grace + (received / self.rate if self.rate > 0 else float("inf"))
            remaining = started + allowed - time.monotonic()
            try:
                async with asyncio.timeout(max(remaining, 0.0)):
                    message = await receive()
            except TimeoutError:
                raise _TooSlow() from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, paced_receive, tracking_send)
        except _TooSlow:
            if response_started:
                raise
            await _refuse(scope, send, 408, ApiError(
                "REQUEST_TIMEOUT",
                f"The request body arrived too slowly (under {self.rate:g} bytes/s"
                f" after {self.grace:g}s)",
                status=408,
            ))  # fmt: skip


class _TooSlow(Exception):
    """The body stopped arriving (raised out of `receive`, turned into a 408)."""


async def _refuse(scope: Scope, send: Send, status: int, err: ApiError) -> None:
    body = codec.encode(codec.error_envelope(err, request_id_of(scope)))
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def harden(config: Config, keep_alive_timeout: float) -> None:
    """Apply the connection-level settings to a hypercorn config (every serving mode)."""
    config.include_server_header = False
    config.keep_alive_timeout = keep_alive_timeout
    refuse_h2c_upgrades()


def refuse_h2c_upgrades() -> None:
    """Make hypercorn's HTTP/1.1 protocol ignore `Upgrade: h2c` on cleartext connections.

    hypercorn switches a cleartext connection to HTTP/2 on `Upgrade: h2c` before
    the app sees the request, with no setting to turn it off. A proxy that
    passes the upgrade through would then tunnel HTTP/2 requests it never
    inspects (h2c smuggling). The protocol class hypercorn builds connections
    from is replaced by a subclass that answers such a request as HTTP/1.1.
    """
    from hypercorn import protocol
    from hypercorn.protocol.h11 import H11Protocol

    if getattr(protocol.H11Protocol, "refuses_h2c", False):
        return

    class NoCleartextH2cUpgrade(H11Protocol):
        refuses_h2c = True

        async def _check_protocol(self, event: Any) -> None:
            if not self.ssl and any(
                name.lower() == b"upgrade" and value.strip().lower() == b"h2c"
                for name, value in event.headers
            ):
                return  # served as the HTTP/1.1 request it also is
            await super()._check_protocol(event)

    protocol.H11Protocol = NoCleartextH2cUpgrade  # type: ignore[misc]
