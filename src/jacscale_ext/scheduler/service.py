"""The scheduler loop: in every process, one asyncio task; only the lease holder fires.

Each tick the task takes or renews the store's lease (`JobStore.acquire_lease`).
The holder (the leader) reads the due jobs, claims each fire with a
compare-and-set on its `next_run` and runs the claimed ones as tasks, each as
its own request: a fresh context on the job's root (the system root for static
jobs, the creator's root for dynamic ones), the executor's one commit and its
conflict replay — the path an HTTP request takes. Followers only watch the
lease, so a leader that dies (or stops) is replaced within `lease_seconds`.

Nothing here knows about worker processes or servers: the lease lives in the
store, so workers of one server and servers sharing a store behave alike.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Iterable

from jacscale_core.context import AppContext
from jacscale_core.errors import ApiError
from jacscale_core.memory import SYSTEM_ROOT_ID
from jacscale_core.principal import Principal
from jacscale_core.program import Endpoint
from jacscale_ext.scheduler.config import SchedulerConfig
from jacscale_ext.scheduler.jobs import LEASE_NAME, SYSTEM_OWNER, Job, JobStore
from jacscale_ext.scheduler.triggers import TriggerError, from_schedule_spec, iso

log = logging.getLogger("jacscale.scheduler")

LEADER_TICK_SECONDS = 0.2  # how often the leader looks for due jobs
FOLLOWER_TICK_SECONDS = 1.0  # how often a follower checks whether the lease is free
DUE_BATCH = 100
STOP_WAIT_SECONDS = 10.0  # how long shutdown lets running fires finish
MAX_ERROR_CHARS = 500


def scheduled_targets(endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    """The program's `@schedule` walkers and functions."""
    return [e for e in endpoints if e.schedule is not None]


def is_dynamic(endpoint: Endpoint) -> bool:
    """True for `@schedule(trigger=ScheduleTrigger.DYNAMIC)` targets."""
    trigger = getattr(endpoint.schedule, "trigger", "static")
    return str(getattr(trigger, "value", trigger)).lower() == "dynamic"


def static_job_id(name: str) -> str:
    """The job id of the static job of walker or function `name`."""
    return f"static:{name}"


def static_jobs(endpoints: Iterable[Endpoint], stored: dict[str, Job], now: float) -> list[Job]:
    """The static jobs the program declares, carrying over what `stored` knows of them.

    A job whose trigger is unchanged keeps its stored next run (so fires missed
    while no server ran are seen as missed); a new or changed one starts afresh.
    A static date that has already passed never fires (as in jaclang).
    """
    out = []
    for endpoint in scheduled_targets(endpoints):
        if is_dynamic(endpoint):
            continue
        try:
            trigger = from_schedule_spec(endpoint.schedule, now)
        except TriggerError as exc:
            log.error("scheduler: @schedule on %s is unusable: %s", endpoint.name, exc.message)
            continue
        job_id = static_job_id(endpoint.name)
        old = stored.get(job_id)
        if old is not None and old.schedule == trigger and old.kind == endpoint.kind:
            out.append(old)
            continue
        job = Job(
            job_id=job_id, name=endpoint.name, kind=endpoint.kind, static=True,
            owner=SYSTEM_OWNER, root_id=SYSTEM_ROOT_ID.hex, trigger=trigger.kind,
            created_at=old.created_at if old else now, updated_at=now,
            next_run=trigger.first_fire(now),
        )  # fmt: skip
        job.set_trigger(trigger)
        if old is not None:
            job.last_run, job.last_status = old.last_run, old.last_status
            job.last_error, job.run_count = old.last_error, old.run_count
        if job.next_run is None:
            log.warning(
                "scheduler: %s is scheduled for %s, which has passed; it will not run",
                endpoint.name, iso(trigger.date),
            )  # fmt: skip
        out.append(job)
    return out


def sync_static_jobs(store: JobStore, endpoints: Iterable[Endpoint], now: float) -> None:
    """Make the store's static jobs match the program (blocking; the leader does it)."""
    stored = {j.job_id: j for j in store.all() if j.static}
    wanted = static_jobs(endpoints, stored, now)
    for job in wanted:
        old = stored.pop(job.job_id, None)
        if old is None:
            store.insert(job)
        elif old != job:
            store.save(job)
    for gone in stored:
        store.delete(gone)


def _error_text(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, ApiError) else f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_CHARS]


