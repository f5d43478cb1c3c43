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
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger("jacscale.precompile")

# A cold compile of a large program takes seconds; this bounds a stuck child.
PRECOMPILE_TIMEOUT_SECONDS = 300.0


def precompile(app_path: str | Path, timeout: float = PRECOMPILE_TIMEOUT_SECONDS) -> bool:
    """Fill jaclang's module cache for `app_path` from a child process.

    Returns True when the child compiled (or found cached) the program and the
    modules it imports from its own directory; False when it did not, and the
    serving process will compile in-process as before (the reason is logged).
    """
    path = Path(app_path).resolve()
    if not path.is_file() or path.suffix != ".jac":
        return False  # load_program reports the bad path with its usual message
    cmd = [sys.executable, "-m", "jacscale_core.precompile", str(path)]
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
    return True


def _compile_into_cache(path: Path) -> int:
    """Compile `path` and the Jac modules it imports from its own directory tree."""
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
    pending, seen = [str(path)], {str(path)}
    while pending:
        module = program.mod.hub.get(pending.pop())
        if module is None:  # read from a fresh cache: its imports were compiled with it
            continue
        for mod_path in module.get_all_sub_nodes(uni.ModulePath):
            target = Path(mod_path.resolve_relative_path())
            if target.suffix == ".jac" and target.is_file() and target.is_relative_to(base):
                if str(target) not in seen:
                    seen.add(str(target))
                    program.get_bytecode(str(target))
                    pending.append(str(target))
    return 0


if __name__ == "__main__":
    sys.exit(_compile_into_cache(Path(sys.argv[1]).resolve()))
