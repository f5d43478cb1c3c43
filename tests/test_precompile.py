"""`jacscale serve` compiles the program in a child first, so the serving process
loads bytecode from jaclang's module cache and never its code-generation back
ends (llvmlite and the JavaScript generator). Each check runs the serving side
in a fresh interpreter, where sys.modules shows what was loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jacscale_core.precompile import precompile

HELPER = "def double(x: int) -> int { return x * 2; }\n"
APP = """import from helper { double }

walker ping {
    can go with Root entry { report double(21); }
}
"""

# Loads the program the way the kernel does and prints what it imported and ran.
PROBE = """
import json, sys
from jacscale_core.program import load_program
program = load_program(sys.argv[1])
print(json.dumps({
    "walkers": sorted(program.endpoints),
    "double": program.module.double(5),
    "native": "jaclang.compiler.passes.native" in sys.modules,
    "llvmlite": "llvmlite" in sys.modules,
    "ecmascript": "jaclang.compiler.passes.ecmascript" in sys.modules,
}))
"""


def _program(tmp_path: Path, name: str) -> Path:
    app_dir = tmp_path / name
    app_dir.mkdir()
    (app_dir / "jac.toml").write_text("")  # a project: jaclang caches in app_dir/.jac
    (app_dir / "helper.jac").write_text(HELPER)
    (app_dir / "app.jac").write_text(APP)
    return app_dir / "app.jac"


def _probe(app: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(app)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=app.parent,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_precompiled_program_loads_without_the_code_generators(tmp_path: Path) -> None:
    app = _program(tmp_path, "warm")
    assert precompile(app) is True
    loaded = _probe(app)
    assert loaded["walkers"] == ["ping"]
    assert loaded["double"] == 10  # the imported module is there and works
    assert loaded == loaded | {"native": False, "llvmlite": False, "ecmascript": False}


def test_without_precompile_the_load_compiles_in_process(tmp_path: Path) -> None:
    # The same program, cold: loading it compiles it here, back ends included.
    loaded = _probe(_program(tmp_path, "cold"))
    assert loaded["walkers"] == ["ping"]
    assert loaded["native"] is True and loaded["llvmlite"] is True


def test_an_imported_module_changed_later_is_recompiled(tmp_path: Path) -> None:
    app = _program(tmp_path, "edited")
    assert precompile(app) is True
    (app.parent / "helper.jac").write_text("def double(x: int) -> int { return x * 3; }\n")
    assert precompile(app) is True
    assert _probe(app)["double"] == 15


def test_a_program_that_does_not_compile_is_left_to_the_serving_process(tmp_path: Path) -> None:
    app = tmp_path / "broken.jac"
    app.write_text("walker ping { can go with Root entry { report ; }\n")
    assert precompile(app) is False
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(app)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode != 0
    assert "ProgramLoadError" in done.stderr and "broken.jac" in done.stderr


def test_a_missing_or_non_jac_path_is_not_compiled(tmp_path: Path) -> None:
    assert precompile(tmp_path / "missing.jac") is False
    other = tmp_path / "app.py"
    other.write_text("print('never run')\n")
    assert precompile(other) is False


def _children_started(app: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many compile children `precompile(app)` starts."""
    import jacscale_core.precompile as pc

    started = []
    real_run = subprocess.run

    def counting_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        started.append(cmd)
        return real_run(cmd, **kwargs)

    monkeypatch.setattr(pc.subprocess, "run", counting_run)
    assert precompile(app) is True
    return len(started)


def test_a_fresh_cache_starts_no_child_and_an_edited_import_starts_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _program(tmp_path, "fresh")
    assert _children_started(app, monkeypatch) == 1  # cold: compiled in the child
    listed = json.loads(next((app.parent / ".jac" / "cache").glob("*.modules.json")).read_text())
    assert sorted(Path(m).name for m in listed) == ["app.jac", "helper.jac"]
    assert _children_started(app, monkeypatch) == 0  # nothing changed: no child
    loaded = _probe(app)
    assert loaded["double"] == 10 and loaded["llvmlite"] is False
    # An edited import (the program itself unchanged) is recompiled by the child,
    # so the serving side still loads no code generator.
    (app.parent / "helper.jac").write_text("def double(x: int) -> int { return x * 3; }\n")
    assert _children_started(app, monkeypatch) == 1
    loaded = _probe(app)
    assert loaded["double"] == 15 and loaded["llvmlite"] is False
    assert _children_started(app, monkeypatch) == 0


def test_a_garbled_module_list_only_costs_a_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _program(tmp_path, "garbled")
    assert _children_started(app, monkeypatch) == 1
    record = next((app.parent / ".jac" / "cache").glob("*.modules.json"))
    record.write_text("{not json")
    # Ignored: the child runs (as before there was a list), and the program still
    # loads from the cache without the code generators.
    assert _children_started(app, monkeypatch) == 1
    assert _children_started(app, monkeypatch) == 1
    assert _probe(app)["llvmlite"] is False
