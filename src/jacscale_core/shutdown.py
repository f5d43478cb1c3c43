"""Graceful shutdown: readiness false first, then drain, then stop, then close the stores.

On SIGTERM (or SIGINT) a server:

1. marks itself not ready at once: `/readyz` answers 503 while requests are
   still served, so a load balancer or Kubernetes stops sending new traffic,
   and runs the plugins' `jacscale_draining` hook (WebSockets close with 1001);
2. keeps serving for `drain` seconds (JACSCALE_SHUTDOWN_DRAIN_SECONDS, 3 by
   default; set it a little above the readiness probe period under Kubernetes),
   every response saying `Connection: close` so kept-alive clients move off.
   A second signal skips the rest of the drain;
3. stops accepting connections and gives in-flight requests up to
   `[plugins.scale.server] shutdown_timeout_seconds` to finish (hypercorn's
   graceful timeout);
4. runs the app's shutdown: plugins close their clients, the executor stops,
   the store is closed (every request's writes were committed when it answered).

`signal_trigger` is the shutdown trigger for a process serving alone
(`serve_single` wraps it); `run_workers` supervises N worker processes
(a worker does steps 1-2 when the shared shutdown event is set; a worker that
dies on its own is replaced). `jacscale_core.server` uses them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import wait
from multiprocessing.synchronize import Event as EventType
from typing import Any

from hypercorn.config import Config, Sockets
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jacscale_core.context import AppContext

DRAIN_ENV = "JACSCALE_SHUTDOWN_DRAIN_SECONDS"
# Keep serving (not ready, `Connection: close` on every answer) this long after
# SIGTERM unless configured otherwise: long enough for kept-alive clients to move
# off and a load balancer to notice; a second signal cuts it short.
DEFAULT_DRAIN_SECONDS = 3.0
DRAINING_KEY = "shutdown.draining"
POLL_SECONDS = 0.1
DRAINING_TIMEOUT_SECONDS = 10.0
JOIN_MARGIN_SECONDS = 10.0
# A worker that dies within this long of starting failed at start-up.
STARTUP_SECONDS = 10.0
# After this many start-up failures in a row the supervisor gives up.
MAX_STARTUP_FAILURES = 5
# Replacing a dead worker waits this long, doubled per start-up failure in a row.
RESTART_BACKOFF_SECONDS = 0.5
RESTART_BACKOFF_MAX = 30.0

log = logging.getLogger("jacscale.server")


class CloseWhenDraining:
    """ASGI middleware: once shutdown began, every response carries `Connection: close`.

    A client on a kept-alive connection then sends its next request on a new
    connection (to another server, once readiness is false) instead of on one
    this server is about to close under it.
    """

    def __init__(self, app: ASGIApp, ctx: AppContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.ctx.state

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and state.get(DRAINING_KEY):
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message["headers"] = [*headers, (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, closing_send)


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
        return float(getattr(ctx.settings.server, "shutdown_drain_seconds", DEFAULT_DRAIN_SECONDS))
    return DEFAULT_DRAIN_SECONDS


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
    """Readiness false now, tell plugins, keep serving for `drain` seconds (or until `again`).

    From now on every response says `Connection: close` (`CloseWhenDraining`), so
    clients leave their kept-alive connections before the server stops reading them.
    """
    ctx.ready = False
    ctx.state[DRAINING_KEY] = True
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


def run_workers(
    config: Config,
    *,
    startup_seconds: float = STARTUP_SECONDS,
    max_startup_failures: int = MAX_STARTUP_FAILURES,
    target: Callable[[Config, Sockets, EventType], None] = worker,
) -> int:
    """Supervise `config.workers` worker processes; return the exit code.

    Each process runs `target(config, sockets, shutdown_event)` (hypercorn's
    `worker` by default; `jacscale_core.launch` passes one for uvicorn).

    SIGTERM/SIGINT sets the shared shutdown event (each worker drains and stops).
    A worker that dies on its own (an OOM kill, a crash) is replaced after a
    back-off while the others keep serving. A worker that dies within
    `startup_seconds` of being started counts as a start-up failure; after
    `max_startup_failures` of them in a row the supervisor stops every worker
    and exits non-zero (the program cannot start, replacing it would only loop).
    """
    sockets = config.create_sockets()
    spawn = multiprocessing.get_context("spawn")
    shutdown_event = spawn.Event()
    stopping = False

    def on_signal(*_: Any) -> None:
        nonlocal stopping
        stopping = True
        shutdown_event.set()

    def start() -> Any:
        process = spawn.Process(
            target=target,
            kwargs={"config": config, "sockets": sockets, "shutdown_event": shutdown_event},
        )
        process.daemon = False
        process.start()
        started[process.pid] = time.monotonic()
        return process

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    started: dict[int | None, float] = {}
    processes: list[Any] = []
    failed_code = 0
    try:
        processes = [start() for _ in range(config.workers)]
        quick_deaths = 0  # start-up failures in a row
        due: list[float] = []  # when each pending replacement may start
        while not stopping:
            wait([p.sentinel for p in processes], timeout=POLL_SECONDS)
            now = time.monotonic()
            for process in [p for p in processes if not p.is_alive()]:
                if stopping:
                    break
                processes.remove(process)
                lived = now - started.pop(process.pid, now)
                quick_deaths = quick_deaths + 1 if lived < startup_seconds else 0
                if quick_deaths >= max_startup_failures:
                    log.error(
                        "worker %s exited with code %s %.1fs after starting, %d start-up"
                        " failures in a row: stopping the server",
                        process.pid, process.exitcode, lived, quick_deaths,
                    )  # fmt: skip
                    failed_code = process.exitcode or 1
                    stopping = True
                    shutdown_event.set()
                    break
                delay = min(RESTART_BACKOFF_MAX, RESTART_BACKOFF_SECONDS * 2**quick_deaths)
                log.error(
                    "worker %s exited with code %s after %.1fs; starting a replacement in"
                    " %.1fs (%d of %d workers serving)",
                    process.pid, process.exitcode, lived, delay, len(processes), config.workers,
                )  # fmt: skip
                due.append(now + delay)
            while not stopping and due and min(due) <= time.monotonic():
                due.remove(min(due))
                replacement = start()
                processes.append(replacement)
                log.info("worker %s started to replace an exited one", replacement.pid)
        bound = drain_seconds() + float(config.graceful_timeout) + JOIN_MARGIN_SECONDS
        for process in processes:
            process.join(bound)
            if process.is_alive():
                log.error("worker %s did not stop within %.0fs: terminating", process.pid, bound)
                process.terminate()
                process.join(5)
        if failed_code:
            return failed_code
        codes = [p.exitcode or 0 for p in processes]
        return next((c for c in codes if c), 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sock in [*sockets.insecure_sockets, *sockets.secure_sockets]:
            sock.close()
