"""The scheduler extension's hook implementations (a built-in plugin).

Routes `/jobs`, documents them in OpenAPI, opens the job store at start-up
(through `jacscale_job_store`; the SQLite store's answers here, last), runs the
scheduler loop in every worker, drops a deleted user's jobs, and adds the
`jacscale jobs app.jac` command.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from typing import Any

from jacscale_core.context import AppContext
from jacscale_core.plugins import hookimpl
from jacscale_ext.scheduler import hookspecs
from jacscale_ext.scheduler.config import SECTION, SchedulerConfig
from jacscale_ext.scheduler.jobs import Job, JobStore
from jacscale_ext.scheduler.openapi import job_paths
from jacscale_ext.scheduler.routes import job_routes
from jacscale_ext.scheduler.service import (
    Scheduler,
    is_dynamic,
    scheduled_targets,
    static_jobs,
)
from jacscale_ext.scheduler.sqlite_jobs import SqliteJobStore
from jacscale_ext.scheduler.state import STATE_KEY, SchedulerState, state_of
from jacscale_ext.scheduler.triggers import iso
from jacscale_ext.sqlite_store import SqliteGraphStore

log = logging.getLogger("jacscale.scheduler")


@hookimpl
def jacscale_add_hookspecs(pm: Any) -> None:
    """jacscale_job_store and jacscale_job_fired."""
    pm.add_hookspecs(hookspecs)


@hookimpl
def jacscale_config_sections() -> dict[str, type]:
    """[plugins.scale.scheduler]."""
    return {SECTION: SchedulerConfig}


@hookimpl(trylast=True)
def jacscale_job_store(app: AppContext) -> JobStore | None:
    """Jobs and lease in the SQLite database when the graph store is the embedded one."""
    if isinstance(app.store, SqliteGraphStore):
        return SqliteJobStore(app.store)
    return None


@hookimpl
def jacscale_routes(app: AppContext) -> list[Any]:
    """GET|POST /jobs, GET|PUT|DELETE /jobs/{job_id}."""
    return job_routes(state_of(app))


@hookimpl
def jacscale_openapi_paths(app: AppContext) -> dict[str, Any]:
    """The /jobs operations (scheduled targets have no paths of their own)."""
    targets = scheduled_targets(app.program.endpoints.values())
    return job_paths([e for e in targets if is_dynamic(e) and e.access != "private"])


@hookimpl
async def jacscale_startup(app: AppContext) -> None:
    """Open the job store; start the scheduler loop when the program has scheduled targets."""
    state = state_of(app)
    if state.store is None:
        state.store = await asyncio.to_thread(lambda: app.hook.jacscale_job_store(app=app))
    targets = scheduled_targets(app.program.endpoints.values())
    if not targets or not state.config.enabled or state.scheduler is not None:
        return
    if state.store is None:
        raise RuntimeError(
            f"the program has scheduled walkers or functions, but the graph store "
            f"({type(app.store).__name__}) provides no job store (jacscale_job_store)"
        )
    state.scheduler = Scheduler(app, state.store, state.config)
    state.scheduler.start()


@hookimpl
async def jacscale_shutdown(app: AppContext) -> None:
    """Stop the loop (running fires get a bounded time to finish); hand the lease over."""
    state = app.state.get(STATE_KEY)
    if not isinstance(state, SchedulerState):
        return
    if state.scheduler is not None:
        await state.scheduler.stop()
        state.scheduler = None
    if state.store is not None:
        state.store.close()
        state.store = None


@hookimpl
async def jacscale_user_deleted(app: AppContext, user_id: str) -> None:
    """A deleted user's jobs stop: they are deleted with the account."""
    store = state_of(app).store
    if store is not None:
        removed = await asyncio.to_thread(store.delete_owned_by, user_id)
        if removed:
            log.info("scheduler: deleted %d job(s) of a deleted user", removed)


# --------------------------------------------------------------------------
# `jacscale jobs app.jac`
# --------------------------------------------------------------------------


def _row(job: Job) -> tuple[str, ...]:
    if job.trigger == "interval":
        when = f"every {job.interval:g}s"
    elif job.trigger == "cron":
        when = f"cron {job.cron}"
    else:
        when = f"at {iso(job.date)}"
    owner = "static" if job.static else f"user {job.owner}"
    return (
        job.name, owner, when, iso(job.next_run) or "-", iso(job.last_run) or "-",
        job.last_status or "-", str(job.run_count), job.job_id,
    )  # fmt: skip


def list_jobs(app_path: str, data_dir: str | None) -> int:
    """Print the program's static jobs and the store's dynamic jobs with their next runs."""
    from jacscale_core.app import build_context
    from jacscale_core.program import ProgramLoadError

    try:
        app = build_context(app_path, cli={"data_dir": data_dir} if data_dir else {})
    except ProgramLoadError as exc:
        print(f"error: cannot load {app_path}:\n{exc}", file=sys.stderr)
        return 1
    try:
        store: JobStore | None = app.hook.jacscale_job_store(app=app)
        stored = store.all() if store is not None else []
        by_id = {j.job_id: j for j in stored}
        jobs = static_jobs(app.program.endpoints.values(), by_id, time.time())
        jobs += [j for j in stored if not j.static]
        header = (
            "NAME",
            "OWNER",
            "TRIGGER",
            "NEXT RUN",
            "LAST RUN",
            "LAST STATUS",
            "RUNS",
            "JOB ID",
        )
        rows = [header, *(_row(j) for j in jobs)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        for r in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
        if not jobs:
            print("(no scheduled jobs)")
        if store is not None:
            store.close()
    finally:
        app.store.close()
    return 0


@hookimpl
def jacscale_register_commands(subparsers: Any) -> None:
    """`jacscale jobs app.jac [--data-dir DIR]`."""
    jobs = subparsers.add_parser("jobs", help="list scheduled jobs and their next runs")
    jobs.add_argument("app", help="path to app.jac")
    jobs.add_argument("--data-dir", default=None, help="where data lives (JAC_DATA_PATH)")

    def run(args: argparse.Namespace) -> int:
        return list_jobs(args.app, args.data_dir)

    jobs.set_defaults(func=run)
