"""Connection-level hardening in hypercorn: the server header, keep-alive, h2c upgrades.

- `harden(config)`: hypercorn settings: no `Server` header (no version to
  fingerprint), the keep-alive timeout (`keep_alive_timeout_seconds`, default
  75: slow *headers* and idle kept-alive connections are bounded by it), and no
  `Upgrade: h2c` on cleartext connections (answered as the HTTP/1.1 request it
  is; HTTP/2 stays available over TLS through ALPN).

Slow bodies (408) and a request carrying both `Content-Length` and
`Transfer-Encoding` (400) are refused by the app itself, under every server
(`jacscale_core.middleware.KernelLayer`).
"""

from __future__ import annotations

from typing import Any

from hypercorn.config import Config


def harden(config: Config, keep_alive_timeout: float) -> None:
    """Apply the connection-level settings to a hypercorn config (every serving mode)."""
    config.include_server_header = False
    config.keep_alive_timeout = keep_alive_timeout
    refuse_h2c_upgrades()


def refuse_h2c_upgrades() -> None:
    """Make hypercorn's HTTP/1.1 protocol ignore `Upgrade: h2c` on cleartext connections.

    hypercorn switches a cleartext connection to HTTP/2 on `Upgrade: h2c` before
    the app sees the request, with no setting to turn it off. A proxy that
    passes the upgrade through would then tunnel HTTP/2 requests it never
    inspects (h2c smuggling). The protocol class hypercorn builds connections
    from is replaced by a subclass that answers such a request as HTTP/1.1.
    """
    from hypercorn import protocol
    from hypercorn.protocol.h11 import H11Protocol

    if getattr(protocol.H11Protocol, "refuses_h2c", False):
        return

    class NoCleartextH2cUpgrade(H11Protocol):
        refuses_h2c = True

        async def _check_protocol(self, event: Any) -> None:
            if not self.ssl and any(
                name.lower() == b"upgrade" and value.strip().lower() == b"h2c"
                for name, value in event.headers
            ):
                return  # served as the HTTP/1.1 request it also is
            await super()._check_protocol(event)

    protocol.H11Protocol = NoCleartextH2cUpgrade  # type: ignore[misc]
