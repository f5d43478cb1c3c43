"""Unused plugins cost nothing at start-up: loading them imports no database driver.

Every jacscale process (the server, each worker, every CLI command) loads every
installed plugin's entry point. The store plugins import redis, psycopg and
PyMongo only inside the hook that decides they are in use, so a program on the
default SQLite store never imports them. Each check runs in a fresh interpreter:
this test process has imported the drivers already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from tests.fixtures.servers import EXAMPLES

DRIVERS = [
    "redis",
    "psycopg",
    "psycopg_pool",
    "pymongo",
    "bson",
    "kubernetes_asyncio",
    "prometheus_client",
]
# Settings that select a driver or narrow the plugins loaded: all unset, every plugin
# loads and the program uses SQLite alone.
SELECTORS = (
    "REDIS_URL", "DATABASE_URL", "MONGODB_URI", "JACSCALE_PLUGINS", "JACSCALE_DISABLE_PLUGIN_AUTOLOAD",
)  # fmt: skip
STORE_PLUGINS = {
    "redis_kvstore", "redis_broadcast", "redis_cache_tier",
    "mongo_kvstore", "mongo_graph_store", "mongo_jobs",
    "postgres_graph_store", "postgres_kvstore", "postgres_broadcast", "postgres_jobs",
    "kubernetes", "prometheus",
}  # fmt: skip

REPORT = """
import json, sys
print(json.dumps(sorted(m for m in {drivers!r} if m in sys.modules)))
"""

LOAD_ENTRY_POINTS = """
import jacscale_core.app
from importlib.metadata import entry_points
from jacscale_core.plugins import make_plugin_manager
for ep in entry_points(group="jacscale"):
    ep.load()
make_plugin_manager()
"""

ROUTES_COMMAND = """
import contextlib, io, sys
from jacscale_core.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(["routes", sys.argv[1], "--data-dir", sys.argv[2]])
assert code == 0 and "/walker/" in out.getvalue(), (code, out.getvalue())
"""

SERVED_APP = """
import sys
from starlette.testclient import TestClient
from jacscale_core.app import create_app
app = create_app(sys.argv[1], data_dir=sys.argv[2])
with TestClient(app) as client:
    for path in ("/readyz", "/healthz"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text)
"""


def imported_drivers(script: str, *args: str) -> list[str]:
    """Run `script` in a fresh interpreter with no driver selected; the drivers it imported."""
    env = {k: v for k, v in os.environ.items() if k not in SELECTORS}
    proc = subprocess.run(
        [sys.executable, "-c", script + REPORT.format(drivers=DRIVERS), *args],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_the_store_plugins_are_installed() -> None:
    """The checks below load these entry points (they would prove nothing without them)."""
    assert STORE_PLUGINS <= {ep.name for ep in entry_points(group="jacscale")}


def test_loading_every_entry_point_imports_no_driver() -> None:
    assert imported_drivers(LOAD_ENTRY_POINTS) == []


def test_the_routes_command_imports_no_driver(tmp_path: Path) -> None:
    app = str(EXAMPLES / "01_walkers.jac")
    assert imported_drivers(ROUTES_COMMAND, app, str(tmp_path)) == []


def test_a_served_sqlite_app_imports_no_driver(tmp_path: Path) -> None:
    """Start-up, readiness and shutdown run every plugin's hooks: none imports its driver."""
    app = str(EXAMPLES / "01_walkers.jac")
    assert imported_drivers(SERVED_APP, app, str(tmp_path)) == []


def test_a_selected_store_imports_its_driver(tmp_path: Path) -> None:
    """The check can see a driver: asking for a kvstore of db_type 'redis' imports redis."""
    script = """
from jacscale_core.plugins import make_plugin_manager
try:
    make_plugin_manager().hook.jacscale_kvstore_driver(db_type="redis", db_name="x", uri=None)
except ValueError as exc:
    assert "needs a URL" in str(exc), exc
else:
    raise AssertionError("no URL was accepted")
"""
    assert imported_drivers(script) == ["redis"]
