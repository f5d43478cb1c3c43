"""The `/ws/{walker}` endpoint: handshake checks, then one walker run per message.

Handshake: a browser `Origin` outside the allow-list is refused with 403 before
the socket opens. A `?token=` (or an `Authorization` header) is checked
through the `jacscale_authenticate` hook and connection caps are applied before
the socket is accepted, so an open socket already receives broadcasts. A bad
token or a full cap is answered with an error envelope and close code 1008.

Messages: each text frame is a JSON object of the walker's fields, plus an
optional `"token"`. Every message gets one answer: the walker's envelope, or an
error envelope (bad JSON, binary frame, unknown or mistyped fields, missing
token, too large, too fast ...). The socket stays open after any bad message.

Tokens: a `?token=` is removed from the scope's query string as soon as it is
read, so nothing logs it; message tokens are never logged. Both reach the auth
plugins the same way, as `Authorization: Bearer <token>` on a copy of the
socket's scope, so every `jacscale_authenticate` plugin works unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import msgspec
from starlette.requests import HTTPConnection
from starlette.types import Scope
from starlette.websockets import WebSocket, WebSocketState

from jacscale_core import codec
from jacscale_core.errors import ApiError
from jacscale_core.http_endpoints import authenticate, json_response
from jacscale_core.json_input import MAX_JSON_DEPTH, nesting_depth_exceeds, too_deep_error
from jacscale_core.principal import Principal
from jacscale_core.program import Endpoint
from jacscale_core.streaming import Stream, events
from jacscale_ext.websockets.connection import CLOSE_POLICY, Connection, TokenBucket
from jacscale_ext.websockets.hub import CLOSE_TRY_AGAIN_LATER, Refused, TryLater

if TYPE_CHECKING:
    from jacscale_ext.websockets.plugin import Runtime

log = logging.getLogger("jacscale.websocket")

MAX_REASON_BYTES = 123  # RFC 6455: a close reason fits in a control frame
HANDSHAKE_SEND_TIMEOUT = 5.0


# --------------------------------------------------------------------------
# Tokens and principals
# --------------------------------------------------------------------------


def take_query_token(scope: Scope) -> str | None:
    """Remove `token` from the scope's query string (in place) and return it."""
    raw = scope.get("query_string", b"")
    if b"token" not in raw:
        return None
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    tokens = [v for k, v in pairs if k == "token"]
    if not tokens:
        return None
    scope["query_string"] = urlencode([(k, v) for k, v in pairs if k != "token"]).encode("latin-1")
    return tokens[-1]


def with_bearer(scope: Scope, token: str) -> HTTPConnection:
    """A copy of `scope` whose only credential is `Authorization: Bearer <token>`."""
    try:
        value = token.strip().encode("latin-1")
    except UnicodeEncodeError:
        raise invalid_token() from None
    if not value or any(b < 0x20 or b == 0x7F for b in value):
        raise invalid_token()
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"authorization"]
    headers.append((b"authorization", b"Bearer " + value))
    return HTTPConnection({**scope, "headers": headers})


def invalid_token() -> ApiError:
    """The answer to a token that is present but not accepted."""
    return ApiError("UNAUTHORIZED", "Invalid or expired token")


async def principal_of(rt: Runtime, scope: Scope, token: str | None, ws: WebSocket) -> Principal | None:
    """Who presents `token` (or the socket's own credentials when None); 401 if refused."""
    if token is None:
        principal = await authenticate(ws, rt.app)
    else:
        principal = await authenticate(with_bearer(scope, token), rt.app)
        if principal is None or principal.is_guest:
            raise invalid_token()  # no plugin recognised the token
    return principal


def identity_of(conn_principal: Principal | None, ws: WebSocket) -> str:
    """The key of the per-user connection cap: the user, else the client address."""
    if conn_principal is not None and not conn_principal.is_guest:
        return f"user:{conn_principal.user_id}"
    host = ws.client.host if ws.client else "unknown"
    return f"ip:{host}"


# --------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------


