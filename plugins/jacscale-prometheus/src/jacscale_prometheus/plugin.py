"""The jacscale-prometheus hooks: config, /metrics, the request middleware, walker timings."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from starlette.middleware import Middleware
from starlette.routing import Route

from jacscale_core.context import AppContext
from jacscale_core.plugins import hookimpl
from jacscale_core.principal import Principal
from jacscale_core.program import Endpoint
from jacscale_prometheus.config import SECTION, MetricsConfig, ResolvedMetrics, resolve
from jacscale_prometheus.endpoint import STATE_KEY, make_handler
from jacscale_prometheus.middleware import MetricsMiddleware
from jacscale_prometheus.multiproc import choose_dir

log = logging.getLogger("jacscale.metrics")
CONFIG_KEY = "prometheus.config"
DIR_KEY = "prometheus.dir"
LISTENER_KEY = "prometheus.listener"


def configure(app: AppContext) -> ResolvedMetrics:
    """Resolve the settings once per app; choose the multiprocess directory.

    Runs while the app is built, so in `jacscale serve --workers N` the
    supervisor exports the directory before it spawns the workers.
    """
    config = app.state.get(CONFIG_KEY)
    if config is None:
        config = resolve(app.settings, os.environ)
        app.state[CONFIG_KEY] = config
        app.state[DIR_KEY] = choose_dir(config.workers) if config.enabled else None
        if config.enabled and config.access_mode == "loopback":
            log.warning(
                "%s answers local clients only: set [%s] token, bind or public = true "
                "to let Prometheus scrape from elsewhere",
                config.endpoint, SECTION,
            )  # fmt: skip
    return config


@hookimpl
def jacscale_config_sections() -> dict[str, type]:
    """[plugins.scale.metrics]."""
    return {SECTION: MetricsConfig}


@hookimpl
def jacscale_routes(app: AppContext) -> list[Any]:
    """GET {endpoint} on the main port (unless it has its own `bind`)."""
    config = configure(app)
    if not config.enabled or config.bind is not None:
        return []
    return [Route(config.endpoint, make_handler(app, config), methods=["GET"], name="metrics")]


@hookimpl
def jacscale_middleware(app: AppContext) -> list[Any]:
    """The middleware counting and timing every HTTP request."""
    config = configure(app)
    if not config.enabled:
        return []
    skip = config.endpoint if config.bind is None else None
    return [Middleware(MetricsMiddleware, ctx=app, skip_path=skip)]


@hookimpl
def jacscale_openapi_paths(app: AppContext) -> dict[str, Any]:
    """The metrics endpoint, tagged Monitoring (as jac-scale documents it)."""
    config = configure(app)
    if not config.enabled or config.bind is not None:
        return {}
    responses: dict[str, Any] = {
        "200": {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    }
    if config.token:
        responses["401"] = {"description": "Missing or wrong metrics bearer token"}
    elif config.access_mode == "loopback":
        responses["403"] = {"description": "Not a local client"}
    operation = {
        "tags": ["Monitoring"],
        "summary": "Prometheus metrics",
        "operationId": "metrics",
        "responses": responses,
    }
    return {config.endpoint: {"get": operation}}


@hookimpl
async def jacscale_startup(app: AppContext) -> None:
    """Create this worker's metrics (and the separate listener, if configured)."""
    config = configure(app)
    if not config.enabled or STATE_KEY in app.state:
        return
    from jacscale_prometheus.metrics import Metrics

    directory: Path | None = app.state.get(DIR_KEY)
    app.state[STATE_KEY] = Metrics(config, directory)
    if config.bind is not None:
        from jacscale_prometheus.listener import MetricsListener

        host, port = config.bind
        listener = MetricsListener(host, port, config.endpoint, make_handler(app, config))
        if await listener.start(sole_process=config.workers <= 1):
            app.state[LISTENER_KEY] = listener


@hookimpl
async def jacscale_shutdown(app: AppContext) -> None:
    """Stop the listener; retire this worker's live gauges."""
    listener = app.state.pop(LISTENER_KEY, None)
    if listener is not None:
        await listener.stop()
    metrics = app.state.pop(STATE_KEY, None)
    if metrics is not None:
        metrics.close()


@hookimpl
def jacscale_walker_finished(
    app: AppContext, endpoint: Endpoint, principal: Principal, duration: float, success: bool
) -> None:
    """Time walker runs when `walker_metrics = true`."""
    del principal
    metrics = app.state.get(STATE_KEY)
    if metrics is not None:
        metrics.observe_walker(endpoint.name, success, duration)


@hookimpl
def jacscale_job_fired(app: AppContext, name: str, success: bool) -> None:
    """Count scheduled job fires, failed ones apart."""
    metrics = app.state.get(STATE_KEY)
    if metrics is not None:
        metrics.observe_job_fire(name, success)
