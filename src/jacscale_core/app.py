"""create_app(app.jac) -> a Starlette app: the kernel's one public entry point.

The app is a plain, mountable ASGI application. Per worker process it builds the
plugin manager, settings, the loaded program, the graph store and the executor;
clients that talk to servers are opened in the lifespan (or, when mounted inside
another app whose lifespan does not reach us, on the first request).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import jaclang  # noqa: F401 - jaclang must finish loading before jac_plugin (it imports us)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from jacscale_core.config import load_settings
from jacscale_core.context import AppContext
from jacscale_core.current import running
from jacscale_core.data_scan import log_unloadable_records
from jacscale_core.executor import Executor
from jacscale_core.http_endpoints import endpoint_routes
from jacscale_core.memory import SharedTier
from jacscale_core.middleware import KernelLayer
from jacscale_core.plugins import (
    await_me_maybe,
    check_hookimpls,
    make_plugin_manager,
    plugin_sections,
)
from jacscale_core.program import Program, load_program
from jacscale_core.routing import IndexedRouter
from jacscale_core.schema import Schema

log = logging.getLogger("jacscale")

MAX_UPLOAD_BYTES = 100 * 1024 * 1024


def _topology_index_off() -> None:
    """Keep jaclang's topology index off: jacscale does not store it, and an index
    built inside one request would answer for the whole graph.

    The one write to the environment in jacscale, and why: jaclang 0.16.7 decides
    at every graph change from JAC_TOPOLOGY_INDEX, else from jac.toml's
    `[run] topology_index`, which defaults to on whenever a jac.toml exists. The
    variable is its only switch that wins over both.
    """
    if os.environ.get("JAC_TOPOLOGY_INDEX", "0").lower() in ("1", "true", "yes", "on"):
        log.warning(
            "JAC_TOPOLOGY_INDEX is ignored: jacscale does not store jaclang's topology "
            "index, so traversals always walk the stored edges"
        )
    os.environ["JAC_TOPOLOGY_INDEX"] = "0"


def build_context(
    app_path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
    program: Program | None = None,
    plugins: Sequence[object] = (),
) -> AppContext:
    """Resolve settings, load the program and open the store for this process."""
    env = os.environ if env is None else env
    _topology_index_off()
    from jaclang.jac0core.runtime import JacRuntime

    JacRuntime.strict_permissions = env.get("JAC_STRICT_PERMISSIONS", "").lower() in ("1", "true")
    pm = make_plugin_manager(env)
    for plugin in plugins:
        pm.register(plugin)
    check_hookimpls(pm)
    settings = load_settings(app_path, plugin_sections(pm), cli=cli, env=env)
    app = AppContext.bare(settings, pm)
    # The program's globals (e.g. `glob s = store(...)`) run at import, in this app.
    with running(app):
        app.program = program or load_program(settings.app_path)
    store = pm.hook.jacscale_graph_store(app=app)
    if store is None:
        raise RuntimeError("no plugin provides a graph store (is the built-in SQLite store disabled?)")
    app.store = store
    cache = pm.hook.jacscale_cache_tier(app=app)
    tier = SharedTier(store, cache, record_cache_size=settings.server.record_cache_size)
    tier.schema = Schema(settings.section("plugins.scale.schema"), (app.program.module,))
    app.executor = Executor(
        tier,
        pool_size=settings.server.thread_pool_size,
        max_replays=settings.api.max_replays,
        timeout=settings.api.walker_timeout_seconds,
    )
    return app


async def startup(app: AppContext) -> None:
    """Prepare the store and run every plugin's start-up (idempotent)."""
    if app.state.get("kernel.started"):
        return
    app.state["kernel.started"] = True
    await asyncio.to_thread(app.executor.ensure_roots)
    await asyncio.to_thread(log_unloadable_records, app)
    for result in app.pm.hook.jacscale_startup(app=app):
        await await_me_maybe(result)
    _settle_garbage_collector()
    app.ready = True


