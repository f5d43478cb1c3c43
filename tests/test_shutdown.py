"""Graceful shutdown: /readyz false first, in-flight requests finish, writes are kept."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from jacscale_core import shutdown
from jacscale_core.plugins import hookimpl, make_plugin_manager
from jacscale_core.testing import TestApp, free_port

APP = """
import time;

node Note { has text: str; }

walker :pub slow_write {
    has text: str;
    has seconds: float = 1.0;
    can go with Root entry {
        time.sleep(self.seconds);
        here ++> Note(text=self.text);
        report "written";
    }
}

walker :pub notes {
    can go with Root entry { report [n.text for n in [-->(?:Note)]]; }
}
"""

# The command production runs; `--server` picks hypercorn or uvicorn.
SERVE = [sys.executable, "-m", "jacscale_core.cli", "serve"]

DRAIN = 2.0
WRITE_SECONDS = 3.0


def _start(
    tmp_path: Path, workers: int, server: str | None = None, drain: float | None = DRAIN
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """`jacscale serve` (the default server unless `server`) on a fresh app and data dir."""
    app_dir = tmp_path / "app"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "app.jac").write_text(APP)
    (app_dir / "jac.toml").write_text("[plugins.scale.server]\nshutdown_timeout_seconds = 15\n")
    port = free_port()
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    cmd = [*SERVE, *(["--server", server] if server else []), str(app_dir / "app.jac"),
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
           "--data-dir", str(data)]  # fmt: skip
    log = (tmp_path / "server.log").open("wb")
    env = {k: v for k, v in os.environ.items() if k != shutdown.DRAIN_ENV}
    if drain is not None:
        env[shutdown.DRAIN_ENV] = str(drain)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((tmp_path / "server.log").read_text())
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return proc, base, app_dir / "app.jac"
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server not ready:\n" + (tmp_path / "server.log").read_text())


def _graceful_stop(tmp_path: Path, proc: subprocess.Popen[bytes], base: str, app: Path) -> None:
    in_flight: dict[str, Any] = {}

    def slow() -> None:
        try:
            in_flight["response"] = httpx.post(
                base + "/walker/slow_write",
                json={"text": "kept", "seconds": WRITE_SECONDS},
                timeout=60,
            )
        except httpx.HTTPError as exc:  # recorded, asserted below
            in_flight["error"] = exc

    try:
        writer = threading.Thread(target=slow)
        writer.start()
        time.sleep(0.5)  # the request is running
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # 1. Readiness turns false first, while the server still answers.
        ready_status = None
        while time.monotonic() - signalled < DRAIN - 0.5:
            ready_status = httpx.get(base + "/readyz", timeout=2).status_code
            if ready_status == 503:
                break
            time.sleep(0.05)
        assert ready_status == 503
        assert httpx.get(base + "/readyz", timeout=2).json()["ready"] is False
        assert httpx.get(base + "/healthz", timeout=2).status_code == 200
        # 2. The in-flight request finishes, after the drain, with its answer.
        writer.join(timeout=60)
        assert "error" not in in_flight, in_flight.get("error")
        assert in_flight["response"].status_code == 200
        assert in_flight["response"].json()["data"]["reports"] == ["written"]
        # 3. New connections are refused (a worker that came up late may still be
        # draining for a moment), and the process exits cleanly in time.
        refused_by = time.monotonic() + DRAIN + 15
        while time.monotonic() < refused_by:
            try:
                httpx.get(base + "/healthz", timeout=2)
            except httpx.HTTPError:
                break
            time.sleep(0.1)
        with pytest.raises(httpx.HTTPError):
            httpx.get(base + "/healthz", timeout=2)
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - signalled < DRAIN + WRITE_SECONDS + 15
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    # 4. The write made during shutdown is in the store.
    with TestApp(app, tmp_path / "data") as client:
        assert client.post("/walker/notes").json()["data"]["reports"] == [["kept"]]
    log = (tmp_path / "server.log").read_text()
    assert "readiness is false" in log


@pytest.mark.parametrize(
    ("server", "workers"), [("hypercorn", 1), ("hypercorn", 2), ("uvicorn", 1), ("uvicorn", 2)]
)
def test_jacscale_serve_turns_readiness_false_first_then_drains(
    tmp_path: Path, server: str, workers: int
) -> None:
    proc, base, app = _start(tmp_path, workers, server)
    _graceful_stop(tmp_path, proc, base, app)


class _Recorder:
    def __init__(self, fail: bool = False, slow: bool = False) -> None:
        self.seen_ready: list[bool] = []
        self.fail = fail
        self.slow = slow

    @hookimpl
    async def jacscale_draining(self, app: Any) -> None:
        self.seen_ready.append(app.ready)
        if self.slow:
            await asyncio.sleep(60)
        if self.fail:
            raise RuntimeError("plugin broke")


def _ctx(*plugins: object) -> Any:
    pm = make_plugin_manager({"JACSCALE_DISABLE_PLUGIN_AUTOLOAD": "1"})
    for plugin in plugins:
        pm.register(plugin)
    return SimpleNamespace(
        pm=pm, ready=True, state={}, settings=SimpleNamespace(server=SimpleNamespace())
    )


def test_begin_shutdown_turns_readiness_false_then_tells_plugins_then_drains(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    first, broken = _Recorder(), _Recorder(fail=True)
    ctx = _ctx(first, broken)
    started = time.monotonic()
    asyncio.run(shutdown.begin_shutdown(ctx, 0.3))
    assert ctx.ready is False
    assert first.seen_ready == [False] and broken.seen_ready == [False]
    assert time.monotonic() - started >= 0.3
    assert (
        "failed" in caplog.text and "plugin broke" in caplog.text
    )  # logged, and the shutdown went on

    monkeypatch.setattr(shutdown, "DRAINING_TIMEOUT_SECONDS", 0.2)
    stuck = _ctx(_Recorder(slow=True))
    started = time.monotonic()
    asyncio.run(shutdown.begin_shutdown(stuck, 0))
    assert time.monotonic() - started < 5
    assert "did not finish" in caplog.text


def test_a_second_signal_ends_the_drain() -> None:
    async def scenario() -> float:
        again = asyncio.Event()
        asyncio.get_running_loop().call_later(0.2, again.set)
        started = time.monotonic()
        await shutdown.begin_shutdown(_ctx(), 30, again)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 5


def test_drain_seconds_setting() -> None:
    assert shutdown.drain_seconds(None, {}) == shutdown.DEFAULT_DRAIN_SECONDS > 0
    assert shutdown.drain_seconds(None, {shutdown.DRAIN_ENV: "2.5"}) == 2.5
    for bad in ("soon", "-1"):
        with pytest.raises(ValueError, match=shutdown.DRAIN_ENV):
            shutdown.drain_seconds(None, {shutdown.DRAIN_ENV: bad})
