"""The admin console: GET /admin (a page) and its JSON API under /admin/api/.

Every API route needs the bearer token of a user whose *stored* record has
`role = "admin"` and is not disabled; a `role` claim in a token grants nothing.
There is no default admin: `jacscale admin create app.jac --email ...` makes one
(`jacscale_ext.admin_cli`). Role and status changes are written to the
`jacscale.audit` log with the acting admin.

- `GET /admin/api/users?q=&limit=&offset=`: list and search users;
- `PATCH /admin/api/users/{user_id}`: `{"disabled": bool, "role": "user"|"admin"}`;
- `POST /admin/api/users/{user_id}/reset-password`: end every session, make the
  password unusable and issue a reset token (emailed when possible), so the user
  must choose a new password;
- `GET /admin/api/config`: the effective configuration, secrets redacted;
- `GET /admin/api/metrics`: request and walker counts and latencies of this worker;
- `GET /admin/api/errors`: recent 5xx answers with their request ids;
- `GET /admin/api/jobs`: every scheduled job (static and every user's), from the
  scheduler's job store.

`[plugins.scale.admin] enabled = false` removes every route.
"""

from __future__ import annotations

import logging
import re
import time
from functools import partial
from typing import Any

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jacscale_core.context import AppContext
from jacscale_core.errors import ApiError, validation_error
from jacscale_core.plugins import hookimpl
from jacscale_ext.activity import activity_of
from jacscale_ext.auth.account_flows import RESET, get_flows, send_reset
from jacscale_ext.auth.routes import NO_STORE, current_principal, flat, read_json
from jacscale_ext.auth.schemas import require_object
from jacscale_ext.auth.state import get_state
from jacscale_ext.auth.users import UserRecord
from jacscale_ext.pages import asset_response, page_response
from jacscale_ext.scheduler.state import STATE_KEY as SCHEDULER_KEY

SECTION = "plugins.scale.admin"
ROLES = ("user", "admin")
ASSETS = frozenset({"admin.js", "pages.js", "pages.css"})
SECRET_KEY = re.compile(r"secret|password|token|api_?key|private|credential", re.IGNORECASE)
URI_CREDENTIALS = re.compile(r"(//)[^/@\s]+@")
audit = logging.getLogger("jacscale.audit")


class AdminConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.admin]`."""

    enabled: bool = True
    page_size: int = 50


async def require_admin(request: Request, app: AppContext) -> UserRecord:
    """The calling admin's record: 401 without a valid token, 403 unless the record says admin."""
    state = get_state(app)
    user = await state.accounts.require_user(await current_principal(request, app))
    if user.role != "admin" or user.disabled:
        raise ApiError("FORBIDDEN", "This needs an admin account")
    return user


def admin_view(user: UserRecord) -> dict[str, Any]:
    """A user as the console shows it (never the password hash)."""
    return {
        "user_id": user.user_id,
        "root_id": user.root_id,
        "email": user.email,
        "username": user.username,
        "email_verified": user.email_verified,
        "role": user.role,
        "disabled": user.disabled,
        "created_at": user.created_at,
        "sso": sorted(user.sso),
        "has_password": user.password_hash is not None,
    }


def redact(value: Any, key: str = "") -> Any:
    """A config value with secrets replaced by "***" (keys that look secret, URI passwords)."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if SECRET_KEY.search(key) and value not in ("", None, [], False, 0):
        return "***"
    if isinstance(value, str):
        return URI_CREDENTIALS.sub(r"\1***@", value)
    return value


def effective_config(app: AppContext) -> dict[str, Any]:
    """Every decoded jac.toml section (defaults filled in), redacted."""
    settings = app.settings
    sections = {name: msgspec.to_builtins(v) for name, v in sorted(settings.sections.items())}
    sections["plugins.scale.server"] = msgspec.to_builtins(settings.server)
    sections["plugins.scale.api"] = msgspec.to_builtins(settings.api)
    return {
        "app": str(settings.app_path.name),
        "toml": str(settings.toml_path.name) if settings.toml_path else None,
        "production": settings.production,
        "sections": redact(sections),
    }


def _int_param(request: Request, name: str, default: int, top: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise validation_error(["query", name], "Expected an integer") from None
    if not 0 <= value <= top:
        raise validation_error(["query", name], f"Must be between 0 and {top}", "range_error")
    return value


def parse_change(body: Any) -> dict[str, Any]:
    """Validate a PATCH body: `disabled` (bool) and/or `role` ("user"|"admin"), nothing else."""
    data = require_object(body)
    for key in data:
        if key not in ("disabled", "role"):
            raise validation_error(
                ["body", key], "Unknown field: only disabled and role", "extra_forbidden"
            )
    if not data:
        raise validation_error(["body"], "Give disabled and/or role", "missing")
    if "disabled" in data and not isinstance(data["disabled"], bool):
        raise validation_error(["body", "disabled"], "Expected `bool`", "type_error")
    if "role" in data and data["role"] not in ROLES:
        raise validation_error(["body", "role"], "Must be 'user' or 'admin'")
    return dict(data)


async def _blocking(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))


ADMIN_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - admin</title>
<link rel="stylesheet" href="admin/static/pages.css">
</head>
<body>
<header>
  <strong>{title}</strong> <span class="muted">admin console</span>
  <span id="who" class="muted"></span>
  <button id="signout" hidden>Sign out</button>
</header>
<section id="signin" class="card">
  <h2>Admin sign in</h2>
  <form id="signin-form">
    <label>Email or username <input id="identity" autocomplete="username" required></label>
    <label>Password <input id="password" type="password" autocomplete="current-password" required></label>
    <button type="submit" id="signin-button">Sign in</button>
  </form>
  <p id="signin-error" class="error" role="alert"></p>
</section>
<main id="console" hidden>
  <nav class="tabs">
    <button data-tab="users" class="active">Users</button>
    <button data-tab="metrics">Metrics</button>
    <button data-tab="errors">Recent errors</button>
    <button data-tab="jobs">Scheduled jobs</button>
    <button data-tab="config">Configuration</button>
  </nav>
  <section id="tab-users" class="tab">
    <form id="search-form"><input id="search" placeholder="search email or username">
      <button type="submit">Search</button></form>
    <table id="users"><thead><tr><th>Email</th><th>Username</th><th>Role</th><th>Status</th>
      <th>Created</th><th>Actions</th></tr></thead><tbody></tbody></table>
    <p id="users-status" class="muted" role="status"></p>
  </section>
  <section id="tab-metrics" class="tab" hidden>
    <h3>Requests</h3><table id="requests"><thead><tr><th>Method</th><th>Route</th><th>Count</th>
      <th>5xx</th><th>Mean ms</th><th>Max ms</th></tr></thead><tbody></tbody></table>
    <h3>Walkers</h3><table id="walkers"><thead><tr><th>Walker</th><th>Runs</th><th>Failed</th>
      <th>Mean ms</th><th>Max ms</th></tr></thead><tbody></tbody></table>
  </section>
  <section id="tab-errors" class="tab" hidden>
    <table id="errors"><thead><tr><th>Time</th><th>Request id</th><th>Method</th><th>Route</th>
      <th>Status</th></tr></thead><tbody></tbody></table>
  </section>
  <section id="tab-jobs" class="tab" hidden>
    <table id="jobs"><thead><tr><th>Walker or function</th><th>Trigger</th><th>Owner</th>
      <th>Next run</th><th>Last run</th><th>Last status</th><th>Runs</th></tr></thead><tbody></tbody></table>
    <p id="jobs-status" class="muted" role="status"></p>
  </section>
  <section id="tab-config" class="tab" hidden><pre id="config"></pre></section>
</main>
<script src="admin/static/pages.js"></script>
<script src="admin/static/admin.js"></script>
</body>
</html>
"""


def admin_routes(app: AppContext, config: AdminConfig) -> list[Route]:
    """The page, its assets and the JSON API."""
    title = app.settings.app_path.stem

    async def page(request: Request) -> Response:
        return page_response(ADMIN_PAGE, title=title)

    async def static(request: Request) -> Response:
        return await asset_response(app, request, ASSETS)

    async def users(request: Request) -> Response:
        await require_admin(request, app)
        state = get_state(app)
        query = request.query_params.get("q", "").strip().lower()
        if len(query) > 256:
            raise validation_error(["query", "q"], "At most 256 characters")
        limit = _int_param(request, "limit", config.page_size, 500)
        offset = _int_param(request, "offset", 0, 10_000_000)
        everyone = await _blocking(state.accounts.store.all)
        found = [
            u for u in everyone
            if not query or query in (u.email or "") or query in (u.username or "").lower()
            or query == u.user_id
        ]  # fmt: skip
        found.sort(key=lambda u: (u.created_at, u.user_id))
        page_of = [admin_view(u) for u in found[offset : offset + limit]]
        return flat({"total": len(found), "offset": offset, "users": page_of}, headers=NO_STORE)

    async def target_user(request: Request) -> UserRecord:
        state = get_state(app)
        user_id = request.path_params["user_id"]
        if not re.fullmatch(r"[0-9a-f]{32}", user_id):
            raise validation_error(["path", "user_id"], "Not a user id (32 hex digits)")
        user = await state.accounts.get_user(user_id, fresh=True)
        if user is None:
            raise ApiError("NOT_FOUND", f"No user {user_id}")
        return user

    async def change(request: Request) -> Response:
        actor = await require_admin(request, app)
        user = await target_user(request)
        fields = parse_change(await read_json(request))
        if user.user_id == actor.user_id and (
            fields.get("disabled") is True or fields.get("role") == "user"
        ):
            raise ApiError("CONFLICT", "You cannot disable or demote your own account")
        state = get_state(app)
        ends_sessions = fields.get("disabled") is True and not user.disabled
        updated = await _blocking(state.accounts.store.update, user.user_id, fields,
                                  new_session=ends_sessions)  # fmt: skip
        state.accounts._forget(user.user_id)
        if "role" in fields and fields["role"] != user.role:
            audit.warning("role change: user %s %s -> %s by admin %s",
                          user.user_id, user.role, fields["role"], actor.user_id)  # fmt: skip
        if "disabled" in fields and fields["disabled"] != user.disabled:
            audit.warning("account %s: user %s by admin %s",
                          "disabled" if fields["disabled"] else "enabled",
                          user.user_id, actor.user_id)  # fmt: skip
        return flat(admin_view(updated), headers=NO_STORE)

    async def reset_password(request: Request) -> Response:
        actor = await require_admin(request, app)
        user = await target_user(request)
        state = get_state(app)
        await _blocking(state.accounts.store.update, user.user_id,
                        {"password_hash": None, "password_changed_at": time.time()},
                        new_session=True)  # fmt: skip
        state.accounts._forget(user.user_id)
        ttl = state.auth.reset_token_ttl_seconds
        flows = get_flows(app)
        emailed = False
        if user.email:
            emailed = await send_reset(app, user, background=True)
        else:
            await _blocking(flows.tokens.revoke, user.user_id, RESET)
        token = None
        if not emailed:  # the admin hands the token over another way
            token = await _blocking(flows.tokens.issue, user.user_id, RESET, user.email or "", ttl)
        audit.warning("password reset forced: user %s by admin %s (emailed: %s)",
                      user.user_id, actor.user_id, emailed)  # fmt: skip
        return flat({"user_id": user.user_id, "email_sent": emailed, "reset_token": token,
                     "expires_in": ttl}, headers=NO_STORE)  # fmt: skip

    async def config_view(request: Request) -> Response:
        await require_admin(request, app)
        return flat(effective_config(app), headers=NO_STORE)

    async def metrics(request: Request) -> Response:
        await require_admin(request, app)
        return flat(activity_of(app).snapshot(), headers=NO_STORE)

    async def jobs(request: Request) -> Response:
        await require_admin(request, app)
        scheduler = app.state.get(SCHEDULER_KEY)
        store = getattr(scheduler, "store", None)
        if store is None:
            return flat({"available": False, "jobs": []}, headers=NO_STORE)
        found = await _blocking(store.all)
        found.sort(key=lambda j: (not j.static, j.created_at, j.job_id))
        return flat({"available": True, "jobs": [j.public() for j in found]}, headers=NO_STORE)

    async def errors(request: Request) -> Response:
        await require_admin(request, app)
        recent = list(reversed(activity_of(app).errors))
        return flat({"errors": recent}, headers=NO_STORE)

    return [
        Route("/admin", page, methods=["GET"], name="admin_page"),
        Route("/admin/static/{name}", static, methods=["GET"], name="admin_static"),
        Route("/admin/api/users", users, methods=["GET"]),
        Route("/admin/api/users/{user_id}", change, methods=["PATCH"]),
        Route("/admin/api/users/{user_id}/reset-password", reset_password, methods=["POST"]),
        Route("/admin/api/config", config_view, methods=["GET"]),
        Route("/admin/api/metrics", metrics, methods=["GET"]),
        Route("/admin/api/errors", errors, methods=["GET"]),
        Route("/admin/api/jobs", jobs, methods=["GET"]),
    ]


@hookimpl
def jacscale_config_sections() -> dict[str, type]:
    """[plugins.scale.admin]."""
    return {SECTION: AdminConfig}


@hookimpl
def jacscale_routes(app: AppContext) -> list[Any]:
    """The admin console (none when disabled)."""
    config: AdminConfig = app.config_section(SECTION)
    return admin_routes(app, config) if config.enabled else []


@hookimpl
def jacscale_register_commands(subparsers: Any) -> None:
    """`jacscale admin create app.jac --email ...`."""
    from jacscale_ext.admin_cli import register

    register(subparsers)


def _op(summary: str, op_id: str, ok: str = "200", body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    err = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    }
    op: dict[str, Any] = {
        "tags": ["Admin"],
        "summary": summary,
        "operationId": op_id,
        "security": [{"bearerAuth": []}],
        "responses": {
            ok: {
                "description": "OK",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "401": {"description": "Missing or invalid token", **err},
            "403": {"description": "Not an admin", **err},
            "422": {"description": "Invalid input (named in details)", **err},
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


@hookimpl
def jacscale_openapi_paths(app: AppContext) -> dict[str, Any]:
    """OpenAPI path items for /admin/api/*."""
    config: AdminConfig = app.config_section(SECTION)
    if not config.enabled:
        return {}
    uid = [{"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    query = [{"name": n, "in": "query", "required": False, "schema": s} for n, s in
             (("q", {"type": "string"}), ("limit", {"type": "integer"}),
              ("offset", {"type": "integer"}))]  # fmt: skip
    change = {"type": "object", "additionalProperties": False,
              "properties": {"disabled": {"type": "boolean"},
                             "role": {"type": "string", "enum": list(ROLES)}}}  # fmt: skip
    return {
        "/admin/api/users": {"get": _op("List and search users", "admin_users", params=query)},
        "/admin/api/users/{user_id}": {
            "patch": _op("Disable/enable a user or change its role (audited)",
                         "admin_change_user", body=change, params=uid)},
        "/admin/api/users/{user_id}/reset-password": {
            "post": _op("Force a password reset (ends sessions; reset token)",
                        "admin_reset_password", params=uid)},
        "/admin/api/config": {"get": _op("Effective configuration, secrets redacted", "admin_config")},
        "/admin/api/metrics": {"get": _op("Request and walker counts and latencies", "admin_metrics")},
        "/admin/api/errors": {"get": _op("Recent 5xx answers with request ids", "admin_errors")},
        "/admin/api/jobs": {"get": _op("Every scheduled job (static and users')", "admin_jobs")},
    }  # fmt: skip
