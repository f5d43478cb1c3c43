"""The embedded store's JobStore: two tables in the SQLite database of the graph store.

`scheduler_leases` holds the leader lease; `scheduler_jobs` one row per job (the
columns the scheduler queries by, the rest as JSON). Every change runs in the
store's `BEGIN IMMEDIATE` transaction, so the workers of one machine (and any
process opening the same file) see one lease holder and claim each fire once.
"""

from __future__ import annotations

import json
from typing import Any

from jacscale_ext.scheduler.jobs import Job
from jacscale_ext.sqlite_store import SqliteGraphStore

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS scheduler_leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS scheduler_jobs (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        created_at REAL NOT NULL,
        next_run REAL,
        doc TEXT NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS scheduler_jobs_owner ON scheduler_jobs(owner, created_at, id)",
    "CREATE INDEX IF NOT EXISTS scheduler_jobs_due ON scheduler_jobs(next_run)"
    " WHERE next_run IS NOT NULL",
)


def _row(job: Job) -> tuple[Any, ...]:
    doc = job.to_doc()
    doc.pop("next_run")
    return (job.job_id, job.owner, job.created_at, job.next_run, json.dumps(doc))


def _job(next_run: float | None, doc: str) -> Job:
    job = Job.from_doc(json.loads(doc))
    job.next_run = next_run
    return job


class SqliteJobStore:
    """JobStore on the graph store's SQLite connection (its lock and transactions)."""

    def __init__(self, store: SqliteGraphStore) -> None:
        """Create the tables if needed."""
        self._store = store
        self.location = store.location
        with store.transaction() as conn:
            for statement in SCHEMA:
                conn.execute(statement)

    # -- lease -----------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        """Take or renew the lease (see JobStore.acquire_lease)."""
        with self._store.locked() as conn:
            row = conn.execute(
                "SELECT holder, expires FROM scheduler_leases WHERE name = ?", (name,)
            ).fetchone()
        if row is not None and row[0] != holder and row[1] > now:
            return False  # held by another: answered without taking the write lock
        with self._store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO scheduler_leases (name, holder, expires) VALUES (?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET holder = excluded.holder,"
                " expires = excluded.expires"
                " WHERE scheduler_leases.holder = excluded.holder"
                " OR scheduler_leases.expires <= ?",
                (name, holder, now + ttl, now),
            )
            return cur.rowcount == 1

    def release_lease(self, name: str, holder: str) -> None:
        """Drop the lease if `holder` has it."""
        with self._store.transaction() as conn:
            conn.execute(
                "DELETE FROM scheduler_leases WHERE name = ? AND holder = ?", (name, holder)
            )

    def lease_holder(self, name: str, now: float) -> str | None:
        """The current holder, or None."""
        with self._store.locked() as conn:
            row = conn.execute(
                "SELECT holder FROM scheduler_leases WHERE name = ? AND expires > ?", (name, now)
            ).fetchone()
        return row[0] if row else None

    # -- jobs ------------------------------------------------------------------
    def insert(self, job: Job) -> None:
        """Add a job."""
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT INTO scheduler_jobs (id, owner, created_at, next_run, doc)"
                " VALUES (?, ?, ?, ?, ?)",
                _row(job),
            )

    def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        with self._store.locked() as conn:
            row = conn.execute(
                "SELECT next_run, doc FROM scheduler_jobs WHERE id = ?", (job_id,)
            ).fetchone()
        return _job(*row) if row else None

    def owned_by(self, owner: str, limit: int, offset: int) -> tuple[list[Job], int]:
        """A page of `owner`'s jobs and their total."""
        with self._store.locked() as conn:
            rows = conn.execute(
                "SELECT next_run, doc FROM scheduler_jobs WHERE owner = ?"
                " ORDER BY created_at, id LIMIT ? OFFSET ?",
                (owner, limit, offset),
            ).fetchall()
            total = conn.execute(
                "SELECT COUNT(*) FROM scheduler_jobs WHERE owner = ?", (owner,)
            ).fetchone()[0]
        return [_job(*r) for r in rows], int(total)

    def all(self) -> list[Job]:
        """Every job."""
        with self._store.locked() as conn:
            rows = conn.execute(
                "SELECT next_run, doc FROM scheduler_jobs ORDER BY created_at, id"
            ).fetchall()
        return [_job(*r) for r in rows]

    def save(self, job: Job) -> bool:
        """Replace a job."""
        _, owner, created_at, next_run, doc = _row(job)
        with self._store.transaction() as conn:
            cur = conn.execute(
                "UPDATE scheduler_jobs SET owner = ?, created_at = ?, next_run = ?, doc = ?"
                " WHERE id = ?",
                (owner, created_at, next_run, doc, job.job_id),
            )
        return cur.rowcount == 1

    def delete(self, job_id: str) -> bool:
        """Delete a job."""
        with self._store.transaction() as conn:
            cur = conn.execute("DELETE FROM scheduler_jobs WHERE id = ?", (job_id,))
        return cur.rowcount == 1

    def delete_owned_by(self, owner: str) -> int:
        """Delete every job of `owner`."""
        with self._store.transaction() as conn:
            cur = conn.execute("DELETE FROM scheduler_jobs WHERE owner = ?", (owner,))
        return int(cur.rowcount)

    def due(self, now: float, limit: int) -> list[Job]:
        """Jobs due at `now`, earliest first."""
        with self._store.locked() as conn:
            rows = conn.execute(
                "SELECT next_run, doc FROM scheduler_jobs"
                " WHERE next_run IS NOT NULL AND next_run <= ? ORDER BY next_run LIMIT ?",
                (now, limit),
            ).fetchall()
        return [_job(*r) for r in rows]

    def claim(self, job_id: str, expected: float, next_run: float | None) -> bool:
        """Compare-and-set `next_run`."""
        with self._store.transaction() as conn:
            cur = conn.execute(
                "UPDATE scheduler_jobs SET next_run = ? WHERE id = ? AND next_run = ?",
                (next_run, job_id, expected),
            )
        return cur.rowcount == 1

    def record_run(self, job_id: str, at: float, status: str, error: str | None) -> None:
        """Note a finished fire."""
        with self._store.transaction() as conn:
            conn.execute(
                "UPDATE scheduler_jobs SET doc = json_set(doc, '$.last_run', ?,"
                " '$.last_status', ?, '$.last_error', ?,"
                " '$.run_count', json_extract(doc, '$.run_count') + 1) WHERE id = ?",
                (at, status, error, job_id),
            )

    def close(self) -> None:
        """Nothing of its own to close (the graph store owns the connection)."""
