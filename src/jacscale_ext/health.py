"""GET /healthz (liveness: no I/O) and GET /readyz (the store and plugins answer).

jac-scale's probe paths answer too, with the same meaning and status codes:
GET /healthz/live (`{"status": "alive"}`) and GET /healthz/ready (the /readyz
body plus `"status": "ready"` or `"unavailable"`), so Kubernetes manifests
written for jac-scale work unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jacscale_core.context import AppContext
from jacscale_core.http_endpoints import json_response
from jacscale_core.plugins import await_me_maybe, hookimpl

READY_TIMEOUT_SECONDS = 3.0


async def readiness(app: AppContext) -> list[tuple[str, bool, str]]:
    """Every readiness check: the store ping plus what plugins report."""
    checks: list[tuple[str, bool, str]] = []
    try:
        ok = await asyncio.wait_for(asyncio.to_thread(app.store.ping), READY_TIMEOUT_SECONDS)
        checks.append(("store", bool(ok), app.store.location if ok else "no answer"))
    except TimeoutError:
        checks.append(("store", False, f"no answer within {READY_TIMEOUT_SECONDS}s"))
    except Exception as exc:  # noqa: BLE001 - reported as a failed check, not raised
        checks.append(("store", False, type(exc).__name__))
    for result in app.pm.hook.jacscale_readiness(app=app):
        found = await await_me_maybe(result)
        checks.extend(found or [])
    return checks


async def readiness_body(app: AppContext) -> dict[str, Any]:
    """`{"ready": bool, "checks": {name: {"ok", "detail"}}}`: what /readyz answers."""
    checks = await readiness(app)
    return {
        "ready": app.ready and all(ok for _, ok, _ in checks),
        "checks": {name: {"ok": ok, "detail": detail} for name, ok, detail in checks},
    }


@hookimpl
def jacscale_routes(app: AppContext) -> list[Any]:
    """The two health routes."""

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        body = await readiness_body(app)
        return json_response(body, 200 if body["ready"] else 503)

    async def healthz_live(request: Request) -> Response:
        return json_response({"status": "alive"})

    async def healthz_ready(request: Request) -> Response:
        body = await readiness_body(app)
        status = "ready" if body["ready"] else "unavailable"
        return json_response({"status": status, **body}, 200 if body["ready"] else 503)

    return [
        Route("/healthz", healthz, methods=["GET"], name="healthz"),
        Route("/readyz", readyz, methods=["GET"], name="readyz"),
        Route("/healthz/live", healthz_live, methods=["GET"], name="healthz_live"),
        Route("/healthz/ready", healthz_ready, methods=["GET"], name="healthz_ready"),
    ]
