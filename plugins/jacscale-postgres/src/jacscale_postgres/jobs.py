"""The scheduler's JobStore on PostgreSQL: the lease and the jobs, in the graph store's database.

`jacscale_scheduler_leases` holds the leader lease (a row per name: holder and
expiry); `jacscale_scheduler_jobs` one row per job (the columns the scheduler
queries by, the rest as jsonb). Each method is one statement on the graph
store's pool, atomic on its own: taking the lease is an `INSERT ... ON CONFLICT
DO UPDATE ... WHERE` that succeeds only for the holder or once the lease
expired, and a claim is a compare-and-set on `next_run`, so every server on the
database sees one leader and fires each scheduled time once.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from jacscale_ext.scheduler.jobs import Job
from jacscale_postgres.graph_store import PostgresGraphStore

_SELECT = "SELECT next_run, doc FROM jacscale_scheduler_jobs"


def _doc(job: Job) -> Jsonb:
    doc = job.to_doc()
    doc.pop("next_run")
    return Jsonb(doc)


def _job(row: tuple[Any, ...]) -> Job:
    next_run, doc = row
    job = Job.from_doc(dict(doc))
    job.next_run = next_run
    return job


class PostgresJobStore:
    """JobStore on the graph store's connection pool (its errors answer 503 / 500 alike)."""

    def __init__(self, store: PostgresGraphStore) -> None:
        """Use `store`'s pool (its migrations created the tables)."""
        self._store = store
        self.location = store.location

    def _count(self, action: str, sql: str, params: tuple[Any, ...]) -> int:
        return self._store.run(action, lambda conn: conn.execute(sql.encode(), params).rowcount)

    def _rows(self, action: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self._store.run(action, lambda conn: conn.execute(sql.encode(), params).fetchall())

    # -- lease -----------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        """Take or renew the lease: only its holder, or anyone once it expired."""
        return (
            self._count(
                "taking the scheduler lease",
                "INSERT INTO jacscale_scheduler_leases (name, holder, expires) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder,"
                " expires = EXCLUDED.expires"
                " WHERE jacscale_scheduler_leases.holder = EXCLUDED.holder"
                " OR jacscale_scheduler_leases.expires <= %s",
                (name, holder, now + ttl, now),
            )
            == 1
        )

    def release_lease(self, name: str, holder: str) -> None:
        """Drop the lease if `holder` has it."""
        self._count(
            "releasing the scheduler lease",
            "DELETE FROM jacscale_scheduler_leases WHERE name = %s AND holder = %s",
            (name, holder),
        )

    def lease_holder(self, name: str, now: float) -> str | None:
        """The current holder, or None."""
        rows = self._rows(
            "reading the scheduler lease",
            "SELECT holder FROM jacscale_scheduler_leases WHERE name = %s AND expires > %s",
            (name, now),
        )
        return str(rows[0][0]) if rows else None

    # -- jobs ------------------------------------------------------------------
    def insert(self, job: Job) -> None:
        """Add a job."""
        self._count(
            "adding a job",
            "INSERT INTO jacscale_scheduler_jobs (id, owner, created_at, next_run, doc)"
            " VALUES (%s, %s, %s, %s, %s)",
            (job.job_id, job.owner, job.created_at, job.next_run, _doc(job)),
        )

    def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        rows = self._rows("reading a job", f"{_SELECT} WHERE id = %s", (job_id,))
        return _job(rows[0]) if rows else None

    def owned_by(self, owner: str, limit: int, offset: int) -> tuple[list[Job], int]:
        """A page of `owner`'s jobs (oldest first) and their total."""

        def page(conn: psycopg.Connection) -> tuple[list[Job], int]:
            rows = conn.execute(
                f"{_SELECT} WHERE owner = %s ORDER BY created_at, id LIMIT %s OFFSET %s".encode(),
                (owner, limit, offset),
            ).fetchall()
            total = conn.execute(
                "SELECT count(*) FROM jacscale_scheduler_jobs WHERE owner = %s", (owner,)
            ).fetchone()
            return [_job(r) for r in rows], int(total[0]) if total else 0

        return self._store.run("listing jobs", page)

    def all(self) -> list[Job]:
        """Every job."""
        return [
            _job(r) for r in self._rows("listing jobs", f"{_SELECT} ORDER BY created_at, id", ())
        ]

    def save(self, job: Job) -> bool:
        """Replace a job; False if it is gone."""
        return (
            self._count(
                "saving a job",
                "UPDATE jacscale_scheduler_jobs SET owner = %s, created_at = %s, next_run = %s,"
                " doc = %s WHERE id = %s",
                (job.owner, job.created_at, job.next_run, _doc(job), job.job_id),
            )
            == 1
        )

    def delete(self, job_id: str) -> bool:
        """Delete a job; False if it did not exist."""
        return (
            self._count(
                "deleting a job", "DELETE FROM jacscale_scheduler_jobs WHERE id = %s", (job_id,)
            )
            == 1
        )

    def delete_owned_by(self, owner: str) -> int:
        """Delete every job of `owner`; how many went."""
        return self._count(
            "deleting jobs", "DELETE FROM jacscale_scheduler_jobs WHERE owner = %s", (owner,)
        )

    def due(self, now: float, limit: int) -> list[Job]:
        """Jobs due at `now`, earliest first."""
        rows = self._rows(
            "finding due jobs",
            f"{_SELECT} WHERE next_run IS NOT NULL AND next_run <= %s ORDER BY next_run LIMIT %s",
            (now, limit),
        )
        return [_job(r) for r in rows]

    def claim(self, job_id: str, expected: float, next_run: float | None) -> bool:
        """Compare-and-set `next_run`."""
        return (
            self._count(
                "claiming a job",
                "UPDATE jacscale_scheduler_jobs SET next_run = %s WHERE id = %s AND next_run = %s",
                (next_run, job_id, expected),
            )
            == 1
        )

    def record_run(self, job_id: str, at: float, status: str, error: str | None) -> None:
        """Note a finished fire: last run, status, error; run count + 1."""
        self._count(
            "recording a job run",
            "UPDATE jacscale_scheduler_jobs SET doc = doc || jsonb_build_object("
            "'last_run', %s::double precision, 'last_status', %s::text,"
            " 'last_error', %s::text,"
            " 'run_count', COALESCE((doc ->> 'run_count')::bigint, 0) + 1) WHERE id = %s",
            (at, status, error, job_id),
        )

    def close(self) -> None:
        """Nothing of its own to close (the graph store owns the pool)."""
