"""Login failure throttling: per account and per client IP, sliding windows.

Each key (an account identity such as "email:bob@example.com", or "ip:1.2.3.4")
keeps the times of its recent failed logins. Once a key has `max_failures`
failures inside `window_seconds`, further attempts are refused, before any
password is hashed, until the oldest of those failures leaves the window; the
caller answers 429 with `Retry-After` set to that many seconds.

Keys for accounts that do not exist are throttled exactly like real ones, so the
throttle cannot be used to find out which accounts exist. A successful login
clears its account key (not its IP key). Refused attempts are not recorded,
so an attacker cannot extend a lock forever.

State is kept in this process (per worker). It is bounded: when more than
`max_keys` keys are tracked, stale ones are dropped first, then the oldest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


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


class FailureThrottle:
    """Sliding-window failure counters keyed by string, each kind with its own Limit."""

    def __init__(
        self,
        limits: dict[str, Limit],
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.max_keys = max_keys
        self._clock = clock
        self._failures: dict[str, list[float]] = {}

    def _limit(self, key: str) -> Limit | None:
        kind = key.split(":", 1)[0]
        limit = self.limits.get(kind)
        if limit is None or limit.max_failures <= 0:
            return None
        return limit

    def _recent(self, key: str, limit: Limit, now: float) -> list[float]:
        stamps = self._failures.get(key)
        if not stamps:
            return []
        cutoff = now - limit.window_seconds
        fresh = [t for t in stamps if t > cutoff]
        if fresh:
            self._failures[key] = fresh
        else:
            self._failures.pop(key, None)
        return fresh

    def retry_after(self, key: str) -> int:
        """Seconds until `key` may try again (0 when it may try now)."""
        limit = self._limit(key)
        if limit is None:
            return 0
        now = self._clock()
        fresh = self._recent(key, limit, now)
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
            if limit is None:
                continue
            fresh = self._recent(key, limit, now)
            fresh.append(now)
            self._failures[key] = fresh[-limit.max_failures :]
        if len(self._failures) > self.max_keys:
            self._shrink(now)

    def reset(self, key: str) -> None:
        """Forget the failures of `key` (after a successful login)."""
        self._failures.pop(key, None)

    def _shrink(self, now: float) -> None:
        for key in list(self._failures):
            limit = self._limit(key)
            if limit is None or not self._recent(key, limit, now):
                self._failures.pop(key, None)
        while len(self._failures) > self.max_keys:
            self._failures.pop(next(iter(self._failures)))

    def __len__(self) -> int:
        return len(self._failures)
