"""WebSocket broadcasts across servers over PostgreSQL LISTEN/NOTIFY (no Redis needed).

Active when DATABASE_URL is a PostgreSQL URL and REDIS_URL is not set (Redis
pub/sub answers then). Every worker of every server LISTENs on one channel,
`jacscale:broadcast:<app name>` (JACSCALE_BROADCAST_CHANNEL overrides it),
NOTIFYs each broadcast there and ignores its own.

A NOTIFY payload holds at most 8000 bytes: a larger message is stored in
`jacscale_broadcasts` and the notification carries `#<row id>`; listeners read
the row (rows older than RETENTION_SECONDS are deleted by later publishers).
PostgreSQL delivers notifications in commit order, once per listener.

Like pub/sub, LISTEN is live-only: while the listening connection is down, a
worker's sockets get only its own broadcasts. The listener reconnects with
backoff (0.1 s to 5 s), checks its connection with `SELECT 1` every
IDLE_CHECK_SECONDS without traffic, and /readyz reports the outage.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

import msgspec
import psycopg
from psycopg import sql

from jacscale_ext.broadcast import (
    BroadcastMessage,
    Deliver,
    ListeningBus,
    stop_task,
)
from jacscale_ext.kvstore import mask_uri
from jacscale_postgres.connection import connect_kwargs, reason

log = logging.getLogger("jacscale.postgres.broadcast")

CONNECT_TIMEOUT = 5.0
PUBLISH_TIMEOUT = 5.0
IDLE_CHECK_SECONDS = 5.0
MAX_PAYLOAD = 7_900  # PostgreSQL's limit is 8000 bytes
RETENTION_SECONDS = 60
CHANNEL_BYTES = 63  # longer identifiers are truncated by the server


def channel_name(name: str) -> str:
    """`name`, or a stable shortened form when PostgreSQL would truncate it."""
    if len(name.encode()) <= CHANNEL_BYTES:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return name.encode()[: CHANNEL_BYTES - 17].decode(errors="ignore") + ":" + digest


class PostgresBroadcastBus(ListeningBus):
    """A BroadcastBus on one PostgreSQL LISTEN/NOTIFY channel."""

    errors = (psycopg.Error, OSError, TimeoutError)
    lost = "LISTEN connection lost"
    waiting = "not listening on"

    def __init__(self, url: str, channel: str) -> None:
        """Prepare (nothing connects before `start`)."""
        super().__init__(url, channel_name(channel))
        self._kwargs = connect_kwargs(url, "jacscale-broadcast")
        self._publisher: psycopg.AsyncConnection | None = None
        self._publish_lock = asyncio.Lock()

    def _describe(self, exc: BaseException) -> str:
        return f"PostgreSQL at {mask_uri(self.url)}: {reason(exc, self.url)}"

    def _healthy(self) -> str:
        return f"postgresql LISTEN {self.channel} at {mask_uri(self.url)}"

    async def _connect(self) -> psycopg.AsyncConnection:
        return await asyncio.wait_for(
            psycopg.AsyncConnection.connect(self.url, autocommit=True, **self._kwargs),
            CONNECT_TIMEOUT,
        )

    async def start(self, deliver: Deliver) -> None:
        """LISTEN (waiting at most 5 s), then keep listening in a task."""
        self._deliver = deliver
        self._task = asyncio.create_task(self._listen_forever(), name="jacscale-pg-broadcast")
        try:
            await asyncio.wait_for(self._listening.wait(), CONNECT_TIMEOUT * 2)
        except TimeoutError:
            error = self._error
            await self.close()
            raise RuntimeError(
                f"broadcast bus: could not LISTEN on {self.channel} at {mask_uri(self.url)}"
                + (f": {error}" if error else "")
            ) from None

    async def publish(self, message: BroadcastMessage) -> None:
        """NOTIFY the message (bounded by PUBLISH_TIMEOUT; one retry on a fresh connection)."""
        data = msgspec.json.encode(message)
        for attempt in (1, 2):
            try:
                async with self._publish_lock:
                    await asyncio.wait_for(self._notify(data), PUBLISH_TIMEOUT)
                return
            except (psycopg.Error, OSError, TimeoutError) as exc:
                await self._drop_publisher()
                if attempt == 2 or not isinstance(exc, psycopg.OperationalError):
                    raise ConnectionError(self._describe(exc)) from None

    async def _notify(self, data: bytes) -> None:
        if self._publisher is None or self._publisher.closed:
            self._publisher = await self._connect()
        conn = self._publisher
        if len(data) <= MAX_PAYLOAD:
            await conn.execute("SELECT pg_notify(%s, %s)", (self.channel, data.decode()))
            return
        async with conn.transaction():
            cur = await conn.execute(
                "INSERT INTO jacscale_broadcasts (body) VALUES (%s) RETURNING id", (data,)
            )
            row = await cur.fetchone()
            assert row is not None
            await conn.execute("SELECT pg_notify(%s, %s)", (self.channel, f"#{row[0]}"))
            await conn.execute(
                "DELETE FROM jacscale_broadcasts WHERE created < now() - make_interval(secs => %s)",
                (RETENTION_SECONDS,),
            )

    async def _drop_publisher(self) -> None:
        conn, self._publisher = self._publisher, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), CONNECT_TIMEOUT)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                log.debug("broadcast: closing the publishing connection failed: %s", exc)

    async def close(self) -> None:
        """Stop listening and close both connections."""
        await stop_task(self._task)
        self._task = None
        await self._drop_publisher()

    async def _listen(self) -> None:
        conn: psycopg.AsyncConnection | None = None
        try:
            conn = await self._connect()
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            self._now_listening()
            while True:
                got = 0
                async for note in conn.notifies(timeout=IDLE_CHECK_SECONDS):
                    got += 1
                    await self._handle(note.payload)
                if not got:
                    await asyncio.wait_for(conn.execute("SELECT 1"), CONNECT_TIMEOUT)
        finally:
            if conn is not None:
                try:
                    await asyncio.wait_for(conn.close(), CONNECT_TIMEOUT)
                except (psycopg.Error, OSError, TimeoutError) as exc:
                    log.debug("broadcast: closing the old connection failed: %s", exc)

    async def _fetch(self, row_id: int) -> bytes | None:
        """A large message's body (on the publishing connection: the listener only listens)."""
        async with self._publish_lock:
            if self._publisher is None or self._publisher.closed:
                self._publisher = await self._connect()
            cur = await self._publisher.execute(
                "SELECT body FROM jacscale_broadcasts WHERE id = %s", (row_id,)
            )
            row = await cur.fetchone()
        return bytes(row[0]) if row else None

    async def _handle(self, payload: str) -> None:
        data = payload.encode()
        if payload.startswith("#"):
            try:
                stored = await asyncio.wait_for(self._fetch(int(payload[1:])), CONNECT_TIMEOUT)
            except (psycopg.Error, OSError, TimeoutError, ValueError) as exc:
                await self._drop_publisher()
                log.warning("broadcast: could not read message %s: %s", payload, type(exc).__name__)
                return
            if stored is None:
                log.warning("broadcast: message %s expired before it was read", payload)
                return
            data = stored
        self._receive(data)
        await asyncio.sleep(0)  # let socket writers drain between messages
