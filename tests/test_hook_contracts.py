"""Hook contracts: every authenticator is asked, and a misspelled hook stops start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jacscale_core.context import AppContext
from jacscale_core.plugins import (
    PluginError,
    check_hookimpls,
    hookimpl,
    hookspec,
    make_plugin_manager,
)
from jacscale_core.principal import Principal
from jacscale_core.testing import TestApp

APP = Path(__file__).resolve().parents[1] / "examples" / "todo" / "app.jac"
PASSWORD = "a long passphrase"


class AsyncNobody:
    """An async authenticator that never recognises anyone (registered last: asked first)."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    async def jacscale_authenticate(self, request: Any, app: AppContext) -> Principal | None:
        self.calls += 1
        return None


class Misspelled:
    """A plugin whose hook name has a typo."""

    @hookimpl
    def jacscale_authentcate(self, request: Any, app: AppContext) -> None:
        return None


def test_async_authenticator_returning_none_does_not_hide_jwt(tmp_path: Path) -> None:
    nobody = AsyncNobody()
    with TestApp(APP, tmp_path / "data", plugins=[nobody]) as client:
        creds = {"email": "hooks@example.com", "password": PASSWORD}
        assert client.post("/user/register", json=creds).status_code == 201
        token = client.post("/user/login", json=creds).json()["access_token"]
        me = client.get("/user/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        listed = client.post("/walker/list_todos", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200, listed.text
        assert client.post("/walker/list_todos").status_code == 401
    assert nobody.calls >= 2  # it was asked, and answering None hid nothing


def test_misspelled_hookimpl_stops_create_app_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="jacscale_authentcate"):
        with TestApp(APP, tmp_path / "data", plugins=[Misspelled()]):
            pass


def test_misspelled_hookimpl_stops_the_cli_with_its_name(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "plug"
    plugin_dir.mkdir()
    (plugin_dir / "typo_plugin.py").write_text(
        "from jacscale_core.plugins import hookimpl\n"
        "@hookimpl\n"
        "def jacscale_startupp(app):\n"
        "    return None\n"
    )
    dist = plugin_dir / "typo_plugin-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: typo-plugin\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text("[jacscale]\ntypo = typo_plugin\n")
    proc = subprocess.run(
        [sys.executable, "-m", "jacscale_core.cli", "plugins"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(plugin_dir), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "jacscale_startupp" in proc.stderr
    assert "typo" in proc.stderr
    assert "Traceback" not in proc.stderr


class _TallySpecs:
    """The hooks of a made-up extension."""

    @staticmethod
    @hookspec
    def jacscale_tally(app: AppContext) -> Any:
        """Contribute a number."""


class TallyExtension:
    """An extension that defines its own hook."""

    @hookimpl
    def jacscale_add_hookspecs(self, pm: Any) -> None:
        pm.add_hookspecs(_TallySpecs)


class TallyPlugin:
    """A plugin implementing the extension's hook."""

    @hookimpl
    def jacscale_tally(self, app: AppContext) -> int:
        return 7


def test_an_extension_adds_its_own_hookspecs() -> None:
    pm = make_plugin_manager({"JACSCALE_DISABLE_PLUGIN_AUTOLOAD": "1"})
    pm.register(TallyPlugin())  # before the extension: still checked against its spec
    pm.register(TallyExtension())
    check_hookimpls(pm)
    assert pm.hook.jacscale_tally(app=None) == [7]
    # The built-ins' own hooks come the same way.
    assert pm.hook.jacscale_job_store.spec is not None
    assert pm.hook.jacscale_send_email.spec is not None


def test_a_hook_nobody_defines_is_still_an_error() -> None:
    pm = make_plugin_manager({"JACSCALE_DISABLE_PLUGIN_AUTOLOAD": "1"})
    pm.register(TallyPlugin(), name="tally")
    with pytest.raises(PluginError, match="'tally'.*jacscale_tally"):
        check_hookimpls(pm)
