"""A lease held by one server at a time, on a PostgreSQL session advisory lock.

For the scheduler: of all the servers on one database, the one holding the
lease runs the due jobs. `AdvisoryLease(url).try_acquire()` takes
`pg_try_advisory_lock(key)` on a connection of its own and keeps that
connection open; the lease lasts as long as the connection (PostgreSQL releases
the lock itself when the holder dies or its connection drops, so a crashed
server never keeps it). `held()` checks the connection still answers;
`release()` unlocks and closes. The default key is schema.SCHEDULER_LOCK.

The scheduler's lease/job-store hook is not in the kernel yet: a scheduler
plugin wires this class to it (jobs themselves belong in the document store,
collection `jobs`).
"""

from __future__ import annotations

import threading

import psycopg

from jacscale_postgres.connection import connect_kwargs
from jacscale_postgres.schema import SCHEDULER_LOCK


class AdvisoryLease:
    """One server's claim on `key` (thread-safe; blocking calls, bounded by connect_timeout)."""

    def __init__(self, url: str, key: int = SCHEDULER_LOCK) -> None:
        """Prepare a lease on `key` in the database at `url` (nothing connects yet)."""
        self.url = url
        self.key = key
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        """Take the lease if no other session holds it; True while we hold it."""
        with self._lock:
            if self._conn is not None and self._alive():
                return True
            self._close()
            conn = psycopg.connect(
                self.url, autocommit=True, **connect_kwargs(self.url, "jacscale-lease")
            )
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            if row and row[0]:
                self._conn = conn
                return True
            conn.close()
            return False

    def held(self) -> bool:
        """True while our lease's connection still answers."""
        with self._lock:
            return self._conn is not None and self._alive()

    def release(self) -> None:
        """Give the lease up (another server may take it at once)."""
        with self._lock:
            if self._conn is not None and self._alive():
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            self._close()

    def _alive(self) -> bool:
        assert self._conn is not None
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
