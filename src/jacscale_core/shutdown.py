"""Graceful shutdown: readiness false first, then drain, then stop, then close the stores.

On SIGTERM (or SIGINT) a server:

1. marks itself not ready at once: `/readyz` answers 503 while requests are
   still served, so a load balancer or Kubernetes stops sending new traffic,
   and runs the plugins' `jacscale_draining` hook (WebSockets close with 1001);
2. keeps serving for `drain` seconds (JACSCALE_SHUTDOWN_DRAIN_SECONDS, 0 by
   default; set it a little above the readiness probe period under Kubernetes).
   A second signal skips the rest of the drain;
3. stops accepting connections and gives in-flight requests up to
   `[plugins.scale.server] shutdown_timeout_seconds` to finish (hypercorn's
   graceful timeout);
4. runs the app's shutdown: plugins close their clients, the executor stops,
   the store is closed (every request's writes were committed when it answered).

`signal_trigger` is the shutdown trigger for a process serving alone
(`serve_single` wraps it); `run_workers` supervises N worker processes
(hypercorn's supervisor, with a worker that does steps 1-2 when the shared
shutdown event is set). `jacscale_core.server` uses them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import multiprocessing
import os
import signal
from collections.abc import Awaitable, Callable
from multiprocessing.connection import wait
from multiprocessing.synchronize import Event as EventType
from typing import Any

from hypercorn.config import Config, Sockets

from jacscale_core.context import AppContext

DRAIN_ENV = "JACSCALE_SHUTDOWN_DRAIN_SECONDS"
POLL_SECONDS = 0.1
DRAINING_TIMEOUT_SECONDS = 10.0
JOIN_MARGIN_SECONDS = 10.0

log = logging.getLogger("jacscale.server")


def drain_seconds(ctx: AppContext | None = None, env: dict[str, str] | None = None) -> float:
    """How long to keep serving, not ready, after a shutdown signal."""
    env = dict(os.environ) if env is None else env
    raw = env.get(DRAIN_ENV, "")
    if raw:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{DRAIN_ENV} must be a number of seconds, got {raw!r}") from None
        if value < 0:
            raise ValueError(f"{DRAIN_ENV} must not be negative")
        return value
    if ctx is not None:
        return float(getattr(ctx.settings.server, "shutdown_drain_seconds", 0.0))
    return 0.0


async def announce_draining(ctx: AppContext) -> None:
    """Run every plugin's `jacscale_draining` (e.g. WebSockets close with 1001).

    Each plugin gets its own time bound; one that fails or overruns is logged
    with its error and the others, and the shutdown, go on.
    """
    hook = getattr(ctx.pm.hook, "jacscale_draining", None)
    if hook is None:
        return
    for impl in reversed(hook.get_hookimpls()):  # pluggy's own calling order
        kwargs = {"app": ctx} if "app" in impl.argnames else {}
        try:
            result = impl.function(**kwargs)
            if inspect.isawaitable(result):
                await asyncio.wait_for(result, DRAINING_TIMEOUT_SECONDS)
        except TimeoutError:
            log.error(
                "jacscale_draining of %s did not finish within %.0fs",
                impl.plugin_name, DRAINING_TIMEOUT_SECONDS,
            )  # fmt: skip
        except Exception:  # noqa: BLE001 - logged in full; stopping must go on
            log.exception("jacscale_draining of %s failed", impl.plugin_name)


async def begin_shutdown(ctx: AppContext, drain: float, again: asyncio.Event | None = None) -> None:
    """Readiness false now, tell plugins, keep serving for `drain` seconds (or until `again`)."""
    ctx.ready = False
    log.info("shutting down: readiness is false; draining for %.1fs", drain)
    await announce_draining(ctx)
    if drain <= 0:
        return
    if again is None:
        await asyncio.sleep(drain)
        return
    try:
        await asyncio.wait_for(again.wait(), drain)
        log.info("second signal: skipping the rest of the drain")
    except TimeoutError:
        pass


def signal_trigger(ctx: AppContext, drain: float) -> Callable[[], Awaitable[None]]:
    """A hypercorn `shutdown_trigger` for a process that receives the signals itself."""

    async def trigger() -> None:
        loop = asyncio.get_running_loop()
        first, second = asyncio.Event(), asyncio.Event()

        def on_signal() -> None:
            (second if first.is_set() else first).set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        await first.wait()
        await begin_shutdown(ctx, drain, second)

    return trigger


def event_trigger(
    ctx: AppContext, drain: float, shutdown_event: EventType
) -> Callable[[], Awaitable[None]]:
    """A hypercorn `shutdown_trigger` for a worker told to stop through a shared event.

    A SIGTERM sent to the worker itself (a whole process group being stopped)
    starts the same graceful shutdown.
    """

    async def trigger() -> None:
        told = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, told.set)

        async def watch_shared_event() -> None:
            # A multiprocessing Event cannot be awaited: look at it ten times a second.
            while not shutdown_event.is_set():  # noqa: ASYNC110
                await asyncio.sleep(POLL_SECONDS)
            told.set()

        watcher = asyncio.create_task(watch_shared_event())
        try:
            await told.wait()
        finally:
            watcher.cancel()
        await begin_shutdown(ctx, drain)

    return trigger


def serve_single(starlette: Any, config: Config) -> int:
    """Serve in this process until SIGTERM/SIGINT, shutting down gracefully."""
    from hypercorn.asyncio import serve

    ctx: AppContext = starlette.state.jacscale
    trigger = signal_trigger(ctx, drain_seconds(ctx))
    asyncio.run(serve(starlette, config, shutdown_trigger=trigger))
    return 0


def worker(config: Config, sockets: Sockets, shutdown_event: EventType) -> None:
    """One worker process: build the app, serve until the shared event, drain first."""
    from hypercorn.asyncio.run import worker_serve
    from hypercorn.utils import load_application

    # Ctrl-C reaches the whole process group; the supervisor decides for everyone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    app = load_application(config.application_path, config.wsgi_max_body_size)
    from jacscale_core import asgi

    ctx: AppContext = asgi.app.state.jacscale
    trigger = event_trigger(ctx, drain_seconds(ctx), shutdown_event)
    asyncio.run(worker_serve(app, config, sockets=sockets, shutdown_trigger=trigger))


def run_workers(config: Config) -> int:
    """Supervise `config.workers` worker processes; return the exit code.

    SIGTERM/SIGINT sets the shared shutdown event (each worker drains and stops);
    a worker that dies on its own stops the others and makes the exit code non-zero.
    """
    sockets = config.create_sockets()
    spawn = multiprocessing.get_context("spawn")
    shutdown_event = spawn.Event()
    stopping = False

    def on_signal(*_: Any) -> None:
        nonlocal stopping
        stopping = True
        shutdown_event.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes = []
    try:
        for _ in range(config.workers):
            process = spawn.Process(
                target=worker,
                kwargs={"config": config, "sockets": sockets, "shutdown_event": shutdown_event},
            )
            process.daemon = False
            process.start()
            processes.append(process)
        wait([p.sentinel for p in processes])
        if not stopping:
            exited = [p.pid for p in processes if not p.is_alive()]
            log.error("worker %s exited on its own: stopping the others", exited)
            shutdown_event.set()
        bound = drain_seconds() + float(config.graceful_timeout) + JOIN_MARGIN_SECONDS
        for process in processes:
            process.join(bound)
            if process.is_alive():
                log.error("worker %s did not stop within %.0fs: terminating", process.pid, bound)
                process.terminate()
                process.join(5)
        codes = [p.exitcode or 0 for p in processes]
        return 0 if stopping and not any(codes) else (next((c for c in codes if c), 1))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sock in [*sockets.insecure_sockets, *sockets.secure_sockets]:
            sock.close()
