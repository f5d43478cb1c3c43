"""Access logs: one line per HTTP request, JSON with `--log-format json`.

Each line carries the request id, method, route template (never the query
string, which may hold `?token=`), status, duration, the principal's user id and
the client address; the raw path only when no route matched; the client's
`X-Trace-Id` when it sent a sane one (`trace_id`). No other header is ever
logged, so neither bearer tokens nor API keys can reach the log. The human
format (the terminal default) reads:

    127.0.0.1 "POST /walker/add_todo" 200 3.1ms user=alice rid=4f0c...

Configure with `[plugins.scale.access_log]`: `enabled` (true) and
`exclude_paths` (the health probes and /metrics by default).

Also home of the request helpers shared with the metrics plugin:
`route_template`, `route_path`, `method_label`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

from jacscale_core.context import AppContext
from jacscale_core.http_endpoints import PRINCIPAL_STATE_KEY
from jacscale_core.logs import (
    HumanFormatter,
    JsonFormatter,
    escape_controls,
    sole_batching_handler,
)
from jacscale_core.middleware import request_id_of, trace_id_of
from jacscale_core.plugins import hookimpl
from jacscale_core.principal import Principal

SECTION = "plugins.scale.access_log"
UNMATCHED = "<unmatched>"
MAX_LOGGED_PATH = 200
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)

log = logging.getLogger("jacscale.access")


class AccessLogConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.access_log]`."""

    enabled: bool = True
    exclude_paths: list[str] = msgspec.field(
        default_factory=lambda: [
            "/healthz",
            "/readyz",
            "/healthz/live",
            "/healthz/ready",
            "/metrics",
        ]
    )


# --------------------------------------------------------------------------
# Request helpers (also used by jacscale-prometheus)
# --------------------------------------------------------------------------


def route_path(scope: Scope) -> str:
    """The request path relative to the app's mount point."""
    path: str = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def route_template(scope: Scope, root_path: str = "") -> str:
    """The matched route's template (`/walker/add_todo/{node_id}`), else `<unmatched>`.

    Call after the app ran: the router records the route in `scope["route"]`.
    `root_path` is the scope's root path when the request entered the app, so
    routes inside a `Mount` get their mount prefix back.
    """
    route = scope.get("route") or _match(scope)
    if route is None:
        return UNMATCHED
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return UNMATCHED
    current_root = scope.get("root_path", "")
    prefix = current_root[len(root_path) :] if current_root.startswith(root_path) else ""
    return prefix + template


def _match(scope: Scope) -> BaseRoute | None:
    """The route the router would pick (Starlette before 1.0 does not record it)."""
    partial = None
    for route in getattr(scope.get("router"), "routes", ()):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route  # type: ignore[no-any-return]
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial


def method_label(method: str) -> str:
    """The HTTP method, or `OTHER` for made-up ones (bounded label values)."""
    return method if method in _METHODS else "OTHER"


def principal_id_of(scope: Scope) -> str | None:
    """The user id the request authenticated as (None for anonymous and guests)."""
    principal = scope.get("state", {}).get(PRINCIPAL_STATE_KEY)
    if isinstance(principal, Principal) and not principal.is_guest:
        return principal.user_id
    return None


# --------------------------------------------------------------------------
# The middleware
# --------------------------------------------------------------------------


def write_line(scope: Scope, root_path: str, status: int, seconds: float) -> None:
    """Log one finished request."""
    if not log.isEnabledFor(logging.INFO):
        return
    route = route_template(scope, root_path)
    method = method_label(scope.get("method", ""))
    principal = principal_id_of(scope)
    client = scope.get("client")
    client_host = str(client[0]) if client else "-"
    rid = request_id_of(scope)
    duration_ms = round(seconds * 1000, 3)
    extra: dict[str, Any] = {
        "request_id": rid,
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": duration_ms,
        "principal": principal,
        "client": client_host,
    }
    if route == UNMATCHED:
        extra["path"] = route_path(scope)[:MAX_LOGGED_PATH]
    shown = route if route != UNMATCHED else extra["path"]
    line = '%s "%s %s" %d %.1fms user=%s rid=%s'
    args: tuple[Any, ...] = (client_host, method, shown, status, duration_ms, principal or "-", rid)
    trace_id = trace_id_of(scope)  # sane by construction: letters, digits, . _ : -
    if trace_id:
        extra["trace_id"] = trace_id
        line += " trace=%s"
        args += (trace_id,)
    handler = sole_batching_handler(log)
    if handler is not None:
        # The default set-up: the line the record would have made, without making it.
        assert isinstance(handler.formatter, (HumanFormatter, JsonFormatter))
        for key, value in extra.items():
            if isinstance(value, str):
                extra[key] = escape_controls(value)
        message = escape_controls(line % args)
        handler.add_line(handler.formatter.line(time.time(), "INFO", log.name, message, extra))
        return
    # The record built directly: Logger.info would also walk the stack to find
    # the caller (this function, every time) on each request.
    record = log.makeRecord(
        log.name, logging.INFO, __file__, 0, line, args, None, func="write_line", extra=extra,
    )  # fmt: skip
    log.handle(record)


# --------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------


@hookimpl
def jacscale_config_sections() -> dict[str, type]:
    """[plugins.scale.access_log]."""
    return {SECTION: AccessLogConfig}


@hookimpl
def jacscale_request_observer(app: AppContext) -> Callable[[Scope, int, float], None] | None:
    """Log each finished HTTP request, unless `enabled = false` or its path is excluded."""
    config: AccessLogConfig = app.config_section(SECTION)
    if not config.enabled:
        return None
    exclude = frozenset(config.exclude_paths)

    def observe(scope: Scope, status: int, seconds: float) -> None:
        if route_path(scope) not in exclude:
            write_line(scope, scope.get("root_path", ""), status, seconds)

    return observe
