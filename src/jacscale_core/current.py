"""The current app: which AppContext the code running now belongs to.

Process state (settings, plugin manager, data dir, redaction list) lives on the
AppContext; this module only says which one is current. The app sets itself
current for everything it runs (requests, WebSockets, the lifespan and the
tasks it starts, loading the program), through a context variable, so two apps
in one process never see each other's state, and worker threads see the app of
the request that handed them the job.

Outside any app (`jac run app.jac` calling `store()`, a plain script),
`current_app()` answers with a standalone app for the current directory: the
plugin manager and jac.toml a served app there would use, without a program or
a store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from jacscale_core.context import AppContext

_CURRENT: ContextVar[AppContext | None] = ContextVar("jacscale_current_app", default=None)


def active_app() -> AppContext | None:
    """The app running the current code, or None outside every app."""
    return _CURRENT.get()


def current_app() -> AppContext:
    """The app running the current code; outside every app, a standalone one.

    The standalone app is made on each call (it reads the environment and the
    current directory as they are now), so code outside a server that calls
    this in a loop should keep what it gets.
    """
    app = _CURRENT.get()
    return app if app is not None else standalone_app()


@contextmanager
def running(app: AppContext) -> Iterator[AppContext]:
    """Make `app` current for the block (and for tasks and pool jobs started in it)."""
    token = _CURRENT.set(app)
    try:
        yield app
    finally:
        _CURRENT.reset(token)


def standalone_app(
    directory: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> AppContext:
    """An app without program or store for `directory` (default: the current one).

    It has the plugin manager (built-ins and entry points, as JACSCALE_PLUGINS
    and JACSCALE_DISABLE_PLUGIN_AUTOLOAD allow) and default settings whose
    app directory is `directory`, which is all `store()` and `kvstore()` need.
    """
    from jacscale_core.config import default_settings
    from jacscale_core.plugins import make_plugin_manager

    base = Path.cwd() if directory is None else Path(directory).resolve()
    pm = make_plugin_manager(env)
    return AppContext.bare(default_settings(base / "main.jac", env=env), pm)
