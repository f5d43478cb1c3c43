"""Starlette's router, with paths that have no parameters found by a dict lookup.

A Jac program has dozens of routes and Starlette tries them one by one: about a
third of a trivial request's framework time here. `IndexedRouter` looks static
paths up directly when the route Starlette would pick is certain (no earlier route
could match the same path and method); everything else, including 405 and 404
answers, goes through Starlette's own scan, so behaviour is the same.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Match, Route, Router, WebSocketRoute, get_route_path
from starlette.types import Receive, Scope, Send


class IndexedRouter(Router):
    """A Router that finds static HTTP routes without scanning."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._static: dict[tuple[str, str], Route] | None = None

    def _build_index(self) -> dict[tuple[str, str], Route]:
        index: dict[tuple[str, str], Route] = {}
        for position, route in enumerate(self.routes):
            if not isinstance(route, Route) or "{" in route.path:
                continue
            for method in route.methods or ():
                probe = {"type": "http", "path": route.path, "root_path": "", "method": method}
                earlier = self.routes[:position]
                if any(
                    not isinstance(r, WebSocketRoute) and r.matches(probe)[0] is Match.FULL
                    for r in earlier
                ):
                    continue  # an earlier route wins for this path: leave it to the scan
                index.setdefault((route.path, method), route)
        return index

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch: the index for static paths, Starlette's scan for the rest."""
        if scope["type"] == "http":
            if self._static is None:
                self._static = self._build_index()
            route = self._static.get((get_route_path(scope), scope["method"]))
            if route is not None:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.setdefault("router", self)
                    scope["route"] = route
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await super().app(scope, receive, send)
