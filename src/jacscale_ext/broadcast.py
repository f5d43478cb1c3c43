"""Carrying WebSocket broadcasts between worker processes (and pods).

A broadcast walker's result goes straight to the sockets of the worker that ran
it, and to a *bus* for every other process. The `jacscale_broadcast_bus` hook
chooses the bus: the Redis plugin answers when REDIS_URL is set (pub/sub,
across pods); otherwise `SqliteBroadcastBus` below carries messages between the
workers of one host through a small table in `<data dir>/broadcast.db` that
each worker polls.

Why a polled SQLite table for the embedded default: it needs no server and no
extra dependency; it works for any number of local workers (hypercorn spawns
them and they share nothing but the data directory); a crashed worker leaves
nothing to clean up; and a worker that stalls for a moment still finds the
messages it missed (they are kept `retention` seconds). The price is latency
(one poll interval, 25 ms by default) and one cheap `PRAGMA data_version`
query per interval while sockets listen (twice a second when none do).
Unix datagram sockets were the alternative: lower latency, but their paths are
limited to 108 bytes (data directories are often longer), datagrams are size
limited, and dead workers leave socket files behind.

The file lives apart from `jacscale.db` so broadcast churn never touches the
graph store's write-ahead log or its change polling.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import msgspec

log = logging.getLogger("jacscale.broadcast")

T = TypeVar("T")
Audience = Literal["public", "authenticated"]

PUBLISH_TIMEOUT_SECONDS = 5.0
BUSY_TIMEOUT_MS = 5_000



async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait until it has finished (None: nothing to do)."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass

class BroadcastMessage(msgspec.Struct, frozen=True):
    """One broadcast: the encoded envelope for every authorised socket of `walker`.

    `audience` is informational (receivers decide from their own copy of the
    program who may see a walker's results); `origin` names the publishing
    process so it does not deliver its own message twice; `created` is the
    publisher's wall clock (seconds).
    """

    walker: str
    audience: Audience
    payload: str
    origin: str
    created: float


Deliver = Callable[[BroadcastMessage], None]
_decoder = msgspec.json.Decoder(BroadcastMessage)


@runtime_checkable
class BroadcastBus(Protocol):
    """What the WebSocket extension needs from a bus (see the module docstring).

    `deliver` is called on the event loop, once per message published by
    another process, and must not block. A bus never delivers a message back to
    the process that published it.
    """

    origin: str

    async def start(self, deliver: Deliver) -> None:
        """Begin receiving; called once per worker after start-up."""
        ...

    async def publish(self, message: BroadcastMessage) -> None:
        """Send `message` to every other process (bounded by a timeout; raises on failure)."""
        ...

    def set_listening(self, listening: bool) -> None:
        """Whether this process has sockets that want broadcasts (a bus may idle when not)."""
        ...

    def status(self) -> tuple[bool, str]:
        """(healthy, detail) for /readyz."""
        ...

    async def close(self) -> None:
        """Stop receiving and release connections."""
        ...


def new_origin() -> str:
    """A name for this process that no other process (here or on another host) shares."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def channel_for(app: Any) -> str:
    """A cross-server bus's channel: JACSCALE_BROADCAST_CHANNEL, else one per app name."""
    return os.environ.get("JACSCALE_BROADCAST_CHANNEL") or (
        f"jacscale:broadcast:{app.settings.app_path.stem}"
    )


class ListeningBus:
    """What a bus that listens on a server shares (Redis pub/sub, PostgreSQL LISTEN).

    A subclass connects and listens in `_listen` (calling `_now_listening` once it
    does, and `_receive` for each message) until the connection fails with one of
    `errors`; it is run again with back-off (0.1 s doubling to `MAX_BACKOFF`)
    for as long as the bus lives, and `status` reports the outage meanwhile.
    Listening is live-only: nothing sent while the connection is down arrives.
    """

    MAX_BACKOFF = 5.0
    errors: tuple[type[Exception], ...] = (OSError, TimeoutError)
    lost = "connection lost"  # the status while reconnecting: "<lost>: <error type>"
    waiting = "not listening on"  # the status before the first connection

    def __init__(self, url: str, channel: str) -> None:
        """Prepare (nothing connects before the subclass's `start`)."""
        self.url = url
        self.channel = channel
        self.origin = new_origin()
        self._deliver: Deliver | None = None
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._error: str | None = None
        self._backoff = 0.1
        self.delivered = 0

    def _describe(self, exc: BaseException) -> str:
        """The server (URI masked) and what went wrong, for logs and errors."""
        raise NotImplementedError

    def _healthy(self) -> str:
        """The status while listening."""
        raise NotImplementedError

    async def _listen(self) -> None:
        """Connect, listen, receive until the connection fails; close what it opened."""
        raise NotImplementedError

    def _now_listening(self) -> None:
        if self._error is not None:
            log.info("broadcast: listening on %s again", self.channel)
        self._error = None
        self._listening.set()
        self._backoff = 0.1

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except self.errors as exc:
                self._listening.clear()
                if self._error is None:
                    log.warning("broadcast: lost %s; reconnecting", self._describe(exc))
                self._error = f"{self.lost}: {type(exc).__name__}"
            await asyncio.sleep(self._backoff)
            self._backoff = min(self.MAX_BACKOFF, self._backoff * 2)

    def _receive(self, data: bytes) -> None:
        """Deliver a message another process published (our own were delivered already)."""
        try:
            message = _decoder.decode(data)
        except msgspec.DecodeError as exc:
            log.warning("broadcast: ignoring a malformed message on %s: %s", self.channel, exc)
            return
        if message.origin == self.origin or self._deliver is None:
            return
        try:
            self._deliver(message)
            self.delivered += 1
        except Exception:
            log.exception("broadcast: delivering a %s message failed", message.walker)

    def set_listening(self, listening: bool) -> None:
        """Nothing to do: only messages sent while we listen arrive."""

    def status(self) -> tuple[bool, str]:
        """Healthy while listening."""
        if self._error is not None:
            return False, self._error
        if not self._listening.is_set():
            return False, f"{self.waiting} {self.channel}"
        return True, self._healthy()


SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    walker TEXT NOT NULL,
    audience TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_created ON messages(created);
"""


class SqliteBroadcastBus:
    """The embedded bus: a message table in one SQLite file that every local worker polls.

    All SQLite work happens on one thread of its own, never on the event loop.
    Bounded: a poll reads at most `batch` rows; rows older than `retention`
    seconds (or beyond `max_rows`) are pruned every `prune_every` seconds.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        poll_interval: float = 0.025,
        idle_interval: float = 0.5,
        retention: float = 60.0,
        max_rows: int = 100_000,
        batch: int = 500,
        prune_every: float = 5.0,
    ) -> None:
        """Prepare a bus on the file at `path` (created on start)."""
        self.path = Path(path)
        self.origin = new_origin()
        self.poll_interval = poll_interval
        self.idle_interval = idle_interval
        self.retention = retention
        self.max_rows = max_rows
        self.batch = batch
        self.prune_every = prune_every
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jacscale-broadcast")
        self._conn: sqlite3.Connection | None = None
        self._last_seq = 0
        self._data_version: int | None = None
        self._more = False
        self._last_prune = 0.0
        self._deliver: Deliver | None = None
        self._task: asyncio.Task[None] | None = None
        self._listening = False
        self._listening_since = 0.0
        self._wake = asyncio.Event()
        self._error: str | None = None
        self.delivered = 0

    # -- plumbing --------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, fn, *args)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # Broadcasts are ephemeral: losing the last ones in a power cut is fine.
        conn.execute("PRAGMA synchronous = OFF")
        conn.executescript(SCHEMA)
        self._last_seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM messages").fetchone()[0]
        self._data_version = conn.execute("PRAGMA data_version").fetchone()[0]
        self._conn = conn

    def _insert(self, message: BroadcastMessage) -> None:
        assert self._conn is not None, "bus not started"
        self._conn.execute(
            "INSERT INTO messages (origin, walker, audience, payload, created) VALUES (?, ?, ?, ?, ?)",
            (message.origin, message.walker, message.audience, message.payload, message.created),
        )

    def _read(self) -> list[BroadcastMessage]:
        conn = self._conn
        assert conn is not None, "bus not started"
        now = time.time()
        if now - self._last_prune >= self.prune_every:
            self._last_prune = now
            conn.execute("DELETE FROM messages WHERE created < ?", (now - self.retention,))
            conn.execute(
                "DELETE FROM messages WHERE seq <= (SELECT MAX(seq) FROM messages) - ?",
                (self.max_rows,),
            )
        # data_version changes only when ANOTHER connection commits: the idle
        # poll is this one cheap query.
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        self._more = False
        if version == self._data_version:
            return []
        rows = conn.execute(
            "SELECT seq, origin, walker, audience, payload, created FROM messages "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (self._last_seq, self.batch),
        ).fetchall()
        # With a full batch there may be more: read on at once, whatever data_version says.
        self._more = len(rows) == self.batch
        self._data_version = None if self._more else version
        if not rows:
            return []
        if rows[0][0] > self._last_seq + 1 and self._listening:
            log.warning(
                "broadcast: %d messages were pruned before this worker read them",
                rows[0][0] - self._last_seq - 1,
            )
        self._last_seq = rows[-1][0]
        return [
            BroadcastMessage(walker=r[2], audience=r[3], payload=r[4], origin=r[1], created=r[5])
            for r in rows
            if r[1] != self.origin
        ]

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- BroadcastBus ------------------------------------------------------------
    async def start(self, deliver: Deliver) -> None:
        """Open the file and start polling."""
        self._deliver = deliver
        await self._call(self._open)
        self._task = asyncio.create_task(self._poll_loop(), name="jacscale-broadcast-poll")

    async def publish(self, message: BroadcastMessage) -> None:
        """Append `message` for the other workers."""
        await asyncio.wait_for(self._call(self._insert, message), PUBLISH_TIMEOUT_SECONDS)

    def set_listening(self, listening: bool) -> None:
        """Poll fast while sockets listen; skip history when they start listening again."""
        if listening and not self._listening:
            self._listening_since = time.time()
            self._wake.set()
        self._listening = listening

    def status(self) -> tuple[bool, str]:
        """Healthy unless the last poll failed."""
        if self._error:
            return False, self._error
        return True, f"sqlite {self.path.name}"

    async def close(self) -> None:
        """Stop polling and close the file."""
        await stop_task(self._task)
        self._task = None
        try:
            await self._call(self._close_conn)
        finally:
            self._thread.shutdown(wait=False, cancel_futures=True)

    async def _poll_loop(self) -> None:
        while True:
            try:
                messages = await self._call(self._read)
            except sqlite3.Error as exc:
                if self._error is None:
                    log.error("broadcast: polling %s failed: %s", self.path, exc)
                self._error = f"polling failed: {type(exc).__name__}"
                await asyncio.sleep(1.0)
                continue
            if self._error is not None:
                log.info("broadcast: polling %s works again", self.path)
                self._error = None
            if self._listening and self._deliver is not None:
                for message in messages:
                    if message.created < self._listening_since:
                        continue  # history from before anyone here listened
                    try:
                        self._deliver(message)
                        self.delivered += 1
                    except Exception:
                        log.exception("broadcast: delivering a %s message failed", message.walker)
                    # Let socket writers run between messages: a batch must not
                    # pile up in a fast client's send queue as if it were slow.
                    await asyncio.sleep(0)
            if self._more:
                continue  # a full batch: read on without waiting
            self._wake.clear()
            interval = self.poll_interval if self._listening else self.idle_interval
            try:
                await asyncio.wait_for(self._wake.wait(), interval)
            except TimeoutError:
                pass
