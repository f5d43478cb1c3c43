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

`signal_trigger` is the shutdown trigger of a process serving alone (it gets
the signals); `event_trigger` that of a worker under `jacscale_core.supervisor`
(it does steps 1-2 when the supervisor's shared shutdown event is set).
`jacscale_core.server` and `jacscale_core.launch` use them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from multiprocessing.synchronize import Event as EventType

from jacscale_core.context import AppContext

DRAIN_ENV = "JACSCALE_SHUTDOWN_DRAIN_SECONDS"
# Keep serving (not ready, `Connection: close` on every answer) this long after
# SIGTERM unless configured otherwise: long enough for kept-alive clients to move
# off and a load balancer to notice; a second signal cuts it short.
DEFAULT_DRAIN_SECONDS = 3.0
DRAINING_KEY = "shutdown.draining"
POLL_SECONDS = 0.1
DRAINING_TIMEOUT_SECONDS = 10.0

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

    From now on every response says `Connection: close` (the kernel layer in
    `jacscale_core.middleware`), so
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
