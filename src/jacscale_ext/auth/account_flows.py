"""Account flows beyond register/login (a built-in plugin next to `jacscale_ext.auth`).

- `POST /user/forgot-password`: always the same 200, whether or not the account
  exists; the lookup, token and email happen after the answer is sent.
- `POST /user/reset-password`: a one-time reset token and a new password; every
  earlier session ends.
- `POST /user/send-verification` (bearer) and `POST /user/verify-identity`.
- `POST /user/add-identity` (bearer): give an account its email or username.
- `PATCH /user/me` (bearer): merge profile fields.

Tokens are single-use, expiring and stored hashed (`action_tokens.py`); email goes
through the `jacscale_send_email` hook (`jacscale_ext.mailer`). Emails are
throttled per address and per client IP (429 with Retry-After, counted whether or
not the account exists); wrong tokens count against the IP like failed logins.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jacscale_core.context import AppContext
from jacscale_core.errors import ApiError
from jacscale_core.middleware import request_id_of
from jacscale_core.plugins import hookimpl
from jacscale_ext.auth.accounts import rate_limited
from jacscale_ext.auth.action_tokens import ActionTokens
from jacscale_ext.auth.answers import with_envelope
from jacscale_ext.auth.openapi import BEARER, TAG
from jacscale_ext.auth.routes import NO_STORE, current_principal, flat, read_json
from jacscale_ext.auth.schemas import (
    PROFILE_MAX_KEYS,
    _collect_identities,
    _Problems,
    _profile,
    check_password,
    require_object,
)
from jacscale_ext.auth.state import AuthState, get_state
from jacscale_ext.auth.throttle import FailureThrottle, Limit, Throttled
from jacscale_ext.auth.users import IdentityTaken, UserRecord, identity_key
from jacscale_ext.mailer import EmailMessage, mask_address, send_email

log = logging.getLogger("jacscale.auth")

STATE_KEY = "auth.flows"
RESET = "reset"
VERIFY = "verify"
FORGOT_ANSWER = {"status": "ok", "message": "If that account exists, a reset link has been sent."}
BAD_RESET = "Reset token is invalid or expired"
BAD_VERIFY = "Verification token is invalid or expired"


@dataclass
class Flows:
    """The account-flow services of one worker: token store and email throttle."""

    auth: AuthState
    tokens: ActionTokens
    throttle: FailureThrottle


def get_flows(app: AppContext) -> Flows:
    """The flows of this app (made on first use, once auth has started)."""
    auth = get_state(app)
    flows = app.state.get(STATE_KEY)
    if not isinstance(flows, Flows) or flows.auth is not auth:
        cfg = auth.auth
        throttle = FailureThrottle(
            {
                "mail": Limit(cfg.email_max_per_identity, cfg.email_window_seconds),
                "ip": Limit(cfg.login_max_failures_per_ip, cfg.login_window_seconds),
            }
        )
        flows = Flows(auth, ActionTokens(app.store.docs), throttle)
        app.state[STATE_KEY] = flows
    return flows


async def _blocking(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))


def answer(
    request: Request,
    payload: dict[str, Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """Flat JSON plus jac-scale's envelope keys (`data` holds the same fields), like /user/*."""
    body = with_envelope(payload, dict(payload), request_id_of(request.scope), status)
    return flat(body, status, headers=headers)


def _link(template: str, token: str) -> str:
    return template.replace("{token}", token) if template else token


def _link_text(action: str, link: str, ttl: int, how: str) -> str:
    return (
        f"Hello,\n\nUse this to {action}:\n\n{link}\n\n{how}"
        f"It expires in {max(1, ttl // 60)} minutes and works once.\n\n"
        "If you did not ask for this, ignore this message.\n"
    )


def _count_email(flows: Flows, key: str, client_ip: str) -> None:
    """Count one email request per address and per IP; 429 past either limit."""
    keys = [f"mail:{key}", f"ip:{client_ip}"]
    try:
        flows.throttle.check(keys)
    except Throttled as exc:
        raise rate_limited(exc.retry_after) from exc
    flows.throttle.record_failure(keys)


async def _bad_token(flows: Flows, client_ip: str, message: str) -> ApiError:
    """Count a wrong token against the client IP like a failed login; the 400 to raise."""
    # The login counters live in the shared store: blocking, so off the event loop.
    await _blocking(flows.auth.accounts.throttle.record_failure, [f"ip:{client_ip}"])
    return ApiError(
        "BAD_REQUEST",
        message,
        details=[{"loc": ["body", "token"], "msg": "invalid or expired", "type": "value_error"}],
    )


