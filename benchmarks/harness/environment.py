"""Everything the benchmarks need besides the project venv, installed on first use.

- `wrk` (Debian package): installed with apt-get when missing and running as root.
- matplotlib (benchmarks/requirements.txt) in the project venv, for the plots.
- jac-scale 0.2.31 in its own venv, benchmarks/.venv-jacscale, with the two
  packages it needs but does not declare (jaclang 0.16.7 and requests).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BENCH_DIR.parent
JACSCALE_VENV = BENCH_DIR / ".venv-jacscale"
# What "theirs" is. jac-scale does not declare jaclang or requests, yet needs both.
JACSCALE_PACKAGES = ["jac-scale==0.2.31", "jaclang==0.16.7", "requests"]
_STAMP = JACSCALE_VENV / ".installed"
INSTALL_TIMEOUT = 600


class SetupError(Exception):
    """A prerequisite could not be installed; the message says what to do."""


def _run(cmd: list[str], timeout: float, what: str) -> None:
    """Run an install command; raise SetupError with its output tail on failure."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"{what}: timed out after {timeout:.0f}s ({' '.join(cmd)})") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SetupError(f"{what} failed ({' '.join(cmd)}):\n{tail}")


def ensure_wrk() -> str:
    """Return the path of wrk, installing the Debian package if needed and allowed."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SetupError(
            "wrk is not installed. Install it (Debian/Ubuntu: `sudo apt-get install -y wrk`; "
            "macOS: `brew install wrk`) and run again."
        )
    print("installing wrk (apt-get install -y wrk)", flush=True)
    env_cmd = ["env", "DEBIAN_FRONTEND=noninteractive"]
    try:
        _run([*env_cmd, "apt-get", "install", "-y", "-q", "wrk"], 300, "apt-get install wrk")
    except SetupError:
        _run([*env_cmd, "apt-get", "update", "-q"], 300, "apt-get update")
        _run([*env_cmd, "apt-get", "install", "-y", "-q", "wrk"], 300, "apt-get install wrk")
    found = shutil.which("wrk")
    if not found:
        raise SetupError("apt-get reported success but wrk is still not on PATH")
    return found


def ensure_plot_requirements() -> None:
    """Install benchmarks/requirements.txt into this (the project's) venv if needed."""
    if importlib.util.find_spec("matplotlib") is not None:
        return
    print("installing benchmarks/requirements.txt (matplotlib) into the project venv", flush=True)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(BENCH_DIR / "requirements.txt"),
        ],
        INSTALL_TIMEOUT,
        "pip install -r benchmarks/requirements.txt",
    )


def find_python() -> str:
    """A Python >= 3.12 for jac-scale's venv, found the way scripts/find-python.sh does."""
    script = REPO_DIR / "scripts" / "find-python.sh"
    if script.exists():
        proc = subprocess.run(
            ["sh", str(script)], capture_output=True, text=True, timeout=60, check=False
        )
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
        raise SetupError(proc.stderr.strip() or "scripts/find-python.sh found no Python >= 3.12")
    return sys.executable  # the project venv's own Python is >= 3.12 already


def jacscale_python() -> Path:
    """The Python of jac-scale's venv."""
    return JACSCALE_VENV / "bin" / "python"


def ensure_jacscale_venv() -> Path:
    """Create benchmarks/.venv-jacscale with jac-scale 0.2.31 unless it is already there."""
    wanted = "\n".join(JACSCALE_PACKAGES)
    python = jacscale_python()
    if python.exists() and _STAMP.exists() and _STAMP.read_text() == wanted:
        return python
    if not python.exists():
        base = find_python()
        print(f"creating {JACSCALE_VENV.relative_to(REPO_DIR)} with {base}", flush=True)
        _run([base, "-m", "venv", str(JACSCALE_VENV)], 120, "creating jac-scale's venv")
    print(f"installing {' '.join(JACSCALE_PACKAGES)} into its venv", flush=True)
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *JACSCALE_PACKAGES,
        ],
        INSTALL_TIMEOUT,
        "installing jac-scale",
    )
    _STAMP.write_text(wanted)
    return python


def package_version(python: Path | str, package: str) -> str:
    """The installed version of `package` in the environment of `python` ('?' if unknown)."""
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    proc = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    return proc.stdout.strip() if proc.returncode == 0 else "?"
