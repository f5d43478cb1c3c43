"""Run the app under hypercorn: one process, N workers, or with reload.

With one worker and no reload the app is served in this process. Otherwise
hypercorn spawns workers that each build the app from `jacscale_core.asgi`
(settings passed through the JACSCALE_SERVE_SPEC environment variable); every
worker opens its own store connection and they share the data directory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import Any

from hypercorn.config import Config

from jacscale_core.app import create_app, shutdown, startup
from jacscale_core.config import ConfigError
from jacscale_core.context import AppContext
from jacscale_core.http_guards import harden
from jacscale_core.plugins import plugin_names
from jacscale_core.program import ProgramLoadError
from jacscale_core.shutdown import drain_seconds, run_workers, signal_trigger
from jacscale_core.store import StoreUnavailable

SPEC_ENV = "JACSCALE_SERVE_SPEC"
log = logging.getLogger("jacscale.server")


def configure_logging(fmt: str) -> None:
    """Human-readable logs for a terminal, JSON lines with `--log-format json`."""
    from jacscale_core.logs import BatchingStreamHandler, EscapeControlsFilter, JsonFormatter

    handler = BatchingStreamHandler()
    handler.addFilter(EscapeControlsFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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


async def _preflight(ctx: AppContext) -> None:
    """Run start-up and shutdown once (configuration errors surface here), releasing everything."""
    try:
        await startup(ctx)
    finally:
        await shutdown(ctx)


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


def serve(
    app_path: str,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    reload: bool = False,
    data_dir: str | None = None,
    production: bool | None = None,
    log_format: str | None = None,
) -> int:
    """Serve a Jac program until interrupted; return the process exit code."""
    cli: dict[str, Any] = {
        "host": host,
        "port": port,
        "workers": workers,
        "data_dir": data_dir,
        "production": production or None,
        "log_format": log_format,
    }
    cli = {k: v for k, v in cli.items() if v is not None}
    configure_logging(log_format or os.environ.get("JACSCALE_LOG_FORMAT", "human"))
    try:
        starlette = create_app(app_path, cli=cli)
    except ProgramLoadError as exc:
        print(f"error: cannot load {app_path}:\n{exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"error: configuration: {exc}", file=sys.stderr)
        return 2
    ctx: AppContext = starlette.state.jacscale
    config = hypercorn_config(ctx, reload)
    if ctx.settings.server.workers == 1 and not reload:
        from hypercorn.asyncio import serve as hypercorn_serve

        async def run_here() -> int:
            # Start-up first, in the serving loop, so a configuration error is one
            # clear line (the lifespan's own start-up then finds it done).
            try:
                await startup(ctx)
            except ConfigError as exc:
                print(f"error: configuration: {exc}", file=sys.stderr)
                return 2
            except (StoreUnavailable, RuntimeError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print(banner(ctx, len(starlette.routes)), flush=True)
            # SIGTERM/SIGINT: readiness false and plugins told first, then the drain.
            trigger = signal_trigger(ctx, drain_seconds(ctx))
            await hypercorn_serve(starlette, config, shutdown_trigger=trigger)  # type: ignore[arg-type]
            return 0

        return asyncio.run(run_here(), loop_factory=loop_factory())
    # Workers build their own app; this process checks start-up once, then supervises.
    try:
        asyncio.run(_preflight(ctx))
    except ConfigError as exc:
        print(f"error: configuration: {exc}", file=sys.stderr)
        return 2
    except (StoreUnavailable, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(banner(ctx, len(starlette.routes)), flush=True)
    os.environ[SPEC_ENV] = json.dumps({"app_path": str(ctx.settings.app_path), "cli": cli})
    config.application_path = "jacscale_core.asgi:app"
    if not reload:
        return run_workers(config)
    from hypercorn.run import run

    return run(config)
