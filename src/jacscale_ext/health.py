"""GET /healthz (liveness: no I/O) and GET /readyz (the store can write, the roots exist,
plugins answer).

The store check commits one tiny write when the store offers `probe_write` (the
embedded SQLite store does: a full disk makes the server not ready), else it
pings. The roots check looks for the system and guest roots in the store itself
and creates them again when they are gone (a database restored empty), so the
server recovers without a restart.

jac-scale's probe paths answer too, with the same meaning and status codes:
GET /healthz/live (`{"status": "alive"}`) and GET /healthz/ready (the /readyz
body plus `"status": "ready"` or `"unavailable"`), so Kubernetes manifests
written for jac-scale work unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jacscale_core.context import AppContext
from jacscale_core.http_endpoints import json_response
from jacscale_core.plugins import await_me_maybe, hookimpl
from jacscale_core.store import StoreFull

READY_TIMEOUT_SECONDS = 3.0
log = logging.getLogger("jacscale.health")


async def readiness(app: AppContext) -> list[tuple[str, bool, str]]:
    """Every readiness check: the store ping plus what plugins report."""
    checks: list[tuple[str, bool, str]] = []
    try:
        probe = getattr(app.store, "probe_write", None)
        if probe is not None:
            await asyncio.wait_for(asyncio.to_thread(probe), READY_TIMEOUT_SECONDS)
            ok = True
        else:
            ok = await asyncio.wait_for(asyncio.to_thread(app.store.ping), READY_TIMEOUT_SECONDS)
        checks.append(("store", bool(ok), app.store.location if ok else "no answer"))
    except TimeoutError:
        checks.append(("store", False, f"no answer within {READY_TIMEOUT_SECONDS}s"))
    except StoreFull:
        checks.append(("store", False, "disk full: writes fail until space is freed"))
    except Exception as exc:  # noqa: BLE001 - reported as a failed check, not raised
        checks.append(("store", False, type(exc).__name__))
    if checks[-1][1]:
        checks.append(await _roots_check(app))
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


async def _roots_check(app: AppContext) -> tuple[str, bool, str]:
    """The system and guest roots are in the store (created again when they are not)."""
    try:
        created = await asyncio.wait_for(
            asyncio.to_thread(app.executor.ensure_roots), READY_TIMEOUT_SECONDS
        )
    except TimeoutError:
        return ("roots", False, f"no answer within {READY_TIMEOUT_SECONDS}s")
    except Exception as exc:  # noqa: BLE001 - reported as a failed check, not raised
        return ("roots", False, f"missing and not restored: {type(exc).__name__}")
    if created:
        log.warning("the store had lost %d of the system/guest roots: created again", len(created))
        return ("roots", True, "system and guest roots restored")
    return ("roots", True, "system and guest roots present")


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
