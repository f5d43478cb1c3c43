"""Compile a Jac program into jaclang's module cache in a short-lived child process.

Compiling a Jac module loads jaclang's code-generation back ends, its
JavaScript one and its native one (llvmlite: about 65 MB resident, never
released). A serving process only needs the Python bytecode, which jaclang
keeps in its module cache (`.jac/cache` in a project, else ~/.cache/jac). So
`jacscale serve` compiles the program once in a child process that then
exits; the serving process (and every `--workers` worker) loads the bytecode
from that cache and never loads the back ends. When the cache is already
fresh, the child only reads it.

The child is an optimisation, never a gate: if it fails or times out, the
serving process compiles the program itself exactly as before and reports
any diagnostics.

The child prints the Jac modules it compiled (the program and what it imports
from its own directory tree); the parent keeps that list next to the
program's cache entry (`<entry>.modules.json`). On the next start, when
jaclang's own check (`is_module_cache_valid`) says every listed module's
cache entry is fresh, no child is started at all (about half a second less
to start). A listed module that changed sends the whole list to the child
again, so an edited import is recompiled there too, not in the serving process.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger("jacscale.precompile")

# A cold compile of a large program takes seconds; this bounds a stuck child.
PRECOMPILE_TIMEOUT_SECONDS = 300.0


def precompile(app_path: str | Path, timeout: float = PRECOMPILE_TIMEOUT_SECONDS) -> bool:
    """Fill jaclang's module cache for `app_path` from a child process.

    Returns True when the cache is fresh for the program and the modules it
    imports from its own directory (already, or after the child compiled
    them); False when it is not, and the serving process will compile
    in-process as before (the reason is logged).
    """
    path = Path(app_path).resolve()
    if not path.is_file() or path.suffix != ".jac":
        return False  # load_program reports the bad path with its usual message
    known = _known_modules(path)
    if known and all(_cache_is_fresh(module) for module in known):
        return True
    cmd = [sys.executable, "-m", "jacscale_core.precompile", str(path), *known]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        logger.warning("precompile: %s took over %.0f s; compiling in-process", path.name, timeout)
        return False
    except OSError as exc:
        logger.warning("precompile: cannot start a child (%s); compiling in-process", exc)
        return False
    if done.returncode != 0:
        # Compile errors are reported by the serving process's own load.
        logger.info("precompile: child exited %d; compiling in-process", done.returncode)
        return False
    _remember_modules(path, done.stdout)
    return True


def _record_path(path: Path) -> Path:
    """Where the list of `path`'s compiled modules is kept: beside its cache entry."""
    from jaclang.jac0core.jir import get_module_cache_path

    entry = Path(get_module_cache_path(str(path)))
    return entry.with_name(entry.name + ".modules.json")


def _known_modules(path: Path) -> list[str]:
    """The modules the last child compiled for `path` (empty when unknown or unreadable)."""
    try:
        listed = json.loads(_record_path(path).read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        logger.info("precompile: ignoring the module list of %s (%s)", path.name, exc)
        return []
    if not isinstance(listed, list) or str(path) not in listed:
        return []
    return [m for m in listed if isinstance(m, str) and m.endswith(".jac")]


def _cache_is_fresh(module: str) -> bool:
    """jaclang's own verdict: would loading `module` read its cache entry?"""
    from jaclang.jac0core.jir import cache_mode, get_module_cache_path, is_module_cache_valid

    rebuild, _ = cache_mode()
    if rebuild or not os.path.isfile(module):
        return False
    return bool(is_module_cache_valid(module, Path(get_module_cache_path(module))))


def _remember_modules(path: Path, child_output: str) -> None:
    """Keep the child's module list (its last output line) for the next start."""
    lines = child_output.strip().splitlines()
    try:
        modules = json.loads(lines[-1]) if lines else None
    except ValueError:
        modules = None
    if not isinstance(modules, list) or str(path) not in modules:
        logger.info("precompile: the child listed no modules for %s", path.name)
        return
    record = _record_path(path)
    try:
        partial = record.with_name(record.name + f".{os.getpid()}")
        partial.write_text(json.dumps(sorted(set(modules))))
        partial.replace(record)
    except OSError as exc:  # a read-only cache: the child simply runs every time
        logger.info("precompile: cannot keep the module list of %s (%s)", path.name, exc)


def _compile_into_cache(path: Path, known: list[Path]) -> int:
    """Compile `path`, the `known` modules of its last compile, and the Jac modules
    they import from `path`'s directory tree; print them all as a JSON list."""
    import jaclang.jac0core.unitree as uni
    from jaclang import JacRuntime as Jac

    from jacscale_core.jaclang_patches import install_all

    install_all()
    base = path.parent
    Jac.set_base_path(str(base))
    Jac.set_full_target_path(str(path))
    program = Jac.get_program()
    if program.get_bytecode(str(path)) is None:
        return 1
    # Read from a fresh cache, the program's imports are not known here: list
    # them only when it was compiled now, or the last list came with it.
    complete = str(path) in program.mod.hub or bool(known)
    pending = [str(path)]
    seen = {str(path)}
    for module in known:
        if module.is_file() and module.is_relative_to(base) and str(module) not in seen:
            seen.add(str(module))
            program.get_bytecode(str(module))
            pending.append(str(module))
    while pending:
        compiled = program.mod.hub.get(pending.pop())
        if compiled is None:  # read from a fresh cache: its imports were compiled with it
            continue
        for mod_path in compiled.get_all_sub_nodes(uni.ModulePath):
            target = Path(mod_path.resolve_relative_path())
            if target.suffix == ".jac" and target.is_file() and target.is_relative_to(base):
                if str(target) not in seen:
                    seen.add(str(target))
                    program.get_bytecode(str(target))
                    pending.append(str(target))
    if complete:
        print(json.dumps(sorted(seen)))
    return 0


if __name__ == "__main__":
    sys.exit(
        _compile_into_cache(
            Path(sys.argv[1]).resolve(), [Path(arg).resolve() for arg in sys.argv[2:]]
        )
    )
