"""Failure throttling: sliding windows of failed attempts per key, kept where every worker sees them.

Each key (an account identity such as "login-account:email:bob@example.com", or
"ip:1.2.3.4") keeps the times of its recent failures. Once a key has
`max_failures` failures inside `window_seconds`, `check` refuses further
attempts, before any password is hashed, until the oldest of those failures
leaves the window; the caller answers 429 with `Retry-After` set to that many
seconds. Refused attempts are not recorded, so an attacker cannot extend a lock
forever. The kind of a key (the part before the first ":") chooses its Limit.

Where the failure times live is a `FailureLog`:

- `DocumentFailureLog` keeps them in the app's document store (the SQLite file
  every local worker shares, or MongoDB with that plugin), so `--workers 4` or
  four pods do not give an attacker four times the attempts. Every method
  blocks: call the throttle from a worker thread.
- `MemoryFailureLog` keeps them in this process (bounded), for tests and tools.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from jacscale_core.store import DocumentStore, DuplicateKey

COLLECTION = "auth_failures"
# A sweep of stale failure documents every this many recorded failures.
SWEEP_EVERY = 1000


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `max_failures` failures per `window_seconds` (0 failures: no limit)."""

    max_failures: int
    window_seconds: float


class Throttled(Exception):
    """Too many failures for `key`; retry after `retry_after` whole seconds."""

    def __init__(self, key: str, retry_after: int) -> None:
        super().__init__(f"throttled for {retry_after}s")
        self.key = key
        self.retry_after = retry_after


class FailureLog(Protocol):
    """Where failure times are kept (at most `limit.max_failures` per key count)."""

    def recent(self, key: str, limit: Limit, now: float) -> list[float]:
        """The failure times of `key` inside the window ending at `now`, oldest first."""
        ...

    def add(self, key: str, limit: Limit, now: float) -> None:
        """Record one failure of `key` at `now`."""
        ...

    def clear(self, key: str, limit: Limit) -> None:
        """Forget every failure of `key`."""
        ...


class MemoryFailureLog:
    """Failure times in this process's memory, bounded to `max_keys` keys."""

    def __init__(self, max_keys: int = 100_000) -> None:
        """An empty log."""
        self.max_keys = max_keys
        self._failures: dict[str, list[float]] = {}
        self._windows: dict[str, float] = {}

    def recent(self, key: str, limit: Limit, now: float) -> list[float]:
        """The failures of `key` inside the window (stale ones are forgotten)."""
        stamps = self._failures.get(key)
        if not stamps:
            return []
        cutoff = now - limit.window_seconds
        fresh = [t for t in stamps if t > cutoff]
        if fresh:
            self._failures[key] = fresh
        else:
            self._forget(key)
        return fresh

    def _forget(self, key: str) -> None:
        self._failures.pop(key, None)
        self._windows.pop(key, None)

    def add(self, key: str, limit: Limit, now: float) -> None:
        """Record a failure, keeping the last `max_failures` of the key."""
        fresh = self.recent(key, limit, now)
        fresh.append(now)
        self._failures[key] = fresh[-limit.max_failures :]
        self._windows[key] = limit.window_seconds
        if len(self._failures) > self.max_keys:
            self._shrink(now)

    def clear(self, key: str, limit: Limit) -> None:
        """Forget `key`."""
        self._forget(key)

    def _shrink(self, now: float) -> None:
        for key in list(self._failures):
            window = self._windows.get(key, 0.0)
            if not [t for t in self._failures[key] if t > now - window]:
                self._forget(key)
        while len(self._failures) > self.max_keys:
            self._forget(next(iter(self._failures)))

    def __len__(self) -> int:
        return len(self._failures)


