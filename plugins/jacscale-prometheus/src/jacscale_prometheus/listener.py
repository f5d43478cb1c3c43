"""/metrics on its own address (`[plugins.scale.metrics] bind = "host:port"`).

Every worker tries to bind; the first one serves (any worker's answer is the
sum over all of them) and the others skip. The listener is a tiny Starlette app
under hypercorn, started and stopped with the worker.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.routing import Route

from jacscale_core.config import ConfigError

log = logging.getLogger("jacscale.metrics")
STOP_TIMEOUT_SECONDS = 5.0


class MetricsListener:
    """A second HTTP listener serving only the metrics endpoint."""

    def __init__(self, host: str, port: int, path: str, handler: Any) -> None:
        self.host = host
        self.port = port
        self.app = Starlette(routes=[Route(path, handler, methods=["GET"])])
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        return sock

    async def start(self, sole_process: bool) -> bool:
        """Bind and serve; False when another worker already serves this address.

        With a single process a busy address is an error (something else owns it).
        """
        try:
            sock = self._bind()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and not sole_process:
                log.info("metrics listener %s:%d is served by another worker", self.host, self.port)
                return False
            raise ConfigError(
                f"[plugins.scale.metrics] bind {self.host}:{self.port}: {exc.strerror}"
            ) from exc
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        config.graceful_timeout = 2.0
        self._task = asyncio.create_task(
            serve(self.app, config, shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]
        )
        log.info("metrics served on http://%s:%d", self.host, self.port)
        return True

    async def stop(self) -> None:
        """Stop serving and wait (bounded) for the listener to close."""
        if self._task is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(self._task, STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            self._task.cancel()
        self._task = None
