"""HTTP metrics per request, labelled by route template (bounded cardinality)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jacscale_core.context import AppContext
from jacscale_ext.access_log import method_label, route_path, route_template
from jacscale_prometheus.endpoint import STATE_KEY


class MetricsMiddleware:
    """Counts and times every HTTP request except scrapes of the metrics endpoint."""

    def __init__(self, app: ASGIApp, ctx: AppContext, skip_path: str | None) -> None:
        self.app = app
        self.ctx = ctx
        self.skip_path = skip_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self.ctx.state.get(STATE_KEY)
        if (
            scope["type"] != "http"
            or metrics is None
            or (self.skip_path is not None and route_path(scope) == self.skip_path)
        ):
            await self.app(scope, receive, send)
            return
        root_path = scope.get("root_path", "")
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        metrics.in_progress.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            metrics.in_progress.dec()
            metrics.observe_request(
                method_label(scope.get("method", "")),
                route_template(scope, root_path),
                status,
                time.perf_counter() - started,
            )
