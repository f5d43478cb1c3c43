"""One open WebSocket: who it belongs to, its send queue and its message budget.

Only the connection's writer task sends on the socket, so replies and
broadcasts never interleave badly and a slow client never blocks anyone else:
`offer` queues without waiting, and a socket whose queue overflows (or whose
send stalls past the timeout) is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketState

from jacscale_core.principal import Principal

log = logging.getLogger("jacscale.websocket")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
FINAL_CLOSE_TIMEOUT = 1.0


class TokenBucket:
    """`rate` messages per second on average, bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        """A full bucket."""
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0.0 when a message may pass (one token spent), else seconds until one may."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


class Connection:
    """A socket on one walker's endpoint, with its principal and bounded send queue."""

    def __init__(
        self,
        websocket: WebSocket,
        walker: str,
        identity: str,
        *,
        queue_size: int,
        send_timeout: float,
        bucket: TokenBucket,
    ) -> None:
        """Wrap an accepted socket; `identity` keys the per-user connection cap."""
        self.websocket = websocket
        self.walker = walker
        self.identity = identity
        self.queue_size = queue_size
        self.send_timeout = send_timeout
        self.bucket = bucket
        self.principal: Principal | None = None
        self.expires_at: float | None = None
        self.connected_at = time.time()
        self.close_code: int | None = None
        self.close_reason = ""
        self.close_sent = False
        self.dropped = False
        self._queue: asyncio.Queue[str | _Close] = asyncio.Queue()
        self.writer: asyncio.Task[None] | None = None
        self._send_started: float | None = None  # loop time the send in progress began
        self._watch: asyncio.TimerHandle | None = None

    # -- who -------------------------------------------------------------------
    def set_principal(self, principal: Principal | None) -> None:
        """Remember who this socket is (None or a guest: anonymous)."""
        if principal is None or principal.is_guest:
            self.principal, self.expires_at = None, None
            return
        self.principal = principal
        exp = principal.claims.get("exp") if principal.claims else None
        self.expires_at = float(exp) if isinstance(exp, (int, float)) else None

    def authorised(self, now: float | None = None) -> bool:
        """True while the socket holds an unexpired, non-guest principal."""
        if self.principal is None:
            return False
        if self.expires_at is not None and (now or time.time()) >= self.expires_at:
            return False
        return True

    @property
    def closing(self) -> bool:
        """True once a close was requested (nothing more is queued)."""
        return self.close_code is not None

    # -- sending ---------------------------------------------------------------
    def offer(self, text: str) -> bool:
        """Queue `text` for sending without waiting; drop the socket if its queue is full."""
        if self.closing:
            return False
        if self._queue.qsize() >= self.queue_size:
            self.drop(CLOSE_POLICY, "too slow: send queue full")
            return False
        self._queue.put_nowait(text)
        return True

    def close(self, code: int, reason: str) -> None:
        """Close after what is already queued has been sent."""
        if self.closing:
            return
        self.close_code, self.close_reason = code, reason
        self._queue.put_nowait(_Close(code, reason))

    def drop(self, code: int, reason: str) -> None:
        """Close now: forget queued messages and stop the writer."""
        if self.dropped:
            return
        log.info("websocket %s dropped: %s", self.walker, reason)
        self.dropped = True
        if not self.closing:
            self.close_code, self.close_reason = code, reason
        while not self._queue.empty():
            self._queue.get_nowait()
        if self.writer is not None:
            self.writer.cancel()

    def start_writer(self, name: str) -> asyncio.Task[None]:
        """Start the writer task, and the watch that drops the socket if a send stalls."""
        self.writer = asyncio.create_task(self.run_writer(), name=name)
        self._watch = asyncio.get_running_loop().call_later(self.send_timeout, self._check_send)
        return self.writer

    def stop_watching(self) -> None:
        """Stop the stalled-send watch (the socket is finished)."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def _check_send(self) -> None:
        """Drop the socket if its send in progress began `send_timeout` ago, else look again.

        One timer per socket, re-armed for when the send in progress would be late,
        instead of a timeout around every send (a quarter of a broadcast's cost).
        """
        self._watch = None
        if self.dropped or self.writer is None or self.writer.done():
            return
        loop = asyncio.get_running_loop()
        started = self._send_started
        if started is not None and loop.time() - started >= self.send_timeout:
            self.drop(CLOSE_POLICY, "too slow: send timed out")
            return
        due = started if started is not None else loop.time()
        self._watch = loop.call_at(due + self.send_timeout, self._check_send)

    async def run_writer(self) -> None:
        """Send queued messages in order until a close is sent or the socket fails.

        A send that stalls past `send_timeout` is ended by the watch `start_writer` set.
        """
        ws = self.websocket
        loop = asyncio.get_running_loop()
        while True:
            item = await self._queue.get()
            if isinstance(item, _Close):
                await self.send_close()
                return
            self._send_started = loop.time()
            try:
                await ws.send_text(item)
            except Exception as exc:  # noqa: BLE001 - the client went away; the reader ends too
                log.debug("websocket %s: send failed: %s", self.walker, exc)
                return
            finally:
                self._send_started = None

    async def send_close(self) -> None:
        """Send the close frame once (bounded; a dead or stuck client is not waited for)."""
        if self.close_sent or self.websocket.application_state != WebSocketState.CONNECTED:
            return
        if self.websocket.client_state == WebSocketState.DISCONNECTED:
            return
        self.close_sent = True
        code = self.close_code or 1000
        try:
            await asyncio.wait_for(self.websocket.close(code, self.close_reason), FINAL_CLOSE_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - best effort: the connection is ending anyway
            log.debug("websocket %s: close failed: %s", self.walker, exc)
