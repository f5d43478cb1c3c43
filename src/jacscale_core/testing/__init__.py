"""Helpers for testing Jac programs and plugins (used by jacscale's own suite too).

For plugin authors: `store_contract` (the graph-store contract suite: star-import
it into a test module that defines a `store_factory` fixture), `header_auth`
(`HeaderAuth`, an authentication plugin for tests) and `memory_docs`
(`MemoryDocs`, an in-memory DocumentStore), `served` (`sign_up`, `reports`, and
`write_through_outage`: the store taken down and back under concurrent writes). The scheduler's job-store contract
lives with the scheduler extension (its `testing` module), beside the types it checks.

- `TestApp(app_path, data_dir, env=...)`: in-process, a Starlette TestClient with
  the lifespan run (start-up and shutdown happen on enter and exit).
- `running_server(app_path, data_dir, workers=1, env=...)`: the real thing, the
  `jacscale serve` command on a free loopback port, for socket and multi-worker tests.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from starlette.testclient import TestClient

from jacscale_core.app import create_app


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _environ(env: Mapping[str, str] | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def TestApp(  # noqa: N802 - reads like a class at the call site
    app_path: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    plugins: Sequence[object] = (),
    **client_kwargs: Any,
) -> Iterator[TestClient]:
    """An in-process client for the app at `app_path`, storing data in `data_dir`."""
    with _environ(env):
        app = create_app(app_path, data_dir=data_dir, plugins=plugins)
        with TestClient(app, raise_server_exceptions=False, **client_kwargs) as client:
            yield client


@contextmanager
def running_server(
    app_path: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    extra_args: list[str] | None = None,
    start_timeout: float = 60.0,
) -> Iterator[str]:
    """Run `jacscale serve` on a free port; yield its base URL; stop it afterwards."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "jacscale_core.cli", "serve", str(app_path),
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--data-dir", str(data_dir), *(extra_args or []),
    ]  # fmt: skip
    log_path = Path(data_dir) / f"server-{port}.log"
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base, proc, log_path, start_timeout)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{log_path.read_text()}")
        try:
            if httpx.get(base + "/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout}s:\n{log_path.read_text()}")
