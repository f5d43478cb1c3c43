"""The worker supervisor under faults, and the SIGTERM drain on kept-alive connections."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from hypercorn.config import Config

from jacscale_core.asgi import WorkerSpec
from jacscale_core.server import worker
from jacscale_core.supervisor import run_workers
from jacscale_core.testing import free_port
from tests.test_shutdown import _start


def _workers(supervisor: int) -> set[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    out = set()
    for pid in map(int, children):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            out.add(pid)
    return out


def test_a_killed_worker_is_replaced_and_the_others_keep_serving(tmp_path: Path) -> None:
    proc, base, _ = _start(tmp_path, workers=4)
    stop = threading.Event()
    answered_after_kill: list[int] = []
    killed_at: list[float] = []

    def load() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    r = client.post(base + "/walker/notes")
                except httpx.HTTPError:
                    continue  # a request on the killed worker's connection
                if killed_at and r.status_code == 200:
                    answered_after_kill.append(1)

    try:
        deadline = time.monotonic() + 60
        while len(_workers(proc.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        before = _workers(proc.pid)
        assert len(before) == 4
        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        victim = sorted(before)[1]
        os.kill(victim, signal.SIGKILL)
        killed_at.append(time.monotonic())
        # The server never stops answering, and a fourth worker comes back.
        replaced: set[int] = set()
        while time.monotonic() - killed_at[0] < 60:
            now = _workers(proc.pid)
            replaced = now - before
            if replaced and len(now) == 4:
                break
            assert proc.poll() is None, "the supervisor exited"
            time.sleep(0.1)
        assert replaced and victim not in _workers(proc.pid)
        (replacement,) = replaced
        # The replacement serves too (readiness through it, eventually, among the four).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if httpx.get(base + "/readyz", timeout=5).status_code == 200 and len(answered_after_kill) > 20:
                break
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(30)
        assert len(answered_after_kill) > 20
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    log = (tmp_path / "server.log").read_text()
    assert f"worker {victim} exited with code -9" in log
    assert "starting a replacement" in log
    assert f"worker {replacement} started to replace an exited one" in log


def test_workers_that_keep_dying_at_start_up_stop_the_server(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config()
    config.bind = [f"127.0.0.1:{free_port()}"]
    config.workers = 2
    spec = WorkerSpec(str(tmp_path / "no_such_app.jac"))  # every worker fails to load it
    started = time.monotonic()
    code = run_workers(config, spec, target=worker, startup_seconds=30, max_startup_failures=3)
    assert code != 0
    assert time.monotonic() - started < 120
    assert "start-up failures in a row: stopping the server" in caplog.text
    assert caplog.text.count("starting a replacement") == 2


def test_sigterm_answers_every_request_sent_on_kept_alive_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default drain (no JACSCALE_SHUTDOWN_DRAIN_SECONDS), one process.
    proc, base, _ = _start(tmp_path, workers=1, drain=None)
    failures: list[str] = []
    answered: list[int] = []
    told_to_close = threading.Event()

    def client_loop() -> None:
        # A well-behaved kept-alive client: it sends until the server says
        # `Connection: close`, then goes elsewhere (a load balancer would).
        with httpx.Client(timeout=30) as client:
            while True:
                try:
                    r = client.post(base + "/walker/notes")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    return
                answered.append(r.status_code)
                if r.headers.get("connection", "").lower() == "close":
                    told_to_close.set()
                    return

    try:
        threads = [threading.Thread(target=client_loop) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        assert failures == []
        assert told_to_close.is_set()
        assert answered and set(answered) == {200}
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
