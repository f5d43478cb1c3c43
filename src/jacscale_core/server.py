"""Serving under hypercorn (one process, N workers, or with reload), and what every
server shares: the logging set-up, the start-up banner, the event loop.

With one worker and no reload the app is served in this process. Otherwise our
supervisor (`jacscale_core.supervisor`) spawns workers that each build the app
from the `WorkerSpec` they are given (`jacscale_core.asgi`); every worker opens
its own store connection and they share the data directory.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from multiprocessing.synchronize import Event as EventType
from typing import TYPE_CHECKING, Any

from hypercorn.config import Config, Sockets

from jacscale_core.context import AppContext
from jacscale_core.http_guards import harden
from jacscale_core.plugins import plugin_names
from jacscale_core.shutdown import drain_seconds, event_trigger, signal_trigger
from jacscale_core.supervisor import run_workers

if TYPE_CHECKING:
    from jacscale_core.asgi import WorkerSpec

log = logging.getLogger("jacscale.server")


def configure_logging(fmt: str) -> None:
    """Human-readable logs for a terminal, JSON lines with `--log-format json`."""
    from jacscale_core.logs import (
        BatchingStreamHandler,
        EscapeControlsFilter,
        HumanFormatter,
        JsonFormatter,
    )

    handler = BatchingStreamHandler()
    handler.addFilter(EscapeControlsFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(HumanFormatter())
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, BatchingStreamHandler):
            old.close()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # jaclang logs every denied access check at INFO; our responses carry them.
    logging.getLogger("jaclang").setLevel(logging.WARNING)


def banner(ctx: AppContext, route_count: int) -> str:
    """What start-up prints: URL, routes, data directory, plugins, config warnings."""
    s = ctx.settings.server
    host = "127.0.0.1" if s.host in ("0.0.0.0", "::") else s.host
    lines = [
        f"jacscale serving {ctx.settings.app_path.name} at http://{host}:{s.port}"
        f"  (bound to {s.host}, {s.workers} worker{'s' if s.workers != 1 else ''})",
        f"  routes:    {route_count}  (jacscale routes {ctx.settings.app_path.name} lists them)",
        f"  data:      {ctx.store.location}",
        f"  plugins:   {', '.join(plugin_names(ctx.pm))}",
    ]
    if ctx.settings.toml_path:
        lines.append(f"  config:    {ctx.settings.toml_path}")
    for warning in ctx.settings.warnings:
        lines.append(f"  warning:   {warning}")
    return "\n".join(lines)


def loop_factory() -> Any:
    """uvloop's event loop when installed (faster I/O), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def hypercorn_config(ctx: AppContext, reload: bool) -> Config:
    """hypercorn settings from ours."""
    s = ctx.settings.server
    config = Config()
    host = f"[{s.host}]" if ":" in s.host else s.host
    config.bind = [f"{host}:{s.port}"]
    config.workers = s.workers
    config.use_reloader = reload
    config.graceful_timeout = s.shutdown_timeout_seconds
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    harden(config, s.keep_alive_timeout_seconds)  # no Server header, no h2c on cleartext
    if loop_factory() is not None:
        config.worker_class = "uvloop"
    return config


async def serve_here(starlette: Any, ctx: AppContext) -> int:
    """Serve in this process (its start-up done) until SIGTERM/SIGINT, then shut down gracefully.

    SIGTERM/SIGINT: readiness false and plugins told first, then the drain, then
    hypercorn stops (`jacscale_core.shutdown`).
    """
    from hypercorn.asyncio import serve as hypercorn_serve

    config = hypercorn_config(ctx, reload=False)
    trigger = signal_trigger(ctx, drain_seconds(ctx))
    await hypercorn_serve(starlette, config, shutdown_trigger=trigger)  # type: ignore[arg-type]
    return 0


def serve_workers(ctx: AppContext, spec: WorkerSpec) -> int:
    """`--workers N` or `--reload`: our supervisor over hypercorn worker processes."""
    config = hypercorn_config(ctx, spec.reload)
    return run_workers(config, spec, target=worker, reload=spec.reload)


def worker(config: Config, sockets: Sockets, shutdown_event: EventType, spec: WorkerSpec) -> None:
    """One hypercorn worker process: build the app, serve until the shared event, drain first."""
    from hypercorn.asyncio.run import worker_serve
    from hypercorn.utils import wrap_app

    from jacscale_core import asgi

    # Ctrl-C reaches the whole process group; the supervisor decides for everyone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    starlette = asgi.build(spec)
    ctx: AppContext = starlette.state.jacscale
    trigger = event_trigger(ctx, 0.0 if spec.reload else drain_seconds(ctx), shutdown_event)
    app = wrap_app(starlette, config.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
    asyncio.run(worker_serve(app, config, sockets=sockets, shutdown_trigger=trigger))