async def _check_ip(flows: Flows, client_ip: str) -> None:
    try:
        await _blocking(flows.auth.accounts.throttle.check, [f"ip:{client_ip}"])
    except Throttled as exc:
        raise rate_limited(exc.retry_after) from exc


def _token_field(data: dict[str, Any], p: _Problems) -> str:
    token = data.get("token")
    if token is None:
        p.add(["token"], "Field required", "missing")
    elif not isinstance(token, str) or not token.strip():
        p.add(["token"], "Expected a non-empty string", "type_error")
    return token.strip() if isinstance(token, str) else ""


def _one_identity(body: Any) -> tuple[str, str]:
    """("email"|"username", value) from `{"email"}`, `{"username"}` or jac-scale's `{"identity"}`."""
    data = require_object(body)
    p = _Problems()
    email, username = _collect_identities(p, data)
    if email is None and username is None and not p.items:
        p.add(["email"], "Field required: give an email or a username", "missing")
    p.raise_if_any()
    return ("email", str(email)) if email else ("username", str(username))


# --------------------------------------------------------------------------
# Password reset
# --------------------------------------------------------------------------


async def send_reset(app: AppContext, user: UserRecord, *, background: bool) -> bool:
    """Issue a reset token for `user` and email it; True when a mailer took it."""
    flows = get_flows(app)
    cfg = flows.auth.auth
    if not user.email:
        return False
    ttl = cfg.reset_token_ttl_seconds
    token = await _blocking(flows.tokens.issue, user.user_id, RESET, user.email, ttl)
    text = _link_text(
        "reset your password",
        _link(cfg.reset_url_template, token),
        ttl,
        "" if cfg.reset_url_template else
        "Send it as {\"token\": ..., \"new_password\": ...} to POST /user/reset-password.\n\n",
    )  # fmt: skip
    message = EmailMessage(user.email, "Reset your password", text, "password_reset")
    try:
        return await send_email(app, message)
    except Exception:
        if not background:
            raise
        log.exception("password reset email for user %s failed", user.user_id)
        return False


async def _forgot_in_background(app: AppContext, key: str) -> None:
    """After the answer went out: find the account and mail it a reset token (errors logged)."""
    try:
        state = get_state(app)
        user = await _blocking(state.accounts.store.find, key)
        if user is None or user.disabled or not user.email:
            log.info("password reset asked for an account without a mailbox: nothing sent")
            return
        await send_reset(app, user, background=True)
    except Exception:
        log.exception("password reset request could not be completed")


async def forgot_password(request: Request, app: AppContext) -> Response:
    """POST /user/forgot-password."""
    flows = get_flows(app)
    kind, value = _one_identity(await read_json(request))
    key = identity_key(kind, value)
    _count_email(flows, key, flows.auth.client_ip(request))
    response = answer(request, FORGOT_ANSWER)
    response.background = BackgroundTask(_forgot_in_background, app, key)
    return response


async def reset_password(request: Request, app: AppContext) -> Response:
    """POST /user/reset-password."""
    flows = get_flows(app)
    state = flows.auth
    ip = state.client_ip(request)
    data = require_object(await read_json(request))
    p = _Problems()
    token = _token_field(data, p)
    new_password = check_password(p, data.get("new_password"), ["new_password"], state.rules)
    p.raise_if_any()
    await _check_ip(flows, ip)
    found = await _blocking(flows.tokens.consume, token, RESET)
    user = None if found is None else await state.accounts.get_user(found.user_id, fresh=True)
    if found is None or user is None or user.disabled:
        raise await _bad_token(flows, ip, BAD_RESET)
    new_hash = await state.accounts.hasher.hash(new_password)
    fields: dict[str, Any] = {"password_hash": new_hash, "password_changed_at": time.time()}
    if user.email and found.identity == user.email:
        fields["email_verified"] = True  # the link reached this mailbox
    await _blocking(state.accounts.store.update, user.user_id, fields, new_session=True)
    state.accounts._forget(user.user_id)
    log.info("password reset by emailed token for user %s", user.user_id)
    return answer(
        request, {"status": "password_reset", "message": "Password updated; log in again"}
    )


# --------------------------------------------------------------------------
# Email verification and identities
# --------------------------------------------------------------------------


