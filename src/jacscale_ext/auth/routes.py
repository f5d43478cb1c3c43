"""HTTP routes of auth: /user/* (flat JSON answers) and /sso/{platform}/*.

The /user answers are flat JSON plus jac-scale's envelope keys (see `answers`).
Errors are raised as `ApiError`, which the app renders as the error envelope.
Answers that carry a token are marked `Cache-Control: no-store`.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from jacscale_core import codec
from jacscale_core.context import AppContext
from jacscale_core.errors import ApiError
from jacscale_core.http_endpoints import authenticate, require_json
from jacscale_core.json_input import MAX_JSON_DEPTH, decode_json
from jacscale_core.middleware import request_id_of
from jacscale_core.plugins import await_me_maybe
from jacscale_core.principal import Principal
from jacscale_ext.auth import answers
from jacscale_ext.auth.schemas import (
    parse_delete,
    parse_login,
    parse_password_change,
    parse_register,
    require_object,
)
from jacscale_ext.auth.sso import (
    SsoError,
    SsoProvider,
    allowed_redirect,
    callback_url,
    finish_flow,
    start_flow,
    token_redirect,
)
from jacscale_ext.auth.state import AuthState, get_state

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
PLATFORM_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def flat(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A flat JSON answer (auth endpoints do not use the walker envelope)."""
    return Response(codec.encode(payload), status, headers=headers, media_type="application/json")


