"""Request and walker counters and recent errors, for the admin console.

A built-in plugin: a middleware counts and times each HTTP request by route
template (bounded cardinality) and remembers the latest 5xx answers with their
request ids; `jacscale_walker_finished` counts and times walker runs and
remembers failed ones. Everything is per worker process, kept in
`app.state["activity"]`; nothing leaves the process.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Scope

from jacscale_core.context import AppContext
from jacscale_core.middleware import request_id_of
from jacscale_core.plugins import hookimpl
from jacscale_ext.access_log import method_label, route_template

STATE_KEY = "activity"
ADMIN_SECTION = "plugins.scale.admin"  # jacscale_ext.admin shows what this counts
MAX_ROUTES = 500
RECENT_ERRORS = 100


@dataclass(slots=True)
class Timing:
    """Count, failures and latency sum/max of one route or walker."""

    count: int = 0
    failures: int = 0
    total: float = 0.0
    slowest: float = 0.0

    def add(self, seconds: float, failed: bool) -> None:
        """Record one run."""
        self.count += 1
        self.failures += int(failed)
        self.total += seconds
        self.slowest = max(self.slowest, seconds)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (milliseconds)."""
        mean = self.total / self.count if self.count else 0.0
        return {
            "count": self.count,
            "failures": self.failures,
            "mean_ms": round(mean * 1000, 3),
            "max_ms": round(self.slowest * 1000, 3),
        }


@dataclass
class Activity:
    """What this worker has served since it started."""

    started: float = field(default_factory=time.time)
    routes: dict[tuple[str, str], Timing] = field(default_factory=dict)
    walkers: dict[str, Timing] = field(default_factory=dict)
    errors: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_ERRORS))

    def request(self, method: str, path: str, status: int, seconds: float, rid: str) -> None:
        """Record one HTTP answer."""
        key = (method, path)
        timing = self.routes.get(key)
        if timing is None:
            if len(self.routes) >= MAX_ROUTES:
                key = (method, "(other)")
            timing = self.routes.setdefault(key, Timing())
        timing.add(seconds, status >= 500)
        if status >= 500:
            self.errors.append({"at": time.time(), "request_id": rid, "method": method,
                                "path": path, "status": status})  # fmt: skip

    def walker(self, name: str, seconds: float, success: bool) -> None:
        """Record one walker or function run."""
        self.walkers.setdefault(name, Timing()).add(seconds, not success)

    def snapshot(self) -> dict[str, Any]:
        """Counters as JSON, busiest first."""
        routes = sorted(self.routes.items(), key=lambda kv: -kv[1].count)
        walkers = sorted(self.walkers.items(), key=lambda kv: -kv[1].count)
        return {
            "since": self.started,
            "requests": [{"method": m, "path": p, **t.as_dict()} for (m, p), t in routes],
            "walkers": [{"name": n, **t.as_dict()} for n, t in walkers],
        }


def activity_of(app: AppContext) -> Activity:
    """The app's activity record (made on first use)."""
    found = app.state.get(STATE_KEY)
    if not isinstance(found, Activity):
        found = app.state[STATE_KEY] = Activity()
    return found


@hookimpl
def jacscale_request_observer(app: AppContext) -> Callable[[Scope, int, float], None] | None:
    """Count and time every HTTP request, while the admin console that shows it is on."""
    if not app.config_section(ADMIN_SECTION).enabled:
        return None
    activity = activity_of(app)

    def observe(scope: Scope, status: int, seconds: float) -> None:
        activity.request(
            method_label(scope.get("method", "")),
            route_template(scope, scope.get("root_path", "")),
            status,
            seconds,
            request_id_of(scope),
        )

    return observe


@hookimpl
def jacscale_walker_finished(
    app: AppContext, endpoint: Any, duration: float, success: bool
) -> None:
    """Count and time a walker or function run."""
    activity_of(app).walker(str(getattr(endpoint, "name", endpoint)), duration, success)
