"""The job record and the JobStore protocol: what a store keeps for the scheduler.

A store plugin supplies a JobStore through the `jacscale_job_store` hook (the
embedded SQLite store's is `sqlite_jobs.SqliteJobStore`, the Mongo plugin has
its own). Two guarantees make every fire happen once across workers and servers:

- a lease: one holder at a time, taken over only after it expired
  (`acquire_lease`); only the holder looks for due jobs;
- a claim: advancing a job's `next_run` is a compare-and-set (`claim`), so even
  two holders that overlap for a moment (a paused leader whose lease ran out)
  cannot both fire the same scheduled time.

Times are UTC timestamps (float seconds since the epoch). All methods block:
call them from a worker thread, never on the event loop.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from jacscale_ext.scheduler.triggers import Trigger, iso

SYSTEM_OWNER = "__system__"
LEASE_NAME = "scheduler"


@dataclass(slots=True)
class Job:
    """One scheduled job: a static `@schedule` target or a dynamic job from POST /jobs."""

    job_id: str
    name: str  # the walker or function
    kind: str  # "walker" | "function"
    static: bool
    owner: str  # the creating user's id, or SYSTEM_OWNER for static jobs
    root_id: str  # hex id of the root the job runs on
    trigger: str  # "interval" | "cron" | "date"
    interval: float | None = None
    cron: str | None = None
    date: float | None = None
    args: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    next_run: float | None = None
    last_run: float | None = None
    last_status: str | None = None  # "succeeded" | "failed"
    last_error: str | None = None
    run_count: int = 0

    @property
    def schedule(self) -> Trigger:
        """The job's trigger."""
        return Trigger(self.trigger, self.interval, self.cron, self.date)  # type: ignore[arg-type]

    def set_trigger(self, trigger: Trigger) -> None:
        """Replace the trigger settings."""
        self.trigger = trigger.kind
        self.interval, self.cron, self.date = trigger.interval, trigger.cron, trigger.date

    def to_doc(self) -> dict[str, Any]:
        """The job as a flat dict of JSON values (how stores keep it)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Job:
        """A job from `to_doc`'s dict (unknown keys, e.g. a store's `_id`, are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})

    def public(self) -> dict[str, Any]:
        """The job as `/jobs` shows it (times in ISO-8601 UTC)."""
        return {
            "job_id": self.job_id,
            "walker_or_function": self.name,
            "kind": self.kind,
            "static": self.static,
            # The same facts under jac-scale 0.2.31's names, for its clients.
            "name": self.name,
            "is_walker": self.kind == "walker",
            "created_by": self.owner,
            **self.schedule.describe(),
            "args": self.args,
            "status": "active" if self.next_run is not None else "completed",
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "next_run_at": iso(self.next_run),
            "last_run_at": iso(self.last_run),
            "last_status": self.last_status,
            "last_error": self.last_error,
            "run_count": self.run_count,
        }


@runtime_checkable
class JobStore(Protocol):
    """Lease and jobs for the scheduler, kept in the app's store (blocking methods)."""

    location: str  # for display, as GraphStore.location

    def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        """Take or renew lease `name` for `holder` until now + ttl.

        True when `holder` holds it afterwards: it was free, expired, or already
        `holder`'s. Atomic: of several callers at once, at most one gets True.
        """
        ...

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if `holder` holds it (a clean shutdown hands over at once)."""
        ...

    def lease_holder(self, name: str, now: float) -> str | None:
        """Who holds lease `name` now (None when free or expired)."""
        ...

    def insert(self, job: Job) -> None:
        """Add a new job (its `job_id` is new)."""
        ...

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None."""
        ...

    def owned_by(self, owner: str, limit: int, offset: int) -> tuple[list[Job], int]:
        """A page of `owner`'s jobs (oldest first) and how many `owner` has in all."""
        ...

    def all(self) -> list[Job]:
        """Every job, static ones included (for the leader's bookkeeping and the CLI)."""
        ...

    def save(self, job: Job) -> bool:
        """Replace the stored job with `job` (same id); False if it is gone."""
        ...

    def delete(self, job_id: str) -> bool:
        """Delete a job; False if it did not exist."""
        ...

    def delete_owned_by(self, owner: str) -> int:
        """Delete every job of `owner` (a deleted user); how many went."""
        ...

    def due(self, now: float, limit: int) -> list[Job]:
        """Up to `limit` jobs whose `next_run` is at or before `now`, earliest first."""
        ...

    def claim(self, job_id: str, expected: float, next_run: float | None) -> bool:
        """Set `next_run` to `next_run` only if it still equals `expected` (compare-and-set)."""
        ...

    def record_run(self, job_id: str, at: float, status: str, error: str | None) -> None:
        """Note a finished fire: last run time, status, error; run count + 1."""
        ...

    def close(self) -> None:
        """Release what the job store opened itself (not the graph store's connection)."""
        ...
