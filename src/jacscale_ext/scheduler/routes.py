"""`GET|POST /jobs`, `GET|PUT|DELETE /jobs/{job_id}`: a user's dynamic jobs.

Only `@schedule(trigger=ScheduleTrigger.DYNAMIC)` walkers and functions can be
scheduled here; a job runs as the user who created it, on that user's root. A
caller sees and changes only their own jobs: another user's job id is a 404,
the same answer as an id that does not exist.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jacscale_core.errors import ApiError, unauthorized, validation_error
from jacscale_core.http_endpoints import (
    authenticate,
    decode_json_object,
    json_response,
    require_json,
)
from jacscale_core.middleware import request_id_of
from jacscale_core.principal import Principal
from jacscale_core.program import Endpoint
from jacscale_ext.scheduler.jobs import Job
from jacscale_ext.scheduler.service import is_dynamic
from jacscale_ext.scheduler.state import SchedulerState
from jacscale_ext.scheduler.triggers import Trigger, TriggerError, make_trigger

CREATE_FIELDS = ("walker_or_function", "trigger", "interval", "cron", "date", "args")
UPDATE_FIELDS = ("trigger", "interval", "cron", "date", "args")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def ok(data: Any, request: Request, status: int = 200) -> Response:
    """The success envelope with `data` (the shape jac-scale's /jobs answers in)."""
    return json_response(
        {
            "ok": True,
            "type": "response",
            "data": data,
            "error": None,
            "meta": {"extra": {"http_status": status}, "request_id": request_id_of(request.scope)},
        },
        status,
    )


async def caller(request: Request, state: SchedulerState) -> Principal:
    """The logged-in user (401 otherwise: jobs need a user and a root to run on)."""
    principal = await authenticate(request, state.app)
    if principal is None or principal.kind != "user":
        raise unauthorized("Log in first: jobs are managed with Authorization: Bearer <token>")
    return principal


async def read_body(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The JSON object body; 415/422 for other bodies, 422 naming unknown fields."""
    require_json(request)
    body = decode_json_object(await request.body())
    unknown = [k for k in body if k not in allowed]
    if unknown:
        raise ApiError(
            "VALIDATION_ERROR",
            f"Unknown field(s): {', '.join(unknown)} (allowed: {', '.join(allowed)})",
            details=[{"loc": ["body", k], "msg": "Unknown field", "type": "extra_forbidden"}
                     for k in unknown],
        )  # fmt: skip
    return body


def dynamic_target(state: SchedulerState, name: Any) -> Endpoint:
    """The DYNAMIC scheduled walker or function called `name` (404 / 400 / 422 otherwise)."""
    if not isinstance(name, str) or not name.strip():
        raise validation_error(
            ["body", "walker_or_function"], "a walker or function name is required"
        )
    endpoint = state.app.program.endpoints.get(name)
    if endpoint is None or endpoint.access == "private":
        raise ApiError("NOT_FOUND", f"No walker or function named {name[:100]!r}")
    if endpoint.schedule is None or not is_dynamic(endpoint):
        how = "is not scheduled" if endpoint.schedule is None else "has a static @schedule"
        raise ApiError(
            "BAD_REQUEST",
            f"{name} {how}: only @schedule(trigger=ScheduleTrigger.DYNAMIC) walkers and "
            "functions can be scheduled through /jobs",
        )
    return endpoint


def trigger_of(state: SchedulerState, body: dict[str, Any], now: float) -> Trigger:
    """The validated trigger of a request body (422 naming the field)."""
    if "trigger" not in body:
        raise validation_error(
            ["body", "trigger"], "required: 'interval', 'cron' or 'date'", "missing"
        )
    try:
        return make_trigger(
            body["trigger"],
            interval=body.get("interval"),
            cron=body.get("cron"),
            date=body.get("date"),
            now=now,
            min_interval=state.config.min_interval_seconds,
        )
    except TriggerError as exc:
        raise ApiError(
            "VALIDATION_ERROR",
            exc.message,
            details=[{"loc": ["body", exc.field], "msg": exc.message, "type": "value_error"}],
        ) from None


def args_of(endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
    """The walker fields / function arguments a job passes, checked like an HTTP call."""
    args = body.get("args", {})
    if not isinstance(args, dict):
        raise validation_error(["body", "args"], "must be an object of walker fields", "type_error")
    try:
        endpoint.decode(args)
    except ApiError as exc:
        for detail in exc.details or []:
            detail["loc"] = ["body", "args", *detail["loc"][1:]]
        raise
    return args


async def owned_job(state: SchedulerState, principal: Principal, job_id: str) -> Job:
    """The caller's job `job_id` (404 for missing and for other users' jobs alike)."""
    job = await asyncio.to_thread(state.job_store().get, job_id)
    if job is None or job.static or job.owner != principal.user_id:
        raise ApiError("NOT_FOUND", f"No job {job_id[:100]!r}")
    return job


def _page_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise validation_error(["query", name], f"must be an integer from {low} to {high}")
    return value


def job_routes(state: SchedulerState) -> list[Route]:
    """The /jobs routes."""

    async def create(request: Request) -> Response:
        principal = await caller(request, state)
        body = await read_body(request, CREATE_FIELDS)
        endpoint = dynamic_target(state, body.get("walker_or_function"))
        now = time.time()
        trigger = trigger_of(state, body, now)
        args = args_of(endpoint, body)
        store = state.job_store()
        _, count = await asyncio.to_thread(store.owned_by, principal.user_id, 1, 0)
        if count >= state.config.max_jobs_per_user:
            raise ApiError(
                "CONFLICT",
                f"You have {count} jobs, the most allowed; delete one before adding another",
            )
        job = Job(
            job_id=uuid.uuid4().hex, name=endpoint.name, kind=endpoint.kind, static=False,
            owner=principal.user_id, root_id=principal.root_id, trigger=trigger.kind,
            args=args, created_at=now, updated_at=now, next_run=trigger.first_fire(now),
        )  # fmt: skip
        job.set_trigger(trigger)
        await asyncio.to_thread(store.insert, job)
        return ok(job.public(), request, 201)

    async def listing(request: Request) -> Response:
        principal = await caller(request, state)
        limit = _page_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = _page_param(request, "offset", 0, 0, 10**9)
        jobs, total = await asyncio.to_thread(
            state.job_store().owned_by, principal.user_id, limit, offset
        )
        data = {
            "jobs": [j.public() for j in jobs],
            "count": len(jobs),
            "total": total,
            "limit": limit,
            "offset": offset,
        }
        return ok(data, request)

    async def read(request: Request) -> Response:
        principal = await caller(request, state)
        job = await owned_job(state, principal, request.path_params["job_id"])
        return ok(job.public(), request)

    async def update(request: Request) -> Response:
        principal = await caller(request, state)
        job = await owned_job(state, principal, request.path_params["job_id"])
        body = await read_body(request, UPDATE_FIELDS)
        endpoint = state.app.program.endpoints.get(job.name)
        now = time.time()
        trigger = trigger_of(state, body, now)
        if "args" in body:
            if endpoint is None:
                raise ApiError("BAD_REQUEST", f"{job.name} is no longer in the program")
            job.args = args_of(endpoint, body)
        job.set_trigger(trigger)
        job.next_run = trigger.first_fire(now)
        job.updated_at = now
        if not await asyncio.to_thread(state.job_store().save, job):
            raise ApiError("NOT_FOUND", f"No job {job.job_id!r}")
        return ok(job.public(), request)

    async def delete(request: Request) -> Response:
        principal = await caller(request, state)
        job = await owned_job(state, principal, request.path_params["job_id"])
        if not await asyncio.to_thread(state.job_store().delete, job.job_id):
            raise ApiError("NOT_FOUND", f"No job {job.job_id!r}")
        return ok({"deleted": True, "job_id": job.job_id}, request)

    return [
        Route("/jobs", create, methods=["POST"], name="jobs_create"),
        Route("/jobs", listing, methods=["GET"], name="jobs_list"),
        Route("/jobs/{job_id}", read, methods=["GET"], name="jobs_get"),
        Route("/jobs/{job_id}", update, methods=["PUT"], name="jobs_update"),
        Route("/jobs/{job_id}", delete, methods=["DELETE"], name="jobs_delete"),
    ]
