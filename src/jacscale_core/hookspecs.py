"""Every jacscale hook, grouped by lifecycle phase: the contract for plugin authors.

A plugin is any object (module, class or instance) with functions decorated by
`jacscale_core.hookimpl`, registered through the entry-point group `jacscale`.
The built-in extensions use the very same hooks.

Conventions (from pytest and datasette):
- names are `jacscale_<phase>_<thing>` or `jacscale_<thing>`;
- "who provides X" hooks are `firstresult=True`: the first non-None answer wins;
- contribution hooks return a list (or None) and every plugin's answer is used;
- an implementation may accept any subset of the declared arguments;
- an implementation may return a value or an awaitable where the hook says
  "may be awaitable"; `jacscale_core.plugins.await_me_maybe` normalises it.

docs/plugins.md documents each hook with its signature; tests/test_docs.py fails
when one is missing there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import HTTPConnection
    from starlette.types import Scope

    from jacscale_core.context import AppContext
    from jacscale_core.principal import Principal
    from jacscale_core.program import Endpoint

hookspec = pluggy.HookspecMarker("jacscale")  # also exported as jacscale_core.hookspec

# --------------------------------------------------------------------------
# Configuration: before the app is built
# --------------------------------------------------------------------------


@hookspec
def jacscale_config_sections() -> dict[str, type] | None:  # type: ignore[empty-body]
    """Declare the jac.toml sections a plugin reads, as {dotted name: msgspec.Struct type}.

    The kernel decodes each section into its type (unknown keys are reported at
    start-up, wrong types fail start-up naming the key) and exposes the result as
    `app.config_section(name)`.
    """


@hookspec(historic=True)
def jacscale_add_hookspecs(pm: Any) -> None:
    """Add the hooks an extension defines for its own plugins: `pm.add_hookspecs(specs)`.

    Called once for every plugin as it is registered (before it is checked), so
    an extension's hookspecs are known by the time implementations are checked
    (pytest's `pytest_addhooks`). `specs` is a module or class whose functions
    carry `jacscale_core.hookspec`.
    """


@hookspec
def jacscale_register_commands(subparsers: Any) -> None:
    """Add `jacscale <command>` sub-commands to the argparse `subparsers` object."""


# --------------------------------------------------------------------------
# Providers: who supplies a piece of infrastructure (firstresult)
# --------------------------------------------------------------------------


@hookspec(firstresult=True)
def jacscale_graph_store(app: AppContext) -> Any:
    """Return the durable graph store (L3) for this app, or None to pass.

    The built-in SQLite store answers last; the Mongo plugin answers when
    MONGODB_URI is set. The object implements `jacscale_core.store.GraphStore`.
    """


@hookspec(firstresult=True)
def jacscale_cache_tier(app: AppContext) -> Any:
    """Return a shared cache tier (L2, `jacscale_core.store.CacheTier`), or None for none."""


@hookspec(firstresult=True)
def jacscale_kvstore_driver(db_type: str, db_name: str, uri: str | None) -> Any:
    """Return a kvstore client for `db_type` ("mongodb", "redis", ...), or None to pass."""


@hookspec(firstresult=True)
def jacscale_storage_backend(storage_type: str, config: dict[str, Any]) -> Any:
    """Return a file storage backend for `storage_type` ("local", ...), or None to pass."""


@hookspec(firstresult=True)
def jacscale_store_builtin(app: AppContext, base_path: str, create_dirs: bool) -> Any:
    """Return what the Jac `store()` builtin gives the program running in `app`.

    The built-in local storage extension answers last: it reads jac.toml
    `[storage]` and JAC_STORAGE_* and asks `jacscale_storage_backend`.
    """


@hookspec(firstresult=True)
def jacscale_broadcast_bus(app: AppContext) -> Any:
    """Return the bus that carries WebSocket broadcasts between workers and pods."""


@hookspec(firstresult=True)
def jacscale_webhook_scheme(name: str) -> Any:
    """Return the webhook signature scheme called `name`, or None to pass."""


@hookspec(firstresult=True)
def jacscale_sso_provider(platform: str, app: AppContext) -> Any:
    """Return the SSO provider for `platform` ("google", ...), or None to pass."""


@hookspec(firstresult=True)
def jacscale_deploy_target(name: str) -> Any:
    """Return the deploy target called `name` ("kubernetes", ...), or None to pass."""


@hookspec(firstresult=True)
def jacscale_image_registry(name: str) -> Any:
    """Return the image registry called `name` ("dockerhub", ...), or None to pass."""


# --------------------------------------------------------------------------
# Application: building the ASGI app, start-up and shutdown
# --------------------------------------------------------------------------


@hookspec
def jacscale_routes(app: AppContext) -> list[Any] | None:  # type: ignore[empty-body]
    """Contribute Starlette routes (auth endpoints, /traverse, /docs, /metrics ...)."""


@hookspec
def jacscale_middleware(app: AppContext) -> list[Any] | None:  # type: ignore[empty-body]
    """Contribute `starlette.middleware.Middleware` entries, outermost first."""


@hookspec
def jacscale_request_observer(  # type: ignore[empty-body]
    app: AppContext,
) -> Callable[[Scope, int, float], None] | None:
    """Return a function called once per HTTP request, after its answer: (scope, status, seconds).

    Called by the kernel's layer on the event loop with the status the client got
    (the kernel's own answers included; 500 when none was sent) and the seconds
    since the request arrived. Keep it quick; an exception it raises is logged.
    Cheaper than a middleware for counting and logging: no layer of its own.
    """


@hookspec
def jacscale_openapi_paths(app: AppContext) -> dict[str, Any] | None:  # type: ignore[empty-body]
    """Contribute OpenAPI path items ({path: {method: operation}}) for plugin routes."""


@hookspec
def jacscale_startup(app: AppContext) -> Any:
    """Open clients and pools once per worker process (may be awaitable)."""


@hookspec
def jacscale_shutdown(app: AppContext) -> Any:
    """Close what `jacscale_startup` opened (may be awaitable)."""


@hookspec
def jacscale_readiness(app: AppContext) -> list[tuple[str, bool, str]] | None:  # type: ignore[empty-body]
    """Report readiness checks as (name, ok, detail) tuples; /readyz is false if any fails.

    May be awaitable. Must not take longer than its own timeout.
    """


@hookspec
def jacscale_draining(app: AppContext) -> Any:
    """The server is about to stop: refuse new long-lived work and end what is open.

    Called once, when a graceful shutdown begins and BEFORE the server waits for
    open connections (which `jacscale_shutdown` comes too late for): e.g. the
    WebSocket extension closes every socket with code 1001 here. May be
    awaitable; must finish within its own timeout. Idempotent.
    """


# --------------------------------------------------------------------------
# Requests: who is calling, and what happened
# --------------------------------------------------------------------------


@hookspec
def jacscale_authenticate(request: HTTPConnection, app: AppContext) -> Principal | None:
    """Return the Principal for this request or WebSocket, or None if not authenticated.

    Raise `jacscale_core.errors.ApiError` (401) for a credential that is present
    but invalid. May be awaitable. Every implementation is called; the kernel
    awaits the answers in pluggy's order and takes the first that is not None.
    """


@hookspec
def jacscale_user_deleted(app: AppContext, user_id: str) -> Any:
    """A user account was deleted: drop what belongs to it (API keys, sessions ...).

    May be awaitable. Called by the auth extension after the account is gone.
    """


@hookspec
def jacscale_walker_finished(
    app: AppContext, endpoint: Endpoint, principal: Principal, duration: float, success: bool
) -> None:
    """Called after every walker or function run with its duration in seconds."""