async def send_verification(request: Request, app: AppContext) -> Response:
    """POST /user/send-verification (bearer; body optional: the account's own email)."""
    flows = get_flows(app)
    state = flows.auth
    user = await state.accounts.require_user(await current_principal(request, app))
    raw = await request.body()
    if raw.strip():
        kind, value = _one_identity(await read_json(request))
        if kind != "email":
            raise ApiError(
                "VALIDATION_ERROR",
                "Invalid value for identity.type: only email identities can be verified",
                details=[{"loc": ["body", "identity", "type"], "msg": "only email",
                          "type": "value_error"}],
            )  # fmt: skip
        if value.lower() != (user.email or ""):
            raise ApiError("NOT_FOUND", "This email is not an identity of your account")
    if not user.email:
        raise ApiError("NOT_FOUND", "Your account has no email; add one with /user/add-identity")
    if user.email_verified:
        return answer(request, {"status": "already_verified", "email": user.email})
    _count_email(flows, identity_key("email", user.email), state.client_ip(request))
    ttl = state.auth.verify_token_ttl_seconds
    token = await _blocking(flows.tokens.issue, user.user_id, VERIFY, user.email, ttl)
    text = _link_text(
        "verify your email address",
        _link(state.auth.verify_url_template, token),
        ttl,
        "" if state.auth.verify_url_template else
        "Send it as {\"token\": ...} to POST /user/verify-identity.\n\n",
    )  # fmt: skip
    try:
        sent = await send_email(
            app, EmailMessage(user.email, "Verify your email", text, "verify_email")
        )
    except Exception as exc:
        raise ApiError(
            "UNAVAILABLE", "The verification email could not be sent; try later"
        ) from exc
    return answer(request, {"status": "pending_verification", "email_sent": sent}, 202)


async def verify_identity(request: Request, app: AppContext) -> Response:
    """POST /user/verify-identity (the token is the credential)."""
    flows = get_flows(app)
    state = flows.auth
    ip = state.client_ip(request)
    data = require_object(await read_json(request))
    p = _Problems()
    token = _token_field(data, p)
    p.raise_if_any()
    await _check_ip(flows, ip)
    found = await _blocking(flows.tokens.consume, token, VERIFY)
    user = None if found is None else await state.accounts.get_user(found.user_id, fresh=True)
    if found is None or user is None or user.email != found.identity:
        raise await _bad_token(flows, ip, BAD_VERIFY)
    await _blocking(state.accounts.store.update, user.user_id, {"email_verified": True})
    state.accounts._forget(user.user_id)
    log.info("email verified for user %s (%s)", user.user_id, mask_address(found.identity))
    return answer(request, {"status": "verified", "identity": found.identity})


async def add_identity(request: Request, app: AppContext) -> Response:
    """POST /user/add-identity (bearer): an email or username for an account without one."""
    state = get_state(app)
    user = await state.accounts.require_user(await current_principal(request, app))
    kind, value = _one_identity(await read_json(request))
    value = value.lower() if kind == "email" else value
    if kind == "username" and value.startswith("__"):
        raise ApiError(
            "VALIDATION_ERROR",
            "Invalid value for username: names starting with '__' are reserved",
            details=[{"loc": ["body", "username"], "msg": "reserved", "type": "value_error"}],
        )
    if getattr(user, kind):
        raise ApiError("CONFLICT", f"This account already has a {kind}")
    fields: dict[str, Any] = {kind: value}
    if kind == "email":
        fields["email_verified"] = False
    try:
        await _blocking(state.accounts.store.link, user.user_id, identity_key(kind, value), fields)
    except IdentityTaken as exc:
        raise ApiError(
            "IDENTITY_TAKEN",
            f"This {kind} is already registered",
            details=[{"loc": ["body", kind], "msg": "already registered", "type": "conflict"}],
        ) from exc
    state.accounts._forget(user.user_id)
    body: dict[str, Any] = {"status": "added", kind: value}
    if kind == "email":
        body["verified"] = False
    return answer(request, body)


async def update_me(request: Request, app: AppContext) -> Response:
    """PATCH /user/me (bearer): merge `profile`; a null value removes that key."""
    state = get_state(app)
    user = await state.accounts.require_user(await current_principal(request, app))
    data = require_object(await read_json(request))
    p = _Problems()
    raw = data.get("profile")
    unknown = sorted(set(data) - {"profile"})
    if unknown:
        p.add([unknown[0]], "Unknown field: only profile can be changed here", "extra_forbidden")
    if not isinstance(raw, dict):
        p.add(["profile"], "Expected an object of profile fields", "type_error")
        p.raise_if_any()
    assert isinstance(raw, dict)
    removed = {k for k, v in raw.items() if v is None}
    changes = _profile(p, {"profile": {k: v for k, v in raw.items() if v is not None}})
    merged = {k: v for k, v in {**user.profile, **changes}.items() if k not in removed}
    if len(merged) > PROFILE_MAX_KEYS:
        p.add(["profile"], f"A profile holds at most {PROFILE_MAX_KEYS} keys")
    p.raise_if_any()
    await _blocking(state.accounts.store.update, user.user_id, {"profile": merged})
    state.accounts._forget(user.user_id)
    return answer(request, {"message": "Profile updated", "profile": merged}, headers=NO_STORE)


