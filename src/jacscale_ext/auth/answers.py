"""Answers of the user endpoints, in one shape two kinds of client read.

The reference documents flat JSON (`{"access_token", "token_type", ...}`);
jac-scale 0.2.31 and jaclang's client runtime (`jacLogin`, `jacSignup`) read its
envelope (`ok`, `type`, `data.token`, `data.user_id`, ...). Each answer carries
both: the flat keys at the top level, and `ok`, `type`, `data`, `error` and
`meta` beside them, with `data` holding what jac-scale put there.
"""

from __future__ import annotations

from typing import Any

from jacscale_ext.auth.accounts import Session
from jacscale_ext.auth.users import UserRecord

REGISTERED = "User registered successfully"
REFRESHED = "Token refreshed successfully"


def with_envelope(
    flat: dict[str, Any], data: dict[str, Any], request_id: str, status: int = 200
) -> dict[str, Any]:
    """`flat` plus jac-scale's envelope keys around `data`."""
    return {
        **flat,
        "ok": True,
        "type": "response",
        "data": data,
        "error": None,
        "meta": {"extra": {"http_status": status}, "request_id": request_id},
    }


def identities(user: UserRecord) -> list[dict[str, Any]]:
    """The user's identities as jac-scale's `/user/me` lists them (`type`, `value`, ...)."""
    out: list[dict[str, Any]] = []
    if user.email:
        out.append({"type": "email", "value": user.email,
                    "verified": user.email_verified, "is_recovery": True})  # fmt: skip
    if user.username:
        out.append({"type": "username", "value": user.username,
                    "verified": False, "is_recovery": False})  # fmt: skip
    for platform in sorted(user.sso):
        out.append({"type": "sso", "provider": platform, "verified": True, "is_recovery": False})
    return out


def registered(user: UserRecord, request_id: str) -> dict[str, Any]:
    """`POST /user/register` (201): the new user's ids and identities."""
    flat: dict[str, Any] = {"user_id": user.user_id, "root_id": user.root_id}
    if user.email:
        flat["email"] = user.email
    if user.username:
        flat["username"] = user.username
    data = {**flat, "identities": identities(user), "message": REGISTERED}
    return with_envelope(flat, data, request_id, 201)


def signed_in(session: Session, request_id: str, message: str | None = None) -> dict[str, Any]:
    """Login, refresh and password change: the token as `access_token` and `data.token`."""
    flat = session.answer()
    data: dict[str, Any] = {
        "token": session.token.token,
        "token_type": flat["token_type"],
        "expires_in": flat["expires_in"],
        "user_id": session.user.user_id,
        "root_id": session.user.root_id,
        "role": "user",
    }
    if message:
        flat = {"message": message, **flat}
        data["message"] = message
    return with_envelope(flat, data, request_id)


def me(user: UserRecord, request_id: str) -> dict[str, Any]:
    """`GET /user/me`: the documented keys, and jac-scale's `data.identities`, `role`, `status`."""
    flat = user.public()
    data = {
        **flat,
        "role": "user",
        "status": "active",
        "identities": identities(user),
        "profile": dict(user.profile),
    }
    return with_envelope(flat, data, request_id)
