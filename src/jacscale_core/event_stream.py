"""Server-Sent Events on the wire: the response a streaming walker or function gets.

`200 text/event-stream; charset=utf-8`, `cache-control: no-cache`,
`x-accel-buffering: no` (proxies must not buffer); one `data: <json>` frame per
item, sent as soon as it is produced; then `event: end` / `data: {}`, or
`event: error` / `data: {"error_type": ..., "message": ...}`. While the stream
runs, the client's disconnect is watched: it stops the generator.

`wants_stream` decides between this and the JSON envelope: `?stream=false` or an
`Accept` that names application/json but not text/event-stream collects the
items instead (the envelope is what jaclang's client runtime reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from jacscale_core import codec
from jacscale_core.streaming import Stream, events

log = logging.getLogger("jacscale.stream")

MEDIA_TYPE = "text/event-stream"
STREAM_PARAM = "stream"
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_FALSE = frozenset({"false", "0", "no", "off"})


def wants_stream(request: Request) -> bool:
    """False when the client asked for JSON (`?stream=false`, `Accept: application/json`)."""
    if STREAM_PARAM.encode() in request.scope.get("query_string", b""):
        flag = request.query_params.get(STREAM_PARAM)
        if flag is not None and flag.strip().lower() in _FALSE:
            return False
    accept = request.headers.get("accept", "")
    if "json" not in accept:
        return True  # the common case, decided without parsing
    kinds = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return MEDIA_TYPE in kinds or "application/json" not in kinds


def frame(event: str, data: Any) -> bytes:
    """One SSE frame: `data: <json>` for an item, `event: <name>` + data otherwise."""
    body = b"data: " + codec.encode(data) + b"\n\n"
    return body if event == "data" else b"event: " + event.encode() + b"\n" + body


async def _disconnected(receive: Receive) -> None:
    """Return when the client has gone away (the request body was read already)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class EventStreamResponse(Response):
    """Sends a `Stream` as Server-Sent Events; stops it when the client leaves."""

    media_type = MEDIA_TYPE

    def __init__(self, stream: Stream, idle_seconds: float, total_seconds: float) -> None:
        """`idle_seconds`: longest wait for an item (also for a send); `total_seconds`: the whole stream."""
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", f"{MEDIA_TYPE}; charset=utf-8".encode()),
            *((k.encode(), v.encode()) for k, v in HEADERS.items()),
        ]  # no content-length: the body is sent as it is produced
        self.stream = stream
        self.idle_seconds = idle_seconds
        self.total_seconds = total_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the stream to its end, its error or the client's disconnect."""
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async with contextlib.aclosing(
                events(self.stream, self.idle_seconds, self.total_seconds, gone)
            ) as stream_events:
                async for event, data in stream_events:
                    last = event != "data"
                    body = frame(event, data)
                    await self._send(send, {"type": "http.response.body", "body": body,
                                            "more_body": not last})  # fmt: skip
                    if last:
                        break  # the response is complete before the generator is closed
        except _ClientGone as exc:
            log.info(
                "stream: the client stopped reading (%s); generator stopped, nothing saved", exc
            )
        finally:
            gone.cancel()
            await self.stream.close()

    async def _send(self, send: Send, message: Message) -> None:
        try:
            await asyncio.wait_for(send(message), self.idle_seconds)
        except TimeoutError as exc:
            raise _ClientGone(f"no progress sending for {self.idle_seconds:g}s") from exc
        except OSError as exc:
            raise _ClientGone(str(exc)) from exc


class _ClientGone(Exception):
    """The response cannot be delivered any more."""
