"""Request bodies of the auth endpoints: parsing, validation, and their OpenAPI schemas.

Accepted identity forms (the reference document):
- documented: `{"email": ..., "password": ...}` or `{"username": ..., "password": ...}`
  (register may carry both email and username);
- jac-scale 0.2.31: `{"identities": [{"type": "email"|"username", "value": ...}],
  "credential": {"type": "password", "password": ...}}` for register, and
  `{"identity": {...}, "credential": {...}}` for login.

Every problem is reported at once as a 422 whose details name each bad field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from jacscale_core.errors import ApiError
from jacscale_ext.auth.emails import InvalidEmail, normalize_email
from jacscale_ext.auth.users import identity_key

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")
PROFILE_MAX_KEYS = 20
PROFILE_MAX_VALUE = 1024


@dataclass(slots=True)
class PasswordRules:
    """Length limits for new passwords."""

    min_length: int = 6
    max_length: int = 1024


@dataclass(slots=True)
class RegisterForm:
    """A validated registration: at least one of email/username, and a password."""

    email: str | None
    username: str | None
    password: str
    profile: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class LoginForm:
    """A validated login: the identity document id to look up and the password.

    `fallback` is the same value as the other kind of identity, looked up when
    `identity` finds nobody: jac-scale finds a user by any identity value, and
    jaclang's `jacLogin("ada@example.com", pw)` sends an email as a username.
    """

    identity: str
    password: str
    fallback: str | None = None


@dataclass(slots=True)
class PasswordChangeForm:
    """A validated `PUT /user/password` body."""

    current_password: str
    new_password: str


class _Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, loc: list[str | int], msg: str, kind: str = "value_error") -> None:
        self.items.append({"loc": ["body", *loc], "msg": msg, "type": kind})

    def raise_if_any(self) -> None:
        if not self.items:
            return
        first = self.items[0]
        where = ".".join(str(p) for p in first["loc"][1:])
        more = f" (and {len(self.items) - 1} more)" if len(self.items) > 1 else ""
        raise ApiError(
            "VALIDATION_ERROR",
            f"Invalid value for {where}: {first['msg']}{more}",
            details=self.items,
        )


def require_object(body: Any) -> dict[str, Any]:
    """The body must be a JSON object."""
    if not isinstance(body, dict):
        raise ApiError(
            "VALIDATION_ERROR",
            "Request body must be a JSON object",
            details=[{"loc": ["body"], "msg": "Expected a JSON object", "type": "type_error"}],
        )
    return body


def _string(p: _Problems, body: dict[str, Any], name: str, loc: list[str | int]) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        p.add(loc, f"Expected `str`, got `{type(value).__name__}`", "type_error")
        return None
    return value


def check_email(p: _Problems, value: str, loc: list[str | int]) -> str | None:
    """The normalised email (see `emails.normalize_email`), or None after recording why not."""
    try:
        return normalize_email(value)
    except InvalidEmail as exc:
        p.add(loc, str(exc))
        return None


def check_username(p: _Problems, value: str, loc: list[str | int]) -> str | None:
    """A trimmed username, or None after recording why it is invalid."""
    value = value.strip()
    if not USERNAME_RE.match(value):
        p.add(
            loc,
            "Username must be 1-64 characters: letters, digits and _ . @ + -, "
            "starting with a letter or digit",
        )
        return None
    return value


def check_password(p: _Problems, value: Any, loc: list[str | int], rules: PasswordRules) -> str:
    """The password if it satisfies `rules`; otherwise records the problem."""
    if value is None:
        p.add(loc, "Field required", "missing")
        return ""
    if not isinstance(value, str):
        p.add(loc, f"Expected `str`, got `{type(value).__name__}`", "type_error")
        return ""
    if len(value) < rules.min_length:
        p.add(loc, f"Password must have at least {rules.min_length} characters")
    elif len(value) > rules.max_length:
        p.add(loc, f"Password must have at most {rules.max_length} characters")
    return value


def _credential_password(p: _Problems, body: dict[str, Any]) -> Any:
    """The password from `password` or jac-scale's `credential` object."""
    if "password" in body:
        return body["password"]
    cred = body.get("credential")
    if cred is None:
        return None
    if not isinstance(cred, dict):
        p.add(["credential"], "Expected an object", "type_error")
        return ""
    if cred.get("type", "password") != "password":
        p.add(["credential", "type"], "Only credential type 'password' is supported")
    if "password" not in cred:
        p.add(["credential", "password"], "Field required", "missing")
        return ""
    return cred["password"]


