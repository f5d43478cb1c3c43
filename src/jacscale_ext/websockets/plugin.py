"""The WebSocket extension's hook implementations (a built-in plugin).

Routes `ws://host/ws/{walker}` for every `@restspec(protocol=APIProtocol.WEBSOCKET)`
walker; carries broadcasts between workers through the bus that
`jacscale_broadcast_bus` provides (SQLite in the data directory unless a plugin
such as jacscale-redis offers another); closes sockets with 1001 when the
server drains (`jacscale_draining`: on SIGTERM, before hypercorn waits for
open connections).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from starlette.routing import WebSocketRoute

from jacscale_core.config import ConfigError
from jacscale_core.context import AppContext
from jacscale_core.errors import ApiError
from jacscale_core.plugins import await_me_maybe, hookimpl
from jacscale_core.program import Endpoint
from jacscale_ext.broadcast import BroadcastBus, BroadcastMessage, SqliteBroadcastBus
from jacscale_ext.websockets.config import SECTION, WebSocketConfig
from jacscale_ext.websockets.handler import make_handler
from jacscale_ext.websockets.hub import Hub
from jacscale_ext.websockets.leases import Leases, LeaseStore

log = logging.getLogger("jacscale.websocket")

STATE_KEY = "jacscale_ext.websockets"
BUS_START_TIMEOUT = 10.0


class Runtime:
    """This worker's WebSocket state: configuration, open sockets, the broadcast bus."""

    def __init__(self, app: AppContext, config: WebSocketConfig) -> None:
        """Build the hub from the configuration."""
        self.app = app
        self.config = config
        leases = Leases(
            LeaseStore(app.store.docs, config.lease_seconds), config.lease_refresh_seconds
        )
        self.hub = Hub(
            config.max_connections,
            config.max_connections_per_user,
            config.max_anonymous_per_ip,
            leases,
        )
        self.endpoints: dict[str, Endpoint] = {
            e.name: e for e in app.program.endpoints.values() if e.protocol == "websocket"
        }
        self.hub.broadcast_walkers = {n for n, e in self.endpoints.items() if e.broadcast}
        origins = config.allowed_origins or list(app.settings.api.cors_allow_origins)
        self.any_origin = not origins or "*" in origins
        self.origins = {_norm_origin(o) for o in origins}
        self.bus: BroadcastBus | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._drain: asyncio.Task[None] | None = None

    def origin_allowed(self, origin: str) -> bool:
        """True when a browser page from `origin` may open a socket."""
        return self.any_origin or _norm_origin(origin) in self.origins

    def track(self, future: asyncio.Future[Any]) -> None:
        """Keep a reference to background work until it finishes."""
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)

    # -- broadcast ---------------------------------------------------------------
    async def broadcast(self, endpoint: Endpoint, payload: str) -> None:
        """Deliver to this worker's sockets, then hand to the bus for the others."""
        limit = self.config.max_broadcast_bytes
        if len(payload) > limit or len(payload.encode()) > limit:
            raise ApiError(
                "PAYLOAD_TOO_LARGE",
                f"The result is larger than {limit} bytes and cannot be broadcast",
            )
        public = endpoint.access == "public"
        self.hub.deliver(endpoint.name, public, payload)
        if self.bus is None:
            return
        message = BroadcastMessage(
            walker=endpoint.name,
            audience="public" if public else "authenticated",
            payload=payload,
            origin=self.bus.origin,
            created=time.time(),
        )
        try:
            await self.bus.publish(message)
        except Exception as exc:  # noqa: BLE001 - this worker's sockets were served; others were not
            log.error(
                "websocket %s: broadcast to other workers failed (%s): %s",
                endpoint.name, type(exc).__name__, exc,
            )  # fmt: skip

    def on_bus_message(self, message: BroadcastMessage) -> None:
        """A broadcast from another worker: who sees it is decided here, from our own program."""
        endpoint = self.endpoints.get(message.walker)
        if endpoint is None or not endpoint.broadcast:
            log.debug("broadcast for unknown walker %s ignored", message.walker)
            return
        self.hub.deliver(endpoint.name, endpoint.access == "public", message.payload)

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Open the bus when the program has broadcast walkers."""
        if not self.hub.broadcast_walkers:
            return
        found = self.app.pm.hook.jacscale_broadcast_bus(app=self.app)
        bus = await await_me_maybe(found)
        if bus is None:
            raise RuntimeError("no plugin provides a broadcast bus")
        await asyncio.wait_for(bus.start(self.on_bus_message), BUS_START_TIMEOUT)
        self.bus = bus
        self.hub.on_listening = bus.set_listening
        log.info("websocket: broadcasts between workers through %s", bus.status()[1])

    def start_drain(self) -> asyncio.Task[None]:
        """Begin closing every socket with 1001 (once)."""
        if self._drain is None:
            self._drain = asyncio.ensure_future(self.hub.drain(self.config.drain_timeout_seconds))
        return self._drain

    async def stop(self) -> None:
        """Drain, finish in-flight messages (bounded), close the bus."""
        await self.start_drain()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.config.drain_timeout_seconds)
        if self.hub.leases is not None:
            await self.hub.leases.close(self.config.drain_timeout_seconds)
        if self.bus is not None:
            bus, self.bus = self.bus, None
            await bus.close()


def _norm_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def runtime_of(app: AppContext) -> Runtime:
    """The worker's Runtime, made on first use (route building happens before start-up)."""
    rt = app.state.get(STATE_KEY)
    if rt is None:
        config = app.config_section(SECTION)
        problems = config.problems()
        if problems:
            raise ConfigError("; ".join(problems))
        rt = Runtime(app, config)
        app.state[STATE_KEY] = rt
    return rt  # type: ignore[no-any-return]


# --------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------


@hookimpl
def jacscale_config_sections() -> dict[str, type]:
    """[plugins.scale.websocket]."""
    return {SECTION: WebSocketConfig}


@hookimpl
def jacscale_routes(app: AppContext) -> list[Any]:
    """One WebSocket route per WEBSOCKET walker."""
    rt = runtime_of(app)
    return [
        WebSocketRoute(e.route_path, make_handler(rt, e), name=f"ws_{e.name}")
        for e in rt.endpoints.values()
    ]


@hookimpl(trylast=True)
def jacscale_broadcast_bus(app: AppContext) -> BroadcastBus:
    """The embedded default: `<data dir>/broadcast.db`, polled by every local worker."""
    return SqliteBroadcastBus(app.settings.data_dir / "broadcast.db")


@hookimpl
async def jacscale_startup(app: AppContext) -> None:
    """Open the broadcast bus (when the program has broadcast walkers)."""
    await runtime_of(app).start()


@hookimpl
def jacscale_draining(app: AppContext) -> Coroutine[Any, Any, None] | None:
    """Close every socket with 1001 (the server calls this before it waits for connections)."""
    rt = app.state.get(STATE_KEY)
    if not isinstance(rt, Runtime):
        return None
    return _await(rt.start_drain())


async def _await(task: asyncio.Task[None]) -> None:
    await task


@hookimpl
async def jacscale_shutdown(app: AppContext) -> None:
    """Close sockets (1001) if draining has not already, then the bus."""
    rt = app.state.get(STATE_KEY)
    if isinstance(rt, Runtime):
        await rt.stop()


@hookimpl
def jacscale_readiness(app: AppContext) -> list[tuple[str, bool, str]]:
    """The broadcast bus, when there is one."""
    rt = app.state.get(STATE_KEY)
    if not isinstance(rt, Runtime) or rt.bus is None:
        return []
    ok, detail = rt.bus.status()
    return [("broadcast", ok, detail)]