# --------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------


@hookimpl
def jacscale_routes(app: AppContext) -> list[Any]:
    """The account-flow routes."""

    def bind(fn: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            return await fn(request, app)

        endpoint.__name__ = fn.__name__
        return endpoint

    return [
        Route("/user/forgot-password", bind(forgot_password), methods=["POST"]),
        Route("/user/reset-password", bind(reset_password), methods=["POST"]),
        Route("/user/send-verification", bind(send_verification), methods=["POST"]),
        Route("/user/verify-identity", bind(verify_identity), methods=["POST"]),
        Route("/user/add-identity", bind(add_identity), methods=["POST"]),
        Route("/user/me", bind(update_me), methods=["PATCH"]),
    ]


_S = {"type": "string"}
_IDENTITY_BODY = {
    "type": "object",
    "properties": {
        "email": {"type": "string", "format": "email"},
        "username": _S,
        "identity": {
            "type": "object",
            "required": ["type", "value"],
            "properties": {"type": {"type": "string", "enum": ["email", "username"]}, "value": _S},
        },
    },
    "example": {"email": "user@example.com"},
}
_ERR = {"$ref": "#/components/schemas/ErrorEnvelope"}


def _operation(
    summary: str, op_id: str, body: dict[str, Any] | None, ok: str, errors: dict[str, str],
    *, bearer: bool = False,
) -> dict[str, Any]:  # fmt: skip
    responses: dict[str, Any] = {
        ok: {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
    }
    for code, text in errors.items():
        responses[code] = {"description": text, "content": {"application/json": {"schema": _ERR}}}
    op: dict[str, Any] = {"tags": [TAG], "summary": summary, "operationId": op_id,
                          "responses": responses}  # fmt: skip
    if body is not None:
        op["requestBody"] = {"required": op_id != "user_send_verification",
                             "content": {"application/json": {"schema": body}}}  # fmt: skip
    if bearer:
        op["security"] = BEARER
    return op


@hookimpl
def jacscale_openapi_paths(app: AppContext) -> dict[str, Any]:
    """OpenAPI path items for the account-flow routes."""
    del app
    bad = {"422": "Invalid field (named in details)", "429": "Too many requests (Retry-After)"}
    auth = {"401": "Missing, invalid or expired token"}
    token_body = {"type": "object", "required": ["token"], "properties": {"token": _S}}
    reset_body = {"type": "object", "required": ["token", "new_password"],
                  "properties": {"token": _S, "new_password": {"type": "string", "minLength": 6}}}  # fmt: skip
    profile_body = {"type": "object", "required": ["profile"],
                    "properties": {"profile": {"type": "object", "additionalProperties": True}},
                    "example": {"profile": {"firstname": "Ada", "nickname": None}}}  # fmt: skip
    return {
        "/user/forgot-password": {"post": _operation(
            "Email a password reset link (same answer whether or not the account exists)",
            "user_forgot_password", _IDENTITY_BODY, "200", bad)},
        "/user/reset-password": {"post": _operation(
            "Set a new password with an emailed reset token (ends every session)",
            "user_reset_password", reset_body, "200",
            {"400": "Token invalid, used or expired", **bad})},
        "/user/send-verification": {"post": _operation(
            "Email a verification link for the account's email", "user_send_verification",
            _IDENTITY_BODY, "202", {**auth, "404": "No such email on the account", **bad},
            bearer=True)},
        "/user/verify-identity": {"post": _operation(
            "Mark the email verified with an emailed token", "user_verify_identity",
            token_body, "200", {"400": "Token invalid, used or expired", **bad})},
        "/user/add-identity": {"post": _operation(
            "Add an email or username to the account", "user_add_identity",
            _IDENTITY_BODY, "200",
            {**auth, "409": "Taken, or the account already has one", "422": bad["422"]},
            bearer=True)},
        "/user/me": {"patch": _operation(
            "Merge profile fields (null removes a key)", "user_update_me", profile_body, "200",
            {**auth, "422": bad["422"]}, bearer=True)},
    }  # fmt: skip
