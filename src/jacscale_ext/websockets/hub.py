"""The sockets open in this worker: connection caps, broadcast fan-out, drain.

Broadcasts reach a socket only if it may see the walker's results: every
socket of a `:pub` walker, and only sockets holding a valid token for any other
walker. The decision is made here, on the receiving side, from the socket's own
state, whichever worker or pod ran the walker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from jacscale_ext.websockets.connection import CLOSE_GOING_AWAY, Connection
from jacscale_ext.websockets.leases import Lease, Leases, LeaseUnavailable

log = logging.getLogger("jacscale.websocket")

CLOSE_TRY_AGAIN_LATER = 1013


class Refused(Exception):
    """A connection cap refuses this socket (the message says which)."""


class TryLater(Refused):
    """The shared connection counts could not be read; the client should retry (close 1013)."""


class Hub:
    """Registry of this worker's sockets, by walker and by user.

    With `leases`, the per-user and per-address caps count the sockets of every
    worker and server sharing the store (each socket holds a lease there);
    without, only this worker's.
    """

    def __init__(
        self, max_connections: int, max_per_user: int, max_per_ip: int, leases: Leases | None = None
    ) -> None:
        """An empty hub with these caps (identities are `user:<id>` or `ip:<address>`)."""
        self.max_connections = max_connections
        self.max_per_user = max_per_user
        self.max_per_ip = max_per_ip
        self.leases = leases
        self.lease_of: dict[Connection, Lease] = {}
        self.by_walker: dict[str, set[Connection]] = {}
        self.by_identity: dict[str, set[Connection]] = {}
        self.broadcast_walkers: set[str] = set()
        self.draining = False
        self.on_listening: Callable[[bool], None] | None = None
        self._listening = False

    @property
    def count(self) -> int:
        """Open sockets in this worker."""
        return sum(len(s) for s in self.by_walker.values())

    async def admit(self, conn: Connection) -> None:
        """Register `conn`, or raise Refused when a cap is reached (TryLater: the store failed)."""
        if self.draining:
            raise Refused("the server is shutting down")
        if self.count >= self.max_connections:
            raise Refused(f"too many connections to this server ({self.max_connections})")
        self._check_identity(conn.identity)
        lease = await self._lease(conn.identity)
        if self.draining:
            self._release(lease)
            raise Refused("the server is shutting down")
        if lease is not None:
            self.lease_of[conn] = lease
        self.by_walker.setdefault(conn.walker, set()).add(conn)
        self.by_identity.setdefault(conn.identity, set()).add(conn)
        self._update_listening()

    async def rekey(self, conn: Connection, identity: str) -> None:
        """Count `conn` for another user (it authenticated later), or raise Refused."""
        if identity == conn.identity:
            return
        self._check_identity(identity)
        lease = await self._lease(identity)
        self._release(self.lease_of.pop(conn, None))
        if lease is not None:
            self.lease_of[conn] = lease
        self._discard(self.by_identity, conn.identity, conn)
        conn.identity = identity
        self.by_identity.setdefault(identity, set()).add(conn)

    def _cap(self, identity: str) -> int:
        return self.max_per_user if identity.startswith("user:") else self.max_per_ip

    def _refusal(self, identity: str) -> Refused:
        if identity.startswith("user:"):
            return Refused(f"too many connections for this user ({self.max_per_user})")
        return Refused(
            f"too many connections without a token from this address ({self.max_per_ip})"
        )

    def _check_identity(self, identity: str) -> None:
        if len(self.by_identity.get(identity, ())) >= self._cap(identity):
            raise self._refusal(identity)

    async def _lease(self, identity: str) -> Lease | None:
        """A shared slot for one more socket of `identity` (None without shared leases)."""
        if self.leases is None:
            return None
        try:
            lease = await self.leases.acquire(identity, self._cap(identity))
        except LeaseUnavailable as exc:
            log.error("websocket: connection counts unavailable, socket refused (1013): %s", exc)
            raise TryLater("connection counts are unavailable; try again later") from None
        if lease is None:
            raise self._refusal(identity)
        return lease

    def _release(self, lease: Lease | None) -> None:
        if lease is not None and self.leases is not None:
            self.leases.release(lease)

    def remove(self, conn: Connection) -> None:
        """Forget `conn` and give back its lease (idempotent)."""
        self._release(self.lease_of.pop(conn, None))
        self._discard(self.by_walker, conn.walker, conn)
        self._discard(self.by_identity, conn.identity, conn)
        self._update_listening()

    @staticmethod
    def _discard(index: dict[str, set[Connection]], key: str, conn: Connection) -> None:
        peers = index.get(key)
        if peers is not None:
            peers.discard(conn)
            if not peers:
                del index[key]

    def _update_listening(self) -> None:
        listening = any(w in self.by_walker for w in self.broadcast_walkers)
        if listening != self._listening:
            self._listening = listening
            if self.on_listening is not None:
                self.on_listening(listening)

    def deliver(self, walker: str, public: bool, payload: str) -> int:
        """Queue `payload` on every socket of `walker` allowed to see it; return how many."""
        now = time.time()
        sent = 0
        for conn in list(self.by_walker.get(walker, ())):
            if not public and not conn.authorised(now):
                continue
            if conn.offer(payload):
                sent += 1
        return sent

    async def drain(self, wait_seconds: float) -> None:
        """Refuse new sockets; close every open one with 1001 and wait (bounded) for them."""
        self.draining = True
        conns = [c for peers in self.by_walker.values() for c in peers]
        if not conns:
            return
        log.info("websocket: closing %d sockets (server shutting down)", len(conns))
        for conn in conns:
            conn.close(CLOSE_GOING_AWAY, "server shutting down")
        writers = [c.writer for c in conns if c.writer is not None and not c.writer.done()]
        if writers:
            _, pending = await asyncio.wait(writers, timeout=wait_seconds)
            for conn in conns:
                if conn.writer in pending:
                    conn.drop(CLOSE_GOING_AWAY, "server shutting down")
