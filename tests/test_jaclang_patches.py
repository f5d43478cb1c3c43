"""jacscale_core.jaclang_patches: the version guard, idempotence, and each patch against jaclang's own.

Every patched function is called side by side with the jaclang function it
replaces, on the same inputs, and must give the same results. `[-->]` over a
whole program is compared in tests/test_jac_traversal.py; the hook proxies'
end-to-end use in tests/test_jac_speedups.py.
"""

from __future__ import annotations

import builtins
import http
import inspect
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from jaclang import JacRuntime as Jac
from jaclang.jac0core.constructs import NodeArchetype
from jaclang.jac0core.runtime import JacRuntimeInterface, plugin_manager
from jaclang.runtimelib import planner
from starlette.datastructures import UploadFile

import jacscale_core.jaclang_patches as patches
from jacscale_core.app import build_context
from jacscale_core.jaclang_patches import builtins as program_builtins
from jacscale_core.jaclang_patches import hook_dispatch, traversal
from jacscale_core.memory import RequestMemory, SharedTier
from jacscale_ext.sqlite_store import SqliteGraphStore
from tests.fixtures.servers import EXAMPLES

REPO = Path(__file__).resolve().parents[1]
TODO = EXAMPLES / "todo" / "app.jac"


@pytest.fixture(autouse=True)
def installed() -> None:
    patches.install_all()


class Task(NodeArchetype):  # type: ignore[misc]
    title: str = ""


# --------------------------------------------------------------------------
# The version guard
# --------------------------------------------------------------------------


def test_the_pin_is_the_one_pyproject_installs() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"jaclang=={patches.PINNED_JACLANG}" in deps
    assert patches.installed_jaclang() == patches.PINNED_JACLANG
    patches.check_jaclang_version()  # the installed one passes


def test_another_jaclang_is_refused_naming_both_versions() -> None:
    with pytest.raises(patches.JaclangVersionError) as raised:
        patches.check_jaclang_version("0.17.0")
    message = str(raised.value)
    assert "jaclang 0.16.7" in message and "jaclang 0.17.0" in message


