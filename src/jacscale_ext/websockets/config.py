"""`[plugins.scale.websocket]`: limits and policies of the WebSocket endpoints."""

from __future__ import annotations

import msgspec

SECTION = "plugins.scale.websocket"


class WebSocketConfig(msgspec.Struct, kw_only=True):
    """Every limit is per worker process unless said otherwise.

    - `allowed_origins`: browser `Origin`s that may open a socket (exact
      matches, "*" for any). Empty: `[plugins.scale.api] cors_allow_origins`,
      and when that is empty too, any origin (sockets authenticate with tokens,
      never cookies, so a foreign page gains nothing it could not do itself).
      Clients that send no Origin (not browsers) are always let in.
    - `max_message_bytes`: larger frames get PAYLOAD_TOO_LARGE (socket stays open).
    - `messages_per_second`, `message_burst`: a token bucket per socket; excess
      messages get RATE_LIMITED and are not run.
    - `max_connections`, `max_connections_per_user`, `max_anonymous_per_ip`:
      sockets per worker, per user, and per client address for sockets
      without a token (kept higher: offices share an address). The per-user
      and per-address caps count every worker and server sharing the store:
      each socket holds a lease there.
    - `lease_seconds`, `lease_refresh_seconds`: a socket's lease expires this
      long after its last refresh (so a killed worker's sockets stop counting
      after at most `lease_seconds`); each worker refreshes its leases in one
      batch every `lease_refresh_seconds` (less than `lease_seconds`).
    - `send_queue_size`, `send_timeout_seconds`: a socket whose unsent
      messages exceed the queue, or whose send stalls longer than the timeout,
      is dropped (close 1008) so it never slows the others.
    - `auth_timeout_seconds`: a socket on a non-`:pub` walker that has not
      presented a valid token by then is closed (1008).
    - `max_broadcast_bytes`: a broadcast result larger than this is refused.
    - `drain_timeout_seconds`: how long graceful shutdown waits for close (1001).
    """

    allowed_origins: list[str] = msgspec.field(default_factory=list)
    max_message_bytes: int = 64 * 1024
    messages_per_second: float = 20.0
    message_burst: int = 40
    max_connections: int = 10_000
    max_connections_per_user: int = 20
    max_anonymous_per_ip: int = 200
    lease_seconds: float = 30.0
    lease_refresh_seconds: float = 10.0
    send_queue_size: int = 256
    send_timeout_seconds: float = 10.0
    auth_timeout_seconds: float = 30.0
    max_broadcast_bytes: int = 1024 * 1024
    drain_timeout_seconds: float = 5.0

    def problems(self) -> list[str]:
        """What is wrong with these values (empty when usable)."""
        out = []
        for name in (
            "max_message_bytes",
            "message_burst",
            "max_connections",
            "max_connections_per_user",
            "max_anonymous_per_ip",
            "send_queue_size",
            "max_broadcast_bytes",
        ):
            if getattr(self, name) < 1:
                out.append(f"[{SECTION}] {name} must be at least 1")
        for name in (
            "messages_per_second",
            "send_timeout_seconds",
            "auth_timeout_seconds",
            "drain_timeout_seconds",
            "lease_seconds",
            "lease_refresh_seconds",
        ):
            if not getattr(self, name) > 0:
                out.append(f"[{SECTION}] {name} must be positive")
        if self.lease_refresh_seconds >= self.lease_seconds:
            out.append(f"[{SECTION}] lease_refresh_seconds must be less than lease_seconds")
        return out
