"""The local container engine (docker or podman) that builds and pushes images.

Each command runs as a subprocess with a timeout; its output streams to the
user's terminal. Passwords go on stdin, never on the command line.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jacscale_core.deploy import DeployError

ENGINES = ("docker", "podman")
BUILD_TIMEOUT = 1800.0
PUSH_TIMEOUT = 900.0
LOGIN_TIMEOUT = 60.0


@dataclass(frozen=True)
class Engine:
    """A container engine executable."""

    name: str
    path: str


def find_engine(env: Mapping[str, str], dockerfile: Path) -> Engine:
    """The engine named by JACSCALE_CONTAINER_ENGINE, else docker, else podman.

    With none installed, the error says where the Dockerfile is, so it can be
    built elsewhere and deployed with K8s_IMAGE.
    """
    search = env.get("PATH", os.defpath)
    wanted = env.get("JACSCALE_CONTAINER_ENGINE", "").strip()
    for name in [wanted] if wanted else ENGINES:
        path = shutil.which(name, path=search)
        if path:
            return Engine(Path(name).name, path)
    looked = wanted or " or ".join(ENGINES)
    raise DeployError(
        f"no container engine found ({looked} not on PATH); the Dockerfile is at {dockerfile}: "
        "build and push it yourself, then deploy with K8s_IMAGE=<image>")


async def run(
    engine: Engine,
    args: Sequence[str],
    *,
    what: str,
    time_limit: float,
    env: Mapping[str, str],
    stdin: bytes | None = None,
) -> None:
    """Run `engine args...`; raise DeployError naming `what` on failure or timeout."""
    proc = await asyncio.create_subprocess_exec(
        engine.path, *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        env=dict(env),
    )
    try:
        await asyncio.wait_for(proc.communicate(stdin), time_limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise DeployError(f"{what} took more than {time_limit:g} s and was stopped") from None
    if proc.returncode != 0:
        raise DeployError(f"{what} failed ({engine.name} exited with {proc.returncode}; "
                          "its output is above)")