def test_start_up_refuses_another_jaclang_before_loading_the_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(patches, "installed_jaclang", lambda: "0.15.2")
    with pytest.raises(
        patches.JaclangVersionError, match=r"requires jaclang 0\.16\.7.*jaclang 0\.15\.2"
    ):
        build_context(TODO, cli={"data_dir": str(tmp_path / "data")})
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_the_command_line_exits_with_the_version_error(tmp_path: Path) -> None:
    script = (
        "import sys, jacscale_core.jaclang_patches as p\n"
        "p.installed_jaclang = lambda: '0.99.1'\n"
        "from jacscale_core.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "serve",
            str(TODO),
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "requires jaclang 0.16.7" in done.stderr and "jaclang 0.99.1 is installed" in done.stderr
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------
# install_all
# --------------------------------------------------------------------------


def _patched_state() -> dict[str, Any]:
    return {
        "interface": dict(vars(JacRuntimeInterface)),
        "execute_path": planner.execute_path,
        "builtins": {name: getattr(builtins, name) for name in program_builtins.PROGRAM_BUILTINS},
        "upload": http.UploadFile,  # type: ignore[attr-defined]
    }


def test_install_all_is_idempotent() -> None:
    before = _patched_state()
    patches.install_all()
    patches.install_all()
    assert _patched_state() == before
    assert hook_dispatch.install() == 0
    assert traversal.install() is False
    # The traversal patch wraps jaclang's function once, not its own wrapper.
    original = JacRuntimeInterface.edges_to_nodes.jaclang_original  # type: ignore[attr-defined]
    assert not hasattr(original, "jaclang_original")
    assert not hasattr(planner.execute_path.jaclang_original, "jaclang_original")  # type: ignore[attr-defined]


def test_every_patch_is_in_place() -> None:
    fast = [v for v in vars(JacRuntimeInterface).values() if hasattr(v, "__wrapped_slow__")]
    assert len(fast) > 20  # every sync hook proxy of jaclang 0.16.7
    assert traversal.installed()
    for name, value in program_builtins.PROGRAM_BUILTINS.items():
        assert getattr(builtins, name) is value
    assert http.UploadFile is UploadFile  # type: ignore[attr-defined]


# --------------------------------------------------------------------------
# builtins: the same access changes as jaclang's own functions
# --------------------------------------------------------------------------


def _access(arch: Any) -> tuple[Any, dict[str, Any]]:
    access = arch.__jac__.access
    return access.all, dict(access.roots.anchors)


def _side_by_side(ours: Callable[[Any], None], theirs: Callable[[Any], None]) -> tuple[Any, Any]:
    mine, jaclangs = Task(), Task()
    ours(mine)
    theirs(jaclangs)
    return _access(mine), _access(jaclangs)


@pytest.mark.parametrize("level", [None, "NO_ACCESS", "READ", "CONNECT", "WRITE"])
def test_perm_grant_and_revoke_match_jaclang(level: str | None) -> None:
    lvl = getattr(program_builtins, level) if level else None
    args = (lvl,) if lvl is not None else ()
    ours, theirs = _side_by_side(
        lambda a: program_builtins.perm_grant(a, *args), lambda a: Jac.perm_grant(a, *args)
    )
    assert ours == theirs

    def ours_both(a: Any) -> None:
        program_builtins.perm_grant(a, *args)
        program_builtins.perm_revoke(a)

    def jaclang_both(a: Any) -> None:
        Jac.perm_grant(a, *args)
        Jac.perm_revoke(a)

    ours, theirs = _side_by_side(ours_both, jaclang_both)
    assert ours == theirs


@pytest.mark.parametrize("level", [None, "READ", "CONNECT", "WRITE"])
@pytest.mark.parametrize("spelling", [str, lambda u: u.hex, lambda u: u])
def test_allow_and_disallow_root_match_jaclang_for_every_id_spelling(
    spelling: Callable[[UUID], Any], level: str | None
) -> None:
    root = uuid4()
    args = (getattr(program_builtins, level),) if level else ()
    ours, theirs = _side_by_side(
        lambda a: program_builtins.allow_root(a, spelling(root), *args),
        lambda a: Jac.allow_root(a, root, *args),
    )
    assert ours == theirs
    assert str(root) in ours[1]

    def ours_both(a: Any) -> None:
        program_builtins.allow_root(a, spelling(root), *args)
        program_builtins.disallow_root(a, spelling(root), *args)

    def jaclang_both(a: Any) -> None:
        Jac.allow_root(a, root, *args)
        Jac.disallow_root(a, root, *args)

    ours, theirs = _side_by_side(ours_both, jaclang_both)
    assert ours == theirs


def test_allow_root_takes_a_root_object_like_its_id() -> None:
    owner = Task()
    ours, theirs = _side_by_side(
        lambda a: program_builtins.allow_root(a, owner, program_builtins.WRITE),
        lambda a: Jac.allow_root(a, owner.__jac__.id, program_builtins.WRITE),
    )
    assert ours == theirs


@pytest.mark.parametrize("bad", ["nope", "", "12345", "0" * 31, "g" * 32])
def test_a_malformed_root_id_is_a_bad_request_and_changes_nothing(bad: str) -> None:
    arch = Task()
    before = _access(arch)
    with pytest.raises(program_builtins.InvalidRootId, match="not a root id") as raised:
        program_builtins.allow_root(arch, bad)
    assert raised.value.api_code == "BAD_REQUEST"
    assert _access(arch) == before


# --------------------------------------------------------------------------
# hook_dispatch: every fast proxy makes the same hook call as jaclang's proxy
# --------------------------------------------------------------------------


def _fast_proxies() -> list[tuple[str, Any]]:
    return sorted(
        (name, value)
        for name, value in vars(JacRuntimeInterface).items()
        if hasattr(value, "__wrapped_slow__")
    )


class _Recorder:
    """Stands in for every implementation of one hook: records each call's arguments by name."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, hook_name: str) -> None:
        self.calls: list[tuple[int, dict[str, Any]]] = []
        for index, impl in enumerate(getattr(plugin_manager.hook, hook_name).get_hookimpls()):
            monkeypatch.setattr(impl, "function", self._impl(index, tuple(impl.argnames or ())))

    def _impl(self, index: int, argnames: tuple[str, ...]) -> Callable[..., Any]:
        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((index, {**dict(zip(argnames, args, strict=False)), **kwargs}))
            return ("result of impl", index)

        return record


def _argument_shapes(sig: inspect.Signature) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Positional, keyword, required-only and mixed calls with distinct marker values."""
    params = list(sig.parameters.values())
    values = {p.name: object() for p in params}
    required = [p for p in params if p.default is p.empty]
    positional = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    shapes: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        (
            tuple(values[p.name] for p in positional),
            {p.name: values[p.name] for p in params if p not in positional},
        ),
        ((), {p.name: values[p.name] for p in params}),
        ((), {p.name: values[p.name] for p in required}),
    ]
    if positional:
        first = positional[0]
        shapes.append(
            ((values[first.name],), {p.name: values[p.name] for p in required if p is not first})
        )
    return shapes


