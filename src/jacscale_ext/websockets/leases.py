"""Connection caps counted across workers and servers: one lease document per open socket.

An identity (`user:<id>` or `ip:<address>`) with a cap of N owns N slot
documents, `<identity>#0` ... `<identity>#N-1`, in the app's document store
(the SQLite file every local worker shares, or MongoDB/PostgreSQL across
servers), the way the login throttle keeps its failure slots. A socket is let
in only if it takes a slot: an insert of a free `_id` (inserting an existing
`_id` fails in every store, so two workers racing for the last slot cannot
both win), or of a slot whose lease has expired (deleted first).

A lease expires `lease_seconds` after it was taken or last refreshed. Each
worker refreshes all of its leases in one batch every `refresh_seconds` and
deletes a socket's lease when it closes, so a worker that is SIGKILLed holds
its users' slots for at most `lease_seconds`.

Every method of `LeaseStore` blocks (store calls); `Leases` runs them in a
worker thread with a deadline, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jacscale_core.store import DocumentStore, DuplicateKey

log = logging.getLogger("jacscale.websocket")

COLLECTION = "ws_leases"
# Deadline of one store call (a batch refresh included).
STORE_TIMEOUT_SECONDS = 5.0
# Every this many refreshes, documents of identities nobody holds any more are deleted.
SWEEP_EVERY = 20


@dataclass(frozen=True, slots=True)
class Lease:
    """One socket's slot: document `slot`, marked with the socket's own `token`."""

    slot: str
    token: str


class LeaseStore:
    """Blocking lease operations on a DocumentStore (collection "ws_leases")."""

    def __init__(
        self, docs: DocumentStore, lease_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        """Leases in `docs` that expire `lease_seconds` after their last refresh."""
        self.docs = docs
        self.lease_seconds = lease_seconds
        self._clock = clock

    def acquire(self, identity: str, cap: int) -> Lease | None:
        """Take a free or expired slot of `identity`; None when all `cap` are held."""
        now = self._clock()
        token = uuid.uuid4().hex
        doc = {"identity": identity, "token": token, "expires": now + self.lease_seconds}
        for i in range(cap):
            slot = f"{identity}#{i}"
            if self._insert(slot, doc):
                return Lease(slot, token)
            current = self.docs.get(COLLECTION, slot)
            if current is None or _expired(current, now):
                self.docs.delete(COLLECTION, slot)
                if self._insert(slot, doc):
                    return Lease(slot, token)
        return None

    def _insert(self, slot: str, doc: dict[str, Any]) -> bool:
        try:
            self.docs.insert(COLLECTION, {"_id": slot, **doc})
        except DuplicateKey:
            return False
        return True

    def release(self, lease: Lease) -> None:
        """Delete the lease's slot if it is still this lease's (not retaken after expiry)."""
        current = self.docs.get(COLLECTION, lease.slot)
        if current is not None and current.get("token") == lease.token:
            self.docs.delete(COLLECTION, lease.slot)

    def refresh(self, leases: list[Lease]) -> list[Lease]:
        """Push the expiry of each lease forward; return those that were lost (expired and retaken)."""
        expires = self._clock() + self.lease_seconds
        lost = []
        for lease in leases:
            current = self.docs.get(COLLECTION, lease.slot)
            if current is None or current.get("token") != lease.token:
                lost.append(lease)
                continue
            self.docs.update(COLLECTION, lease.slot, {"expires": expires})
        return lost

    def sweep(self) -> int:
        """Delete expired leases (those of dead workers); return how many."""
        now = self._clock()
        removed = 0
        for doc in self.docs.find(COLLECTION, {}):
            if _expired(doc, now):
                removed += int(self.docs.delete(COLLECTION, str(doc["_id"])))
        return removed


def _expired(doc: dict[str, Any], now: float) -> bool:
    expires = doc.get("expires")
    return not isinstance(expires, (int, float)) or expires <= now


class LeaseUnavailable(Exception):
    """The store could not be asked (failed or missed its deadline)."""


class Leases:
    """This worker's leases: async, deadline-bound store calls and one refresh task."""

    def __init__(self, store: LeaseStore, refresh_seconds: float) -> None:
        """Refresh every lease held here each `refresh_seconds`."""
        self.store = store
        self.refresh_seconds = refresh_seconds
        self.held: set[Lease] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._releases: set[asyncio.Task[None]] = set()

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, *args), STORE_TIMEOUT_SECONDS)
        except Exception as exc:
            raise LeaseUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def acquire(self, identity: str, cap: int) -> Lease | None:
        """A slot for one more socket of `identity` (None: the cap is reached); may raise LeaseUnavailable."""
        lease: Lease | None = await self._call(self.store.acquire, identity, cap)
        if lease is not None:
            self.held.add(lease)
            if self._refresher is None:
                self._refresher = asyncio.create_task(self._refresh_loop(), name="ws-lease-refresh")
        return lease

    def release(self, lease: Lease) -> None:
        """Give the slot back in the background (the socket is already gone)."""
        self.held.discard(lease)
        task = asyncio.create_task(self._release(lease), name="ws-lease-release")
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, lease: Lease) -> None:
        try:
            await self._call(self.store.release, lease)
        except LeaseUnavailable as exc:
            log.warning(
                "websocket: could not release a connection lease (it expires by itself): %s", exc
            )

    async def _refresh_loop(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(self.refresh_seconds)
            rounds += 1
            try:
                await self.refresh()
                if rounds % SWEEP_EVERY == 0:
                    await self._call(self.store.sweep)
            except LeaseUnavailable as exc:
                log.warning("websocket: refreshing connection leases failed: %s", exc)

    async def refresh(self) -> None:
        """Refresh every held lease in one store batch."""
        if not self.held:
            return
        lost = await self._call(self.store.refresh, list(self.held))
        if lost:
            log.warning(
                "websocket: %d connection leases had expired and were taken by others", len(lost)
            )
            self.held.difference_update(lost)

    async def close(self, wait_seconds: float) -> None:
        """Stop refreshing; wait (bounded) for pending releases."""
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None
        if self._releases:
            await asyncio.wait(list(self._releases), timeout=wait_seconds)