class DocumentFailureLog:
    """Failure times in a DocumentStore, shared by every worker and pod using it.

    A key owns `max_failures` slot documents, `<key>#0`, `<key>#1`, ...; a failure
    is an insert into the first free slot (or a stale one, deleted first). An
    insert of an existing `_id` fails in every store, so two workers recording
    at once take two different slots: no failure is lost to a race. Slots fill
    from #0, so a key without failures costs one read.
    """

    def __init__(self, docs: DocumentStore, clock: Callable[[], float] = time.time) -> None:
        """Keep failures in `docs` (collection "auth_failures")."""
        self.docs = docs
        self._clock = clock
        self._added = 0

    def _slots(self, key: str, limit: Limit) -> Iterable[str]:
        return (f"{key}#{i}" for i in range(limit.max_failures))

    def recent(self, key: str, limit: Limit, now: float) -> list[float]:
        """The fresh slot times of `key`, oldest first."""
        cutoff = now - limit.window_seconds
        found = []
        for slot in self._slots(key, limit):
            doc = self.docs.get(COLLECTION, slot)
            if doc is None:
                break
            stamp = doc.get("t")
            if isinstance(stamp, (int, float)) and stamp > cutoff:
                found.append(float(stamp))
        return sorted(found)

    def add(self, key: str, limit: Limit, now: float) -> None:
        """Take the first free or stale slot (nothing to do when all are fresh)."""
        cutoff = now - limit.window_seconds
        doc = {"t": now, "expires": now + limit.window_seconds}
        for slot in self._slots(key, limit):
            if self._insert(slot, doc):
                break
            current = self.docs.get(COLLECTION, slot)
            stale = current is None or not isinstance(current.get("t"), (int, float))
            if stale or current["t"] <= cutoff:  # type: ignore[index]
                self.docs.delete(COLLECTION, slot)
                if self._insert(slot, doc):
                    break
        self._added += 1
        if self._added % SWEEP_EVERY == 0:
            self.sweep(now)

    def _insert(self, slot: str, doc: dict[str, float]) -> bool:
        try:
            self.docs.insert(COLLECTION, {"_id": slot, **doc})
        except DuplicateKey:
            return False
        return True

    def clear(self, key: str, limit: Limit) -> None:
        """Delete the key's slots (stops at the first empty one)."""
        for slot in self._slots(key, limit):
            if self.docs.get(COLLECTION, slot) is None:  # a read: no write when there is nothing
                break
            self.docs.delete(COLLECTION, slot)

    def sweep(self, now: float | None = None) -> int:
        """Delete failure documents whose window has passed; return how many."""
        now = self._clock() if now is None else now
        removed = 0
        for doc in self.docs.find(COLLECTION, {}):
            expires = doc.get("expires")
            if not isinstance(expires, (int, float)) or expires <= now:
                removed += int(self.docs.delete(COLLECTION, str(doc["_id"])))
        return removed


class FailureThrottle:
    """Sliding-window failure counters keyed by string, each kind with its own Limit."""

    def __init__(
        self,
        limits: dict[str, Limit],
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.time,
        log: FailureLog | None = None,
    ) -> None:
        """Counters with these limits, in `log` (default: this process's memory)."""
        self.limits = limits
        self._clock = clock
        self.log: FailureLog = log if log is not None else MemoryFailureLog(max_keys)

    def _limit(self, key: str) -> Limit | None:
        kind = key.split(":", 1)[0]
        limit = self.limits.get(kind)
        if limit is None or limit.max_failures <= 0:
            return None
        return limit

    def retry_after(self, key: str) -> int:
        """Seconds until `key` may try again (0 when it may try now)."""
        limit = self._limit(key)
        if limit is None:
            return 0
        now = self._clock()
        fresh = self.log.recent(key, limit, now)
        if len(fresh) < limit.max_failures:
            return 0
        oldest_counted = fresh[-limit.max_failures]
        return max(1, math.ceil(oldest_counted + limit.window_seconds - now))

    def check(self, keys: Iterable[str]) -> None:
        """Raise Throttled for the first of `keys` that is over its limit."""
        for key in keys:
            wait = self.retry_after(key)
            if wait:
                raise Throttled(key, wait)

    def record_failure(self, keys: Iterable[str]) -> None:
        """Count one failed attempt against each of `keys`."""
        now = self._clock()
        for key in keys:
            limit = self._limit(key)
            if limit is not None:
                self.log.add(key, limit, now)

    def reset(self, key: str) -> None:
        """Forget the failures of `key` (after a successful login)."""
        limit = self._limit(key)
        if limit is not None:
            self.log.clear(key, limit)

    def __len__(self) -> int:
        """Keys tracked in memory (0 for a shared log)."""
        return len(self.log) if isinstance(self.log, MemoryFailureLog) else 0