def _settle_garbage_collector() -> None:
    """Keep the loaded program out of the collector's way.

    jaclang keeps the compiled program (about 100,000 objects) alive; each full
    collection walked all of it, a ~50 ms pause every few dozen requests that
    showed up as p99 latency. Freezing what exists after start-up moves it out of
    the collector's scans; a larger young generation makes collections rarer.
    """
    gc.collect()
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], 20_000), *threshold[1:])


async def shutdown(app: AppContext) -> None:
    """Mark not-ready, then close plugins, the executor and the store."""
    app.ready = False
    for result in app.pm.hook.jacscale_shutdown(app=app):
        await await_me_maybe(result)
    app.executor.close()
    if app.executor.tier.l2 is not None:
        await asyncio.to_thread(app.executor.tier.l2.close)
    await asyncio.to_thread(app.store.close)


class _AppScope:
    """Makes the app current for everything it runs (requests, WebSockets, the
    lifespan), and runs start-up on the first request when no lifespan reached
    the app (mounts)."""

    def __init__(self, asgi: ASGIApp, ctx: AppContext) -> None:
        self.app = asgi
        self.ctx = ctx
        self.lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with running(self.ctx):
            if scope["type"] in ("http", "websocket") and not self.ctx.state.get("kernel.started"):
                async with self.lock:
                    await startup(self.ctx)
            await self.app(scope, receive, send)


class _KernelStarlette(Starlette):
    """Starlette without its two error layers: the kernel layer answers every error.

    Starlette wraps its middleware in ServerErrorMiddleware and ExceptionMiddleware,
    two more wrappers of `send` on every request. KernelLayer already turns
    ApiError, HTTPException (a 404 or 405 from the router) and any crash into the
    error envelope, and leaves Starlette's request/response wrappers no handlers
    of their own, so every exception reaches it.
    """

    def build_middleware_stack(self) -> ASGIApp:
        """The user middleware around the router, nothing else."""
        app: ASGIApp = self.router
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app


def create_app(
    app_path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    cli: Mapping[str, Any] | None = None,
    plugins: Sequence[object] = (),
) -> Starlette:
    """Build the ASGI app serving the Jac program at `app_path`.

    `data_dir` overrides where the embedded store lives (else JAC_DATA_PATH,
    jac.toml, then `<app dir>/.jac/data`); `plugins` are registered on top of the
    built-ins and entry points (handy for tests and embedding).
    """
    overrides = dict(cli or {})
    if data_dir is not None:
        overrides["data_dir"] = str(data_dir)
    ctx = build_context(app_path, env=env, cli=overrides, plugins=plugins)
    ctx.serving = True

    routes: list[Any] = []
    for contribution in ctx.pm.hook.jacscale_routes(app=ctx):
        routes.extend(contribution or [])
    routes.extend(endpoint_routes(ctx))

    # Plugin middleware (access log, metrics, ...) runs outside the kernel's one
    # layer, so it sees every answer that layer gives (413, 408, 400, the 500 envelope).
    middleware: list[Middleware] = []
    for contribution in ctx.pm.hook.jacscale_middleware(app=ctx):
        middleware.extend(contribution or [])
    middleware.append(
        Middleware(
            KernelLayer,
            ctx=ctx,
            scrub=ctx.scrub,
            max_body_bytes=ctx.settings.api.max_body_bytes,
            max_upload_bytes=max(MAX_UPLOAD_BYTES, ctx.settings.api.max_body_bytes),
            grace_seconds=ctx.settings.server.body_timeout_seconds,
            min_bytes_per_second=ctx.settings.server.min_body_bytes_per_second,
            observers=[o for o in ctx.pm.hook.jacscale_request_observer(app=ctx) if o is not None],
        )
    )
    api = ctx.settings.api
    if api.cors_allow_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=api.cors_allow_origins,
                allow_credentials=api.cors_allow_credentials and "*" not in api.cors_allow_origins,
                allow_methods=["*"],
                allow_headers=["*"],
            )
        )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await startup(ctx)
        try:
            yield
        finally:
            await shutdown(ctx)

    starlette = _KernelStarlette(middleware=middleware)
    starlette.router = IndexedRouter(routes=routes, lifespan=lifespan)
    starlette.state.jacscale = ctx
    starlette.add_middleware(_AppScope, ctx=ctx)
    return starlette
