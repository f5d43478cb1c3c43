"""A serving process caps glibc's malloc arenas, unless MALLOC_ARENA_MAX says otherwise.

Each check runs a fresh interpreter: eight threads allocate at the same time,
then glibc's malloc_stats() (on stderr) lists one "Arena N:" per arena in use.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from jacscale_core.malloc_arenas import ARENA_ENV, limit_malloc_arenas

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's"
)

PROBE = """
import ctypes, sys, threading
from jacscale_core.malloc_arenas import limit_malloc_arenas
print(limit_malloc_arenas() if sys.argv[1] == "limit" else "untouched", flush=True)
barrier = threading.Barrier(8)
def work():
    held = [bytearray(4096) for _ in range(64)]  # above Python's small-object size: malloc
    barrier.wait()  # all eight threads hold their blocks at once
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(None).malloc_stats()
"""


def _arenas(mode: str, env_arenas: str | None = None) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != ARENA_ENV}
    if env_arenas is not None:
        env[ARENA_ENV] = env_arenas
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    count = sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))
    return done.stdout.strip(), count


def test_threads_share_two_arenas_once_limited() -> None:
    result, arenas = _arenas("limit")
    assert result == "2"
    assert 1 <= arenas <= 2


def test_without_the_limit_threads_take_arenas_of_their_own() -> None:
    result, arenas = _arenas("none")
    assert result == "untouched"
    assert arenas > 2


def test_malloc_arena_max_in_the_environment_wins() -> None:
    result, arenas = _arenas("limit", env_arenas="4")
    assert result == "None"  # left to glibc, which read the variable at start
    assert 2 < arenas <= 4


def test_an_explicit_environment_is_honoured_without_touching_malloc() -> None:
    assert limit_malloc_arenas(env={ARENA_ENV: "1"}) is None