class Scheduler:
    """One process's scheduler task (see the module docstring)."""

    def __init__(self, app: AppContext, store: JobStore, config: SchedulerConfig) -> None:
        """Schedule the program of `app` with jobs and lease in `store`."""
        self.app = app
        self.store = store
        self.config = config
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.leading = False
        self.renewed_at = 0.0
        self.running: dict[str, asyncio.Task[bool]] = {}
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop on the running event loop."""
        if self.task is None:
            self.task = asyncio.create_task(self._loop(), name="jacscale-scheduler")

    async def stop(self) -> None:
        """Stop looking for jobs, let running fires finish (bounded), hand the lease over."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        fires = list(self.running.values())
        if fires:
            _, pending = await asyncio.wait(fires, timeout=STOP_WAIT_SECONDS)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # Even when not (knowingly) leading: a tick cancelled while taking the lease
        # may have taken it. Releasing is conditional on the holder, so always safe.
        self.leading = False
        try:
            await asyncio.to_thread(self.store.release_lease, LEASE_NAME, self.holder)
        except Exception as exc:  # noqa: BLE001 - the lease then simply expires
            log.warning("scheduler: could not release the lease: %s", exc)

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged; the next tick retries
                log.error("scheduler: %s", _error_text(exc))
            await asyncio.sleep(LEADER_TICK_SECONDS if self.leading else FOLLOWER_TICK_SECONDS)

    async def tick(self) -> None:
        """Take or renew the lease; as leader, dispatch the due jobs."""
        ttl = self.config.lease_seconds
        now = time.time()
        if not self.leading or now - self.renewed_at >= ttl / 3:
            try:
                got = await asyncio.to_thread(
                    self.store.acquire_lease, LEASE_NAME, self.holder, ttl, now
                )
            except Exception:
                self.leading = False
                raise
            if got and not self.leading:
                log.info("scheduler: %s is the leader", self.holder)
                await asyncio.to_thread(
                    sync_static_jobs, self.store, self.app.program.endpoints.values(), now
                )
            elif self.leading and not got:
                log.warning("scheduler: %s lost the lease", self.holder)
            self.leading = got
            if got:
                self.renewed_at = now
        if not self.leading or time.time() - self.renewed_at > ttl * 0.8:
            return  # not leading, or the lease may run out before the fires are claimed
        due = await asyncio.to_thread(self.store.due, time.time(), DUE_BATCH)
        for job in due:
            await self._dispatch(job)

    async def _dispatch(self, job: Job) -> None:
        assert job.next_run is not None
        now = time.time()
        following = job.schedule.after_fire(job.next_run, now)
        late = now - job.next_run
        claimed = await asyncio.to_thread(self.store.claim, job.job_id, job.next_run, following)
        if not claimed:
            return  # someone else moved it on (an update, or an overlapping leader)
        if self.config.missed_fires == "skip" and late > self.config.misfire_grace_seconds:
            log.info(
                "scheduler: skipped a missed fire of %s (job %s, due %s)",
                job.name, job.job_id, iso(job.next_run),
            )  # fmt: skip
            return
        if job.job_id in self.running:
            log.warning(
                "scheduler: %s (job %s) is still running; this fire is skipped",
                job.name, job.job_id,
            )  # fmt: skip
            return
        task = asyncio.create_task(self.fire(job), name=f"jacscale-job-{job.job_id}")
        self.running[job.job_id] = task
        task.add_done_callback(lambda _: self.running.pop(job.job_id, None))

    async def fire(self, job: Job) -> bool:
        """Run `job` once as its own request; record and report the outcome."""
        request_id = uuid.uuid4().hex
        at = time.time()
        started = time.perf_counter()
        error: str | None = None
        endpoint = self.app.program.endpoints.get(job.name)
        try:
            if endpoint is None or endpoint.schedule is None or endpoint.kind != job.kind:
                raise LookupError(f"{job.kind} {job.name} is not a scheduled target of the program")
            args = endpoint.decode(job.args, loc_root="args")
            principal = Principal(user_id=job.owner, root_id=job.root_id, kind="user")
            await self.app.executor.run(endpoint, args, principal)
        except asyncio.CancelledError:
            error = "cancelled at shutdown"
            raise
        except Exception as exc:  # noqa: BLE001 - a failing job is logged, counted, kept
            error = _error_text(exc)
            log.error(
                "scheduler: %s (job %s) failed, request_id=%s: %r",
                job.name, job.job_id, request_id, error,
                exc_info=not isinstance(exc, (ApiError, LookupError)),
            )  # fmt: skip
        finally:
            await self._finished(job, at, time.perf_counter() - started, error)
        return error is None

    async def _finished(self, job: Job, at: float, duration: float, error: str | None) -> None:
        success = error is None
        try:
            self.app.hook.jacscale_job_fired(
                app=self.app, name=job.name, static=job.static, duration=duration, success=success
            )
        except Exception as exc:  # noqa: BLE001 - a metrics plugin must not stop the job
            log.error("scheduler: a jacscale_job_fired hook failed: %s", exc)
        try:
            await asyncio.to_thread(
                self.store.record_run, job.job_id, at, "succeeded" if success else "failed", error
            )
        except Exception as exc:  # noqa: BLE001 - the fire happened; only its record is lost
            log.error("scheduler: recording a run of job %s failed: %s", job.job_id, exc)