def _identity_list(p: _Problems, body: dict[str, Any]) -> list[tuple[str, Any, list[str | int]]]:
    """(type, value, loc) triples from `identities` or `identity`."""
    out: list[tuple[str, Any, list[str | int]]] = []
    if "identities" in body:
        items = body["identities"]
        if not isinstance(items, list) or not items:
            p.add(["identities"], "Expected a non-empty list of {type, value} objects")
            return out
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                p.add(["identities", i], "Expected an object", "type_error")
                continue
            out.append((str(item.get("type", "")), item.get("value"), ["identities", i, "value"]))
    if "identity" in body:
        item = body["identity"]
        if not isinstance(item, dict):
            p.add(["identity"], "Expected an object", "type_error")
        else:
            out.append((str(item.get("type", "")), item.get("value"), ["identity", "value"]))
    return out


def _collect_identities(p: _Problems, body: dict[str, Any]) -> tuple[str | None, str | None]:
    email: str | None = None
    username: str | None = None
    raw_email = _string(p, body, "email", ["email"])
    raw_username = _string(p, body, "username", ["username"])
    if raw_email is not None:
        email = check_email(p, raw_email, ["email"])
    if raw_username is not None:
        username = check_username(p, raw_username, ["username"])
    for kind, value, loc in _identity_list(p, body):
        if not isinstance(value, str):
            p.add(loc, "Expected `str`", "type_error")
            continue
        if kind == "email" and email is None:
            email = check_email(p, value, loc)
        elif kind == "username" and username is None:
            username = check_username(p, value, loc)
        elif kind not in ("email", "username"):
            p.add(loc[:-1] + ["type"], "Identity type must be 'email' or 'username'")
    return email, username


def _profile(p: _Problems, body: dict[str, Any]) -> dict[str, Any]:
    raw = body.get("profile")
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > PROFILE_MAX_KEYS:
        p.add(["profile"], f"Expected an object with at most {PROFILE_MAX_KEYS} keys")
        return {}
    for key, value in raw.items():
        if not re.match(r"^[A-Za-z][A-Za-z0-9_]{0,63}$", str(key)):
            p.add(["profile", str(key)], "Keys are letters, digits and _, starting with a letter")
        elif not isinstance(value, str | int | float | bool) or (
            isinstance(value, str) and len(value) > PROFILE_MAX_VALUE
        ):
            p.add(
                ["profile", str(key)],
                f"Values are strings (<= {PROFILE_MAX_VALUE}), numbers or booleans",
            )
    return dict(raw)


def parse_register(body: Any, rules: PasswordRules) -> RegisterForm:
    """Validate a `POST /user/register` body."""
    data = require_object(body)
    p = _Problems()
    email, username = _collect_identities(p, data)
    if email is None and username is None and not p.items:
        p.add(["email"], "Field required: give an email or a username", "missing")
    if username and username.startswith("__"):
        p.add(["username"], "Usernames starting with '__' are reserved")
    password = check_password(p, _credential_password(p, data), ["password"], rules)
    profile = _profile(p, data)
    p.raise_if_any()
    return RegisterForm(email=email, username=username, password=password, profile=profile)


def parse_login(body: Any) -> LoginForm:
    """Validate a `POST /user/login` body (no password rules: any string may be tried)."""
    data = require_object(body)
    p = _Problems()
    email, username = _collect_identities(p, data)
    if email is None and username is None and not p.items:
        p.add(["email"], "Field required: give an email or a username", "missing")
    password = _credential_password(p, data)
    if password is None:
        p.add(["password"], "Field required", "missing")
    elif not isinstance(password, str):
        p.add(["password"], f"Expected `str`, got `{type(password).__name__}`", "type_error")
    p.raise_if_any()
    if email:
        key = identity_key("email", email)
        other = identity_key("username", email) if USERNAME_RE.match(email) else None
    else:
        key = identity_key("username", str(username))
        as_email = _as_email(str(username))
        other = identity_key("email", as_email) if as_email else None
    return LoginForm(identity=key, password=str(password), fallback=other)


def _as_email(value: str) -> str | None:
    """The normalised email `value` spells, or None when it is not one."""
    try:
        return normalize_email(value)
    except InvalidEmail:
        return None


def parse_password_change(body: Any, rules: PasswordRules) -> PasswordChangeForm:
    """Validate a `PUT /user/password` body."""
    data = require_object(body)
    p = _Problems()
    current = data.get("current_password")
    if current is None:
        p.add(["current_password"], "Field required", "missing")
    elif not isinstance(current, str):
        p.add(["current_password"], f"Expected `str`, got `{type(current).__name__}`", "type_error")
    new = check_password(p, data.get("new_password"), ["new_password"], rules)
    p.raise_if_any()
    return PasswordChangeForm(current_password=str(current), new_password=new)


def parse_delete(body: Any) -> str:
    """Validate a `DELETE /user/me` body: `{"password": ...}` (SSO-only accounts send "")."""
    data = require_object(body)
    value = data.get("password")
    if not isinstance(value, str):
        raise ApiError(
            "VALIDATION_ERROR",
            "Invalid value for password: Field required",
            details=[{"loc": ["body", "password"], "msg": "Field required", "type": "missing"}],
        )
    return value
