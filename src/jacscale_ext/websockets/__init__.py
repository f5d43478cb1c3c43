"""WebSocket walkers: `ws://host/ws/{walker}`, one walker run per JSON message.

The plugin module listed in `jacscale_ext.BUILTINS`; its hooks
live in `plugin.py`. Pieces: `config` ([plugins.scale.websocket]), `connection`
(one socket: principal, send queue, rate limit), `hub` (this worker's sockets,
caps, broadcast fan-out, drain), `handler` (the endpoint), and
`jacscale_ext.broadcast` (the bus between workers).
"""

from jacscale_ext.websockets.plugin import (
    jacscale_broadcast_bus,
    jacscale_config_sections,
    jacscale_draining,
    jacscale_readiness,
    jacscale_routes,
    jacscale_shutdown,
    jacscale_startup,
)

__all__ = [
    "jacscale_broadcast_bus",
    "jacscale_config_sections",
    "jacscale_draining",
    "jacscale_readiness",
    "jacscale_routes",
    "jacscale_shutdown",
    "jacscale_startup",
]
