"""GET /metrics: who may scrape, and the handler itself."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from jacscale_core.context import AppContext
from jacscale_core.errors import ApiError, unauthorized
from jacscale_core.http_endpoints import error_response
from jacscale_core.middleware import request_id_of
from jacscale_prometheus.config import ResolvedMetrics

STATE_KEY = "prometheus.metrics"
_FORWARDING_HEADERS = (b"forwarded", b"x-forwarded-for", b"x-real-ip")


def is_direct_loopback(scope: Mapping[str, Any]) -> bool:
    """True for a client on this machine that is not a proxy forwarding someone else."""
    client = scope.get("client")
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    if not address.is_loopback:
        return False
    return not any(key in _FORWARDING_HEADERS for key, _ in scope.get("headers", []))


def check_access(scope: Mapping[str, Any], config: ResolvedMetrics) -> ApiError | None:
    """None if this request may scrape, else the error to answer with."""
    if config.token:
        header = ""
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                header = value.decode("latin-1")
                break
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), config.token.encode()
        ):
            return unauthorized("Metrics require Authorization: Bearer <metrics token>")
        return None
    if config.access_mode == "public":
        return None
    if is_direct_loopback(scope):
        return None
    return ApiError(
        "FORBIDDEN",
        "Metrics are served to local clients only; set [plugins.scale.metrics] token, "
        "bind or public = true to scrape from elsewhere",
    )


def make_handler(app: AppContext, config: ResolvedMetrics) -> Any:
    """The Starlette endpoint answering a scrape."""

    async def metrics_endpoint(request: Request) -> Response:
        denied = check_access(request.scope, config)
        if denied is not None:
            return error_response(denied, request_id_of(request.scope))
        metrics = app.state.get(STATE_KEY)
        if metrics is None:
            err = ApiError("UNAVAILABLE", "Metrics are not initialised yet")
            return error_response(err, request_id_of(request.scope))
        body = await anyio.to_thread.run_sync(metrics.render)
        from jacscale_prometheus.metrics import CONTENT_TYPE

        return Response(body, media_type=CONTENT_TYPE)

    return metrics_endpoint