def _outcome(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], rec: _Recorder
) -> Any:
    rec.calls.clear()
    try:
        result: Any = fn(*args, **kwargs)
    except TypeError as exc:
        result = ("TypeError", str(exc))
    return result, list(rec.calls)


def test_every_fast_proxy_calls_the_hook_like_jaclangs_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxies = _fast_proxies()
    assert proxies
    for name, fast in proxies:
        slow = fast.__wrapped_slow__
        with monkeypatch.context() as m:
            rec = _Recorder(m, fast.__name__)
            sig = fast.__signature__
            for args, kwargs in _argument_shapes(sig):
                ours = _outcome(fast, args, kwargs, rec)
                theirs = _outcome(slow, args, kwargs, rec)
                assert ours == theirs, (name, args, kwargs)
                assert ours[1], f"{name}: no implementation was called"
            # Unusual calls go to jaclang's proxy: an unknown keyword, too many arguments.
            for args, kwargs in (
                ((), {"no_such_argument": 1}),
                (tuple(object() for _ in range(len(sig.parameters) + 1)), {}),
            ):
                assert _outcome(fast, args, kwargs, rec) == _outcome(slow, args, kwargs, rec), name


def test_jaclangs_modules_hold_the_fast_proxies() -> None:
    """Compiled Jac code calls `report` and `connect` through jaclang.jac0core.jaclib's copies."""
    from jaclang.jac0core import jaclib

    slow_ids = {id(v.__wrapped_slow__) for _, v in _fast_proxies()}
    leftovers = [
        f"{mod_name}.{attr}"
        for mod_name, module in list(sys.modules.items())
        if mod_name.startswith("jaclang") and module is not None
        for attr, value in list(getattr(module, "__dict__", {}).items())
        if id(value) in slow_ids
    ]
    assert leftovers == []
    assert hasattr(jaclib.log_report, "__wrapped_slow__")
    assert hasattr(jaclib.connect, "__wrapped_slow__")


# --------------------------------------------------------------------------
# traversal.execute_path: the planner's answer over a RequestMemory
# --------------------------------------------------------------------------


def test_execute_path_answers_like_jaclangs_planner_over_a_request_memory(tmp_path: Path) -> None:
    """With the topology index off, jaclang's planner declines every path: so does ours, without analysing it."""
    from jaclang.jac0core.archetype import ObjectSpatialPath

    store = SqliteGraphStore(tmp_path / "graph.db")
    try:
        mem = RequestMemory(SharedTier(store))
        jaclangs = planner.execute_path.jaclang_original  # type: ignore[attr-defined]
        is_task: Callable[[Any], bool] = lambda n: isinstance(n, Task)  # noqa: E731
        for origin in (Task(), Jac.get_context().get_root()):
            for step in ("edge_out", "edge_in", "edge_any"):
                for node_filter in (None, is_task):
                    path = getattr(ObjectSpatialPath(origin), step)(nd=node_filter)
                    for slc in (None, slice(0, 1)):
                        theirs = jaclangs(mem, path, slc)
                        assert planner.execute_path(mem, path, slc) == theirs
                        assert theirs is None
    finally:
        store.close()
