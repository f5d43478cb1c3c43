"""A /hello route and a readiness check, switched on by `[plugins.scale.hello] enabled = true`."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jacscale_core.context import AppContext
from jacscale_core.http_endpoints import json_response
from jacscale_core.plugins import hookimpl


class HelloConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.hello]`."""

    enabled: bool = False
    greeting: str = "hello"


@hookimpl
def jacscale_config_sections() -> dict[str, type]:
    """The table this plugin reads."""
    return {"plugins.scale.hello": HelloConfig}


@hookimpl
def jacscale_routes(app: AppContext) -> list[Any]:
    """GET /hello, when enabled."""
    config: HelloConfig = app.config_section("plugins.scale.hello")
    if not config.enabled:
        return []

    async def hello(request: Request) -> Response:
        return json_response({"greeting": config.greeting})

    return [Route("/hello", hello, methods=["GET"], name="hello")]


@hookimpl
def jacscale_readiness(app: AppContext) -> list[tuple[str, bool, str]]:
    """Always ready; shows how a plugin reports a check."""
    config: HelloConfig = app.config_section("plugins.scale.hello")
    return [("hello", True, "enabled" if config.enabled else "disabled")] if config.enabled else []
