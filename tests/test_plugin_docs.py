"""The plugin contract: every hook documented, knobs that choose plugins, `jacscale plugins`."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from jacscale_core import hookspecs
from jacscale_core.plugins import KERNEL_PLUGINS, builtin_plugins, make_plugin_manager, plugin_names

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def hook_specs() -> dict[str, inspect.Signature]:
    """The kernel's hooks and those the built-in extensions add (jacscale_add_hookspecs)."""
    pm = make_plugin_manager({"JACSCALE_DISABLE_PLUGIN_AUTOLOAD": "1"})
    specs = {
        name: inspect.signature(fn)
        for name, fn in vars(hookspecs).items()
        if name.startswith("jacscale_") and callable(fn)
    }
    for name, caller in vars(pm.hook).items():
        if name.startswith("jacscale_") and caller.spec is not None:
            specs.setdefault(name, inspect.signature(caller.spec.function))
    return specs


def test_every_hook_is_documented_with_its_signature() -> None:
    text = DOCS.read_text()
    documented = dict(re.findall(r"^#### `(jacscale_\w+)\(([^)]*)\)`", text, flags=re.M))
    for name, signature in hook_specs().items():
        assert name in documented, f"{name} is missing from docs/plugins.md"
        params = [p.strip() for p in documented[name].split(",") if p.strip()]
        assert params == list(signature.parameters), f"{name}: docs say {params}"


def test_every_hook_has_a_docstring() -> None:
    pm = make_plugin_manager({"JACSCALE_DISABLE_PLUGIN_AUTOLOAD": "1"})
    for name, caller in vars(pm.hook).items():
        if name.startswith("jacscale_") and caller.spec is not None:
            assert (caller.spec.function.__doc__ or "").strip(), name
    assert {"jacscale_job_store", "jacscale_send_email"} <= set(hook_specs())


def test_builtins_load_and_autoload_can_be_disabled() -> None:
    pm = make_plugin_manager({"JACSCALE_DISABLE_PLUGIN_AUTOLOAD": "1"})
    names = plugin_names(pm)
    assert names == [*KERNEL_PLUGINS, *builtin_plugins()]
    assert "jacscale_ext.sqlite_store" in names


def test_jacscale_plugins_selects_entry_points_by_name() -> None:
    everything = plugin_names(make_plugin_manager({}))
    assert "hello" in everything
    only_hello = plugin_names(make_plugin_manager({"JACSCALE_PLUGINS": "hello"}))
    assert "hello" in only_hello
    extras = set(only_hello) - {*KERNEL_PLUGINS, *builtin_plugins()}
    assert extras == {"hello"}


def test_plugins_command_lists_plugins_and_hooks() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jacscale_core.cli", "plugins"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "jacscale_ext.sqlite_store: jacscale_graph_store" in out
    assert "hello: " in out and "jacscale_routes" in out


def _worked_plugin_blocks() -> list[str]:
    text = DOCS.read_text()
    section = text.split("### A worked plugin", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_worked_plugin_runs_as_documented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin_source, test_source = _worked_plugin_blocks()
    assert "jacscale_ext" not in plugin_source + test_source  # the public surface only
    module = types.ModuleType("myauth")
    exec(compile(plugin_source, "myauth.py", "exec"), module.__dict__)  # noqa: S102 - the doc's code
    monkeypatch.setitem(sys.modules, "myauth", module)
    app = Path(__file__).resolve().parents[1] / "examples" / "todo" / "app.jac"
    namespace: dict[str, object] = {}
    exec(compile(test_source.replace('"app.jac"', repr(str(app))), "doc", "exec"), namespace)  # noqa: S102
    namespace["test_token_users_get_their_own_todos"](tmp_path)  # type: ignore[operator]