async def read_json(request: Request, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON body; 415 for another content type, 422 for malformed or too deeply nested JSON."""
    require_json(request)
    body = await request.body()
    if not body.strip():
        raise ApiError(
            "VALIDATION_ERROR",
            "Request body is required",
            details=[{"loc": ["body"], "msg": "Field required", "type": "missing"}],
        )
    return decode_json(body, max_depth)


async def current_principal(request: Request, app: AppContext) -> Principal | None:
    """The authenticated caller, via the `jacscale_authenticate` hook."""
    principal = await authenticate(request, app)
    return principal if isinstance(principal, Principal) else None


async def body_token(request: Request) -> str | None:
    """jac-scale's `{"token": "<jwt>" | "Bearer <jwt>"}` refresh body: the token, if sent.

    None when there is no body, or a body without `token` while an
    `Authorization` header is sent (then the header speaks); 422 for a body
    that is not an object or a `token` that is not a non-empty string.
    """
    if not (await request.body()).strip():
        return None
    data = require_object(await read_json(request))
    value = data.get("token")
    if value is None and "authorization" in request.headers:
        return None
    if not isinstance(value, str) or not value.strip():
        msg = "Field required" if value is None else "Expected a non-empty string"
        raise ApiError(
            "VALIDATION_ERROR",
            f"Invalid value for token: {msg}",
            details=[{"loc": ["body", "token"], "msg": msg,
                      "type": "missing" if value is None else "type_error"}],
        )  # fmt: skip
    scheme, _, rest = value.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" and rest.strip() else value.strip()


def user_routes(app: AppContext) -> list[Route]:
    """POST /user/register, /user/login, /user/refresh(-token); GET/DELETE /user/me; PUT /user/password."""
    depth = app.settings.api.max_json_depth

    async def register(request: Request) -> Response:
        state = get_state(app)
        form = parse_register(await read_json(request, depth), state.rules)
        user = await state.accounts.register(form, state.client_ip(request))
        return flat(answers.registered(user, request_id_of(request.scope)), 201)

    async def login(request: Request) -> Response:
        state = get_state(app)
        form = parse_login(await read_json(request, depth))
        session = await state.accounts.login(form, state.client_ip(request))
        return flat(answers.signed_in(session, request_id_of(request.scope)), headers=NO_STORE)

    async def me(request: Request) -> Response:
        state = get_state(app)
        user = await state.accounts.require_user(await current_principal(request, app))
        return flat(answers.me(user, request_id_of(request.scope)), headers=NO_STORE)

    async def delete_me(request: Request) -> Response:
        state = get_state(app)
        user = await state.accounts.require_user(await current_principal(request, app))
        password = parse_delete(await read_json(request, depth))
        await state.accounts.delete(user, password, state.client_ip(request))
        for result in app.pm.hook.jacscale_user_deleted(app=app, user_id=user.user_id):
            await await_me_maybe(result)
        return flat({"deleted": True, "user_id": user.user_id})

    async def change_password(request: Request) -> Response:
        state = get_state(app)
        user = await state.accounts.require_user(await current_principal(request, app))
        form = parse_password_change(await read_json(request, depth), state.rules)
        session = await state.accounts.change_password(user, form, state.client_ip(request))
        rid = request_id_of(request.scope)
        return flat(answers.signed_in(session, rid, "Password updated"), headers=NO_STORE)

    async def refresh(request: Request) -> Response:
        state = get_state(app)
        token = await body_token(request)
        if token is not None:
            principal: Principal | None = await state.accounts.principal(token)
        else:
            principal = await current_principal(request, app)
        session = await state.accounts.refresh(principal)
        rid = request_id_of(request.scope)
        return flat(answers.signed_in(session, rid, answers.REFRESHED), headers=NO_STORE)

    return [
        Route("/user/register", register, methods=["POST"]),
        Route("/user/login", login, methods=["POST"]),
        Route("/user/me", me, methods=["GET"]),
        Route("/user/me", delete_me, methods=["DELETE"]),
        Route("/user/password", change_password, methods=["PUT"]),
        Route("/user/refresh", refresh, methods=["POST"]),
        Route("/user/refresh-token", refresh, methods=["POST"]),
    ]


# --------------------------------------------------------------------------
# SSO
# --------------------------------------------------------------------------


async def find_provider(app: AppContext, platform: str) -> SsoProvider:
    """The provider a plugin offers for `platform`; 404 when none is configured."""
    if not PLATFORM_RE.match(platform):
        raise ApiError("NOT_FOUND", "Unknown SSO platform")
    found = await await_me_maybe(app.pm.hook.jacscale_sso_provider(platform=platform, app=app))
    if found is None:
        raise ApiError(
            "NOT_FOUND",
            f"SSO platform '{platform}' is not configured "
            f"(set SSO_{platform.upper()}_CLIENT_ID and SSO_{platform.upper()}_CLIENT_SECRET)",
        )
    return found  # type: ignore[no-any-return]


def _sso_error(exc: SsoError) -> ApiError:
    codes = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 404: "NOT_FOUND", 502: "BAD_GATEWAY"}
    return ApiError(codes.get(exc.status, "UNAUTHORIZED"), exc.public, status=exc.status)


def _requested_redirect(state: AuthState, request: Request) -> str | None:
    """The `redirect_uri` (or jac-scale's `client_callback`) query parameter, if allowed."""
    for name in ("redirect_uri", "client_callback"):
        value = request.query_params.get(name)
        if value is None:
            continue
        if not allowed_redirect(
            value, state.sso.allowed_redirects, bool(state.sso.allow_loopback_redirects)
        ):
            raise ApiError(
                "VALIDATION_ERROR",
                f"Invalid value for {name}: not an allowed redirect",
                details=[{"loc": ["query", name], "msg": "not in [plugins.scale.sso] allowed_redirects",
                          "type": "value_error"}],
            )  # fmt: skip
        return value
    return None


def _clear_cookie(response: Response, name: str | None) -> None:
    if name:
        response.delete_cookie(name, path="/sso/")


def sso_routes(app: AppContext) -> list[Route]:
    """GET /sso/{platform}/login, /register and /login/callback (and jac-scale's /callback)."""

    def starter(operation: str) -> Any:
        async def start(request: Request) -> Response:
            state = get_state(app)
            platform = request.path_params["platform"]
            provider = await find_provider(app, platform)
            redirect = _requested_redirect(state, request)
            callback = callback_url(state.sso.host, platform)
            try:
                flow = await start_flow(
                    provider,
                    state.tokens,
                    platform=platform,
                    operation=operation,
                    callback=callback,
                    redirect=redirect,
                    lifetime=state.sso.flow_timeout_seconds,
                )
            except SsoError as exc:
                raise _sso_error(exc) from exc
            response = RedirectResponse(flow.authorization_url, status_code=302)
            response.set_cookie(
                flow.cookie_name,
                flow.cookie_value,
                max_age=flow.max_age,
                path="/sso/",
                httponly=True,
                samesite="lax",
                secure=callback.startswith("https://"),
            )
            response.headers["Cache-Control"] = "no-store"
            response.headers["Referrer-Policy"] = "no-referrer"
            return response

        start.__name__ = f"sso_{operation}"
        return start

    async def callback(request: Request) -> Response:
        state = get_state(app)
        platform = request.path_params["platform"]
        provider = await find_provider(app, platform)
        params = {k: v for k, v in request.query_params.items()}
        flow = None
        try:
            flow, identity = await finish_flow(
                provider,
                state.tokens,
                platform=platform,
                params=params,
                cookies=dict(request.cookies),
                callback=callback_url(state.sso.host, platform),
            )
            user, created = await state.accounts.sso_sign_in(
                platform,
                identity.subject,
                identity.email,
                identity.email_verified,
                allow_create=state.sso.auto_register or flow.operation == "register",
                link_by_email=state.sso.link_by_email,
            )
        except (SsoError, ApiError) as exc:
            err = _sso_error(exc) if isinstance(exc, SsoError) else exc
            flow = exc.flow if isinstance(exc, SsoError) else flow
            target = _target(state, flow.redirect if flow else None) if flow else None
            if target is None:
                raise err from exc
            url = token_redirect(
                target, {"error": err.code, "message": err.message}, state.sso.token_in
            )
            response: Response = RedirectResponse(url, status_code=302)
            _clear_cookie(response, flow.cookie_name if flow else None)
            return response
        session = state.accounts.issue(user)
        answer = {**session.answer(), "platform": platform, "created": created}
        target = _target(state, flow.redirect)
        if target is None:
            body = answers.signed_in(session, request_id_of(request.scope))
            response = flat({**body, "platform": platform, "created": created}, headers=NO_STORE)
        else:
            values = {**answer, "token": session.token.token}
            response = RedirectResponse(token_redirect(target, values, state.sso.token_in), 302)
            response.headers.update({**NO_STORE, "Referrer-Policy": "no-referrer"})
        _clear_cookie(response, flow.cookie_name)
        return response

    return [
        Route("/sso/{platform}/login", starter("login"), methods=["GET"]),
        Route("/sso/{platform}/register", starter("register"), methods=["GET"]),
        Route("/sso/{platform}/login/callback", callback, methods=["GET"]),
        Route("/sso/{platform}/callback", callback, methods=["GET"]),
    ]


def _target(state: AuthState, requested: str | None) -> str | None:
    """Where to hand the token: the flow's own redirect, else the configured front end."""
    return requested or state.sso.frontend_redirect or state.sso.client_auth_callback_url or None


def auth_routes(app: AppContext) -> list[Route]:
    """Every auth route."""
    return [*user_routes(app), *sso_routes(app)]
