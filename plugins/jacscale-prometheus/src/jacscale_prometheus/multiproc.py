"""Where the workers of one server keep their metric files, so a scrape sums them.

prometheus-client's multiprocess mode: every worker writes its samples to
mmap files in one directory (`PROMETHEUS_MULTIPROC_DIR`) and a scrape merges
the files of all workers. The directory must be shared by the workers of one
server, private to that server, and empty when the server starts.

- The top-level process (the `jacscale serve` supervisor) owns a directory
  named after its pid under `$TMPDIR/jacscale-metrics-<uid>/`, wipes it, and
  exports it (workers are spawned afterwards and inherit the variable), and
  removes it when it exits. Dirs of servers that died without cleaning up are
  removed at the next start.
- A worker (a child started by `multiprocessing`) uses the directory named
  after its parent's pid, so it also works when hypercorn is run directly.
- An operator who sets PROMETHEUS_MULTIPROC_DIR themselves gets exactly that
  directory, untouched (prometheus-client's documented contract).

A per-container temporary directory (not the data dir, which may be a volume
shared by several pods) keeps servers apart.
"""

from __future__ import annotations

import atexit
import glob
import multiprocessing
import os
import re
import shutil
import stat
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

from jacscale_core.config import ConfigError

DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
OWNER_ENV = "JACSCALE_METRICS_OWNER"  # set with DIR_ENV when jacscale chose the directory
_LIVE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def base_dir() -> Path:
    """`$TMPDIR/jacscale-metrics-<uid>`, created private to this user."""
    base = Path(tempfile.gettempdir()) / f"jacscale-metrics-{os.getuid()}"
    try:
        base.mkdir(mode=0o700, exist_ok=True)
        info = base.lstat()
    except OSError as exc:
        raise ConfigError(f"metrics: cannot create {base}: {exc.strerror}") from exc
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ConfigError(f"metrics: {base} is not a directory owned by this user; remove it")
    if info.st_mode & 0o077:
        os.chmod(base, 0o700)
    return base


def remove_stale(base: Path) -> list[Path]:
    """Delete the directories of servers whose process is gone; return them."""
    removed = []
    for child in base.iterdir():
        if child.name.isdigit() and child.is_dir() and not pid_alive(int(child.name)):
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def choose_dir(workers: int, env: MutableMapping[str, str] | None = None) -> Path | None:
    """The multiprocess directory to use, or None for single-process metrics.

    Exports PROMETHEUS_MULTIPROC_DIR into `env` (os.environ by default) when
    jacscale chose the directory, so workers spawned afterwards inherit it.
    """
    env = os.environ if env is None else env
    given = env.get(DIR_ENV)
    if given and OWNER_ENV not in env:
        path = Path(given)
        if not path.is_dir():
            raise ConfigError(f"{DIR_ENV}={given} is not a directory")
        return path
    if workers <= 1:
        return None
    is_worker = multiprocessing.parent_process() is not None
    owner = os.getppid() if is_worker else os.getpid()
    base = base_dir()
    path = base / str(owner)
    if not is_worker:
        remove_stale(base)
        shutil.rmtree(path, ignore_errors=True)
        atexit.register(shutil.rmtree, path, True)  # the server's samples die with it
    path.mkdir(mode=0o700, exist_ok=True)
    env[DIR_ENV] = str(path)
    env[OWNER_ENV] = str(owner)
    return path


def mark_dead_workers(path: Path) -> list[int]:
    """Forget the live gauges of worker processes that no longer exist."""
    from prometheus_client import multiprocess

    dead = set()
    for name in os.listdir(path):
        match = _LIVE_FILE.match(name)
        if match and not pid_alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(path))
    return sorted(dead)


def files_of(path: Path, pid: int) -> list[str]:
    """The metric files a process wrote (for tests and diagnostics)."""
    return sorted(glob.glob(str(path / f"*_{pid}.db")))