def error_text(err: ApiError, request_id: str) -> str:
    """The error envelope as a text frame."""
    return codec.encode(codec.error_envelope(err, request_id)).decode()


def _reason(text: str) -> str:
    data = text.encode()[:MAX_REASON_BYTES]
    return data.decode(errors="ignore")


async def refuse(ws: WebSocket, err: ApiError, request_id: str, code: int = CLOSE_POLICY) -> None:
    """Accept the socket, answer with an error envelope, then close it with `code` (1008)."""
    try:
        if ws.application_state == WebSocketState.CONNECTING:
            await asyncio.wait_for(ws.accept(), HANDSHAKE_SEND_TIMEOUT)
        await asyncio.wait_for(ws.send_text(error_text(err, request_id)), HANDSHAKE_SEND_TIMEOUT)
        await asyncio.wait_for(ws.close(code, _reason(err.message)), HANDSHAKE_SEND_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - the client is gone; nothing left to tell it
        log.debug("websocket: refusing failed: %s", exc)


async def deny(ws: WebSocket, err: ApiError, request_id: str) -> None:
    """Refuse the handshake itself: an HTTP error response where the server allows it, else 1008."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        response = json_response(codec.error_envelope(err, request_id), err.status)
        await ws.send_denial_response(response)
    else:
        await ws.close(CLOSE_POLICY, _reason(err.message))


# --------------------------------------------------------------------------
# The endpoint
# --------------------------------------------------------------------------


def make_handler(rt: Runtime, endpoint: Endpoint) -> Callable[[WebSocket], Awaitable[None]]:
    """The Starlette WebSocket endpoint serving `endpoint`."""

    async def handle(ws: WebSocket) -> None:
        try:
            await serve_socket(rt, endpoint, ws)
        except Exception:
            # Nothing may escape to the server: it would answer with an opaque 1011.
            log.exception("websocket %s: unexpected failure", endpoint.name)

    handle.__name__ = f"websocket_{endpoint.name}"
    return handle


async def serve_socket(rt: Runtime, endpoint: Endpoint, ws: WebSocket) -> None:
    """One socket's life: checks, then the reader and writer until either ends."""
    request_id = str(ws.scope.get("state", {}).get("request_id") or uuid.uuid4().hex)
    origin = ws.headers.get("origin")
    if origin is not None and not rt.origin_allowed(origin):
        log.info("websocket %s: origin %s refused", endpoint.name, origin)
        await deny(ws, ApiError("FORBIDDEN", "This origin may not open WebSockets here"), request_id)
        return
    token = take_query_token(ws.scope)
    if rt.hub.draining:
        await deny(ws, ApiError("UNAVAILABLE", "The server is shutting down"), request_id)
        return
    # The socket is accepted only once it is registered: a client that sees it
    # open may broadcast at once, and every open socket must receive that.
    try:
        principal = await principal_of(rt, ws.scope, token, ws)
    except ApiError as err:
        log.info("websocket %s refused: %s (rid=%s)", endpoint.name, err.message, request_id)
        await refuse(ws, err, request_id)
        return
    cfg = rt.config
    conn = Connection(
        ws,
        endpoint.name,
        identity_of(principal, ws),
        queue_size=cfg.send_queue_size,
        send_timeout=cfg.send_timeout_seconds,
        bucket=TokenBucket(cfg.messages_per_second, cfg.message_burst),
    )
    conn.set_principal(principal)
    try:
        await rt.hub.admit(conn)
    except TryLater as exc:
        await refuse(ws, ApiError("UNAVAILABLE", str(exc)), request_id, CLOSE_TRY_AGAIN_LATER)
        return
    except Refused as exc:
        log.info("websocket %s refused: %s (rid=%s)", endpoint.name, exc, request_id)
        await refuse(ws, ApiError("RATE_LIMITED", str(exc)), request_id)
        return
    timer: asyncio.TimerHandle | None = None
    try:
        await ws.accept()
        log.info("websocket %s opened by %s (rid=%s)", endpoint.name, conn.identity, request_id)
        writer = conn.start_writer(f"ws-writer-{endpoint.name}")
        reader = asyncio.create_task(read_loop(rt, endpoint, conn), name=f"ws-reader-{endpoint.name}")
        if endpoint.access != "public" and not conn.authorised():
            timer = asyncio.get_running_loop().call_later(
                cfg.auth_timeout_seconds, _auth_deadline, conn, cfg.auth_timeout_seconds
            )
        await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        for task in (reader, writer):
            task.cancel()
        outcomes = await asyncio.gather(reader, writer, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                log.error("websocket %s failed: %r (rid=%s)", endpoint.name, outcome, request_id)
        if conn.closing:
            await conn.send_close()
    finally:
        if timer is not None:
            timer.cancel()
        conn.stop_watching()
        rt.hub.remove(conn)
        log.info(
            "websocket %s closed%s (rid=%s)",
            endpoint.name, f": {conn.close_code} {conn.close_reason}" if conn.closing else "", request_id,
        )  # fmt: skip


def _auth_deadline(conn: Connection, seconds: float) -> None:
    if conn.authorised() or conn.closing:
        return
    err = ApiError("UNAUTHORIZED", f"No valid token within {seconds:g}s")
    conn.offer(error_text(err, uuid.uuid4().hex))
    conn.close(CLOSE_POLICY, "authentication timeout")


async def read_loop(rt: Runtime, endpoint: Endpoint, conn: Connection) -> None:
    """Read frames until the client disconnects; answer each one."""
    ws = conn.websocket
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        if conn.closing:
            continue  # closing: the answer would not be sent anyway
        text = message.get("text")
        # Shielded: a message already being run finishes (and commits) even if
        # the socket goes away meanwhile.
        work = asyncio.ensure_future(answer(rt, endpoint, conn, text, message.get("bytes")))
        rt.track(work)
        await asyncio.shield(work)


async def answer(
    rt: Runtime, endpoint: Endpoint, conn: Connection, text: str | None, data: bytes | None
) -> None:
    """Run one message and queue its answer (an error envelope for anything wrong)."""
    request_id = os.urandom(16).hex()  # as HTTP request ids: 32 hex digits
    try:
        await run_message(rt, endpoint, conn, text, data, request_id)
    except ApiError as err:
        conn.offer(error_text(err, request_id))
    except Exception as exc:
        log.error("websocket %s: message %s failed: %s", endpoint.name, request_id, exc, exc_info=exc)
        crash = ApiError("EXECUTION_ERROR", rt.app.scrub(f"{type(exc).__name__}: {exc}"))
        conn.offer(error_text(crash, request_id))


def _message_error(msg: str, kind: str, loc: list[str | int] | None = None) -> ApiError:
    return ApiError(
        "VALIDATION_ERROR",
        msg,
        details=[{"loc": loc or ["message"], "msg": msg, "type": kind}],
    )


def decode_message(
    text: str | None, data: bytes | None, limit: int, max_depth: int = MAX_JSON_DEPTH
) -> dict[str, Any]:
    """The JSON object of a text frame, or a 4xx ApiError saying what is wrong."""
    if text is None:
        size = len(data or b"")
        if size > limit:
            raise ApiError("PAYLOAD_TOO_LARGE", f"Message is larger than {limit} bytes")
        raise _message_error(
            "Binary frames are not supported: send the walker's fields as a JSON text frame",
            "frame_type",
        )
    if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
        raise ApiError("PAYLOAD_TOO_LARGE", f"Message is larger than {limit} bytes")
    try:
        decoded = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise _message_error(f"Message is not valid JSON: {exc}", "json_invalid") from None
    except RecursionError:
        raise too_deep_error(max_depth, ["message"]) from None
    if type(decoded) is dict and nesting_depth_exceeds(decoded, max_depth):
        raise too_deep_error(max_depth, ["message"])
    if not isinstance(decoded, dict):
        raise _message_error("Message must be a JSON object of the walker's fields", "type_error")
    return decoded


async def run_message(
    rt: Runtime,
    endpoint: Endpoint,
    conn: Connection,
    text: str | None,
    data: bytes | None,
    request_id: str,
) -> None:
    """Check, authenticate, decode, run; then reply to the sender or broadcast."""
    wait = conn.bucket.take()
    if wait:
        raise ApiError(
            "RATE_LIMITED",
            f"Too many messages on this socket; retry in {wait:.2f}s",
            details=[{"loc": ["message"], "msg": "rate limit", "type": "rate_limited",
                      "retry_after": round(wait, 3)}],
        )  # fmt: skip
    fields = decode_message(
        text, data, rt.config.max_message_bytes, rt.app.settings.api.max_json_depth
    )
    principal = await _message_principal(rt, conn, fields)
    if endpoint.access != "public" and principal is None:
        raise ApiError(
            "UNAUTHORIZED",
            f"{endpoint.name} requires authentication: connect with ?token=<jwt> "
            'or add "token" to the message',
        )
    args = endpoint.decode(fields, loc_root="message")
    run_as = principal or rt.app.executor.guest_principal
    started = time.perf_counter()
    success = False
    try:
        run = await rt.app.executor.run(endpoint, args, run_as, stream=True)
        success = True
    finally:
        rt.app.pm.hook.jacscale_walker_finished(
            app=rt.app,
            endpoint=endpoint,
            principal=run_as,
            duration=time.perf_counter() - started,
            success=success,
        )
    if run.stream is not None:
        await send_stream(rt, endpoint, conn, run.stream, request_id)
        return
    envelope = endpoint.envelope if endpoint.envelope is not None else rt.app.settings.api.envelope
    if envelope:
        body: Any = codec.ok_envelope(run.result, run.reports, request_id, warnings=run.warnings)
    else:
        body = codec.to_jsonable(run.reports)
    payload = codec.encode(body).decode()
    if endpoint.broadcast:
        await rt.broadcast(endpoint, payload)
    else:
        conn.offer(payload)


def stream_frame(event: str, data: Any, request_id: str) -> str:
    """One frame of a streaming walker: `event` is "data" (an item), "end" or "error"."""
    body: dict[str, Any] = {
        "ok": event != "error", "type": "stream", "event": event, "data": data, "error": None,
        "meta": {"request_id": request_id},
    }  # fmt: skip
    if event == "error":
        body["error"] = {"code": "EXECUTION_ERROR", "message": data["message"]}
    return codec.encode(body).decode()


async def send_stream(
    rt: Runtime, endpoint: Endpoint, conn: Connection, stream: Stream, request_id: str
) -> None:
    """A walker that reported a generator: one frame per item, then its end (or error).

    The socket closing stops the generator; nothing it wrote is then saved.
    """
    api = rt.app.settings.api
    gone = conn.writer
    async with contextlib.aclosing(
        events(stream, api.stream_idle_seconds, api.stream_total_seconds, gone)
    ) as frames:
        async for event, data in frames:
            payload = stream_frame(event, data, request_id)
            if endpoint.broadcast:
                await rt.broadcast(endpoint, payload)
            elif not conn.offer(payload):
                log.info("websocket %s: socket closing; stream stopped (rid=%s)", endpoint.name, request_id)
                return


async def _message_principal(
    rt: Runtime, conn: Connection, fields: dict[str, Any]
) -> Principal | None:
    """The message's own token (which then also authorises the socket), else the socket's."""
    if "token" not in fields:
        return conn.principal if conn.authorised() else None
    token = fields.pop("token")
    if not isinstance(token, str) or not token.strip():
        raise _message_error("token must be a non-empty string", "type_error", ["message", "token"])
    principal = await principal_of(rt, conn.websocket.scope, token, conn.websocket)
    assert principal is not None  # principal_of raises for a refused token
    try:
        await rt.hub.rekey(conn, f"user:{principal.user_id}")
    except TryLater as exc:
        raise ApiError("UNAVAILABLE", str(exc)) from None
    except Refused as exc:
        raise ApiError("RATE_LIMITED", str(exc)) from None
    conn.set_principal(principal)
    return principal
