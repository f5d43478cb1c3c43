"""The auth extension's hook implementations (a built-in plugin).

Users and passwords (`/user/*`), JWT bearer authentication, and SSO
(`/sso/{platform}/*`, providers through `jacscale_sso_provider`; Google built in).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import HTTPConnection

from jacscale_core.context import AppContext
from jacscale_core.errors import ApiError
from jacscale_core.plugins import hookimpl
from jacscale_core.principal import Principal
from jacscale_ext.auth.accounts import invalid_token
from jacscale_ext.auth.config import SECTIONS
from jacscale_ext.auth.google import google_provider
from jacscale_ext.auth.openapi import auth_paths
from jacscale_ext.auth.routes import auth_routes
from jacscale_ext.auth.state import STATE_KEY, AuthState, build_state

log = logging.getLogger("jacscale.auth")


@hookimpl
def jacscale_config_sections() -> dict[str, type]:
    """[plugins.scale.jwt], [plugins.scale.auth] and [plugins.scale.sso]."""
    return dict(SECTIONS)


@hookimpl
async def jacscale_startup(app: AppContext) -> None:
    """Resolve the signing secret and build the services; refuse unsafe production setups."""
    if STATE_KEY in app.state:
        return
    app.state[STATE_KEY] = await build_state(app)


@hookimpl
async def jacscale_shutdown(app: AppContext) -> None:
    """Close the HTTP client used for SSO."""
    state = app.state.pop(STATE_KEY, None)
    if isinstance(state, AuthState):
        await state.http.aclose()


@hookimpl
def jacscale_routes(app: AppContext) -> list[Any]:
    """The /user/* and /sso/* routes."""
    return auth_routes(app)


@hookimpl
def jacscale_openapi_paths(app: AppContext) -> dict[str, Any]:
    """OpenAPI path items for the auth routes."""
    del app
    return auth_paths()


def bearer_token(conn: HTTPConnection) -> str | None:
    """The bearer token of a request (`Authorization: Bearer`), or of a WebSocket (`?token=`).

    None when no credential is offered; "" when one is offered but empty.
    """
    header = conn.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None  # another scheme: for another plugin
        return value.strip()
    if conn.scope.get("type") == "websocket":
        token = conn.query_params.get("token")
        if token is not None:
            return token.strip()
    return None


@hookimpl
async def jacscale_authenticate(request: HTTPConnection, app: AppContext) -> Principal | None:
    """Bearer JWT -> the user's Principal; None without a token; 401 for a bad one."""
    token = bearer_token(request)
    if token is None:
        return None
    state = app.state.get(STATE_KEY)
    if not isinstance(state, AuthState):
        raise ApiError("UNAVAILABLE", "Authentication is not ready")
    if not token:
        raise invalid_token()
    return await state.accounts.principal(token)


@hookimpl
def jacscale_sso_provider(platform: str, app: AppContext) -> Any:
    """Google, when SSO_GOOGLE_CLIENT_ID and SSO_GOOGLE_CLIENT_SECRET are set."""
    if platform != "google":
        return None
    state = app.state.get(STATE_KEY)
    if not isinstance(state, AuthState):
        return None
    if "google" not in state.providers:
        provider = google_provider(state.sso, state.http)
        if provider is None:
            return None
        state.providers["google"] = provider
    return state.providers["google"]
