"""The kernel's one ASGI layer (jacscale_core.middleware.KernelLayer), driven directly.

Slow bodies, framing, body limits, the drain and crashes are answered here with the
error envelope; plugin middleware outside the layer sees each answer as a response.
Real sockets: tests/test_http_guards.py, tests/test_request_id.py, tests/test_access_log.py.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from jacscale_core.middleware import KernelLayer
from jacscale_core.shutdown import DRAINING_KEY

Message = dict[str, Any]


async def echo_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app that reads the whole body and answers 200 with a `connection` header of its own."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    headers = [(b"content-type", b"application/json"), (b"connection", b"keep-alive")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def crash(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app with a bug."""
    raise RuntimeError("boom in /srv/app/secret.py")


def layer(
    app: Any, state: dict[str, Any] | None = None, grace: float = 30.0, observers: Any = ()
) -> KernelLayer:
    ctx = SimpleNamespace(state={} if state is None else state)
    return KernelLayer(
        app, ctx, scrub=lambda text: text.replace("/srv/app/", ""),  # type: ignore[arg-type]
        max_body_bytes=100, max_upload_bytes=1000,
        grace_seconds=grace, min_bytes_per_second=1_000_000, observers=observers,
    )  # fmt: skip


def scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/walker/x", "headers": headers}


class Recorder:
    """Plugin middleware stand-in: records the status each response started with."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.statuses: list[int] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.statuses.append(message["status"])
            await send(message)

        await self.app(scope, receive, recording_send)


def run(
    app: Any, scope: dict[str, Any], chunks: list[Message], stall: bool = False
) -> list[Message]:
    """Call `app` with `chunks` as the body (then, with `stall`, nothing more); return what it sent."""
    sent: list[Message] = []
    pending = list(chunks)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if stall:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def answer(sent: list[Message]) -> tuple[int, dict[bytes, bytes], dict[str, Any]]:
    start, body = sent
    return start["status"], dict(start["headers"]), json.loads(body["body"])


def test_a_body_that_stops_arriving_is_a_408_the_plugin_middleware_sees() -> None:
    recorder = Recorder(layer(echo_body, grace=0.05))
    part = {"type": "http.request", "body": b"{", "more_body": True}
    sent = run(recorder, scope([(b"x-request-id", b"slow-1")]), [part], stall=True)
    status, headers, body = answer(sent)
    assert status == 408 and recorder.statuses == [408]
    assert body["error"]["code"] == "REQUEST_TIMEOUT"
    assert headers[b"connection"] == b"close" and headers[b"x-request-id"] == b"slow-1"


def test_a_cancellation_from_outside_is_not_taken_for_a_slow_body() -> None:
    async def main() -> list[Message]:
        sent: list[Message] = []

        async def receive() -> Message:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            sent.append(message)

        task = asyncio.create_task(layer(echo_body)(scope([]), receive, send))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return sent

    assert asyncio.run(main()) == []


def test_both_framings_are_a_400_naming_them_before_the_app_runs() -> None:
    recorder = Recorder(layer(crash))
    headers = [(b"content-length", b"4"), (b"transfer-encoding", b"chunked")]
    status, sent_headers, body = answer(run(recorder, scope(headers), []))
    assert status == 400 and recorder.statuses == [400]
    assert "Content-Length and Transfer-Encoding" in body["error"]["message"]
    assert sent_headers[b"connection"] == b"close"


def test_body_limits_from_the_header_and_from_what_arrives() -> None:
    recorder = Recorder(layer(echo_body))
    status, _, body = answer(run(recorder, scope([(b"content-length", b"101")]), []))
    assert status == 413 and body["error"]["code"] == "PAYLOAD_TOO_LARGE"
    chunk = {"type": "http.request", "body": b"x" * 60, "more_body": True}
    status, _, _ = answer(run(recorder, scope([]), [chunk, chunk]))
    assert status == 413 and recorder.statuses == [413, 413]
    upload = [(b"content-type", b"multipart/form-data; boundary=x"), (b"content-length", b"500")]
    last = {"type": "http.request", "body": b"y" * 500, "more_body": False}
    sent = run(layer(echo_body), scope(upload), [last])
    assert sent[0]["status"] == 200  # uploads have their own, larger limit


def test_while_draining_every_response_says_connection_close_once() -> None:
    last = {"type": "http.request", "body": b"{}", "more_body": False}
    start = run(layer(echo_body, state={DRAINING_KEY: True}), scope([]), [last])[0]
    connection = [v for k, v in start["headers"] if k == b"connection"]
    assert connection == [b"close"]
    names = [k for k, _ in start["headers"]]
    assert b"x-request-id" in names and b"x-content-type-options" in names


def test_a_crash_is_the_500_envelope_without_server_paths() -> None:
    recorder = Recorder(layer(crash))
    status, _, body = answer(run(recorder, scope([(b"x-trace-id", b"t-1")]), []))
    assert status == 500 and recorder.statuses == [500]
    assert body["error"]["code"] == "EXECUTION_ERROR"
    assert "/srv/app" not in body["error"]["message"] and "secret.py" in body["error"]["message"]


def test_observers_see_each_answer_once_with_its_status_and_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, int, float]] = []

    def observe(scope: dict[str, Any], status: int, seconds: float) -> None:
        seen.append((scope["path"], status, seconds))

    def broken(scope: dict[str, Any], status: int, seconds: float) -> None:
        raise ValueError("observer bug")

    def observed(app: Any) -> KernelLayer:
        return layer(app, observers=[broken, observe])

    last = {"type": "http.request", "body": b"{}", "more_body": False}
    ok = run(observed(echo_body), scope([]), [last])
    too_big = run(observed(echo_body), scope([(b"content-length", b"500")]), [last])
    crashed = run(observed(crash), scope([]), [last])
    assert [m["status"] for m in (ok[0], too_big[0], crashed[0])] == [200, 413, 500]
    assert [status for _, status, _ in seen] == [200, 413, 500]
    assert all(path == "/walker/x" and 0 <= seconds < 60 for path, _, seconds in seen)
    # The broken observer is logged each time and changes no answer.
    assert caplog.text.count("request observer") == 3 and "observer bug" in caplog.text
