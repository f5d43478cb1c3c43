"""Fewer glibc malloc arenas in a serving process.

glibc gives each new thread its own malloc arena (up to 8 per core). A worker
runs its walkers on a pool of threads, so each of them grows and fragments an
arena of its own, and the process keeps the high-water mark of all of them:
on the benchmark's read rows this was about 70 MB of a 243 MB peak. Two arenas
keep that memory shared between the threads; Python's own allocator serves
small objects under the GIL either way.

`jacscale serve` calls `limit_malloc_arenas()` in every process that serves
(the one worker, the supervisor, each `--workers` worker) before it starts any
thread. A `MALLOC_ARENA_MAX` set in the environment wins: glibc has applied it
at process start and it is left alone. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
from collections.abc import Mapping

logger = logging.getLogger("jacscale.malloc")

ARENA_ENV = "MALLOC_ARENA_MAX"
SERVING_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def limit_malloc_arenas(
    env: Mapping[str, str] | None = None, arenas: int = SERVING_ARENAS
) -> int | None:
    """Cap this process's glibc malloc arenas at `arenas`; return the cap set.

    Returns None when nothing was changed: `MALLOC_ARENA_MAX` is in `env` (the
    process environment by default), or the C library is not glibc.
    """
    env = os.environ if env is None else env
    if env.get(ARENA_ENV) or platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(None)
    if libc.mallopt(ctypes.c_int(_M_ARENA_MAX), ctypes.c_int(arenas)) != 1:
        logger.warning("mallopt(M_ARENA_MAX, %d) failed; glibc's default arenas apply", arenas)
        return None
    return arenas
