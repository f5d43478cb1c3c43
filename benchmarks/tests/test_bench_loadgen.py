"""wrk (with the Lua scripts) and ws_load.py against real local servers."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.loadgen import HttpRequest, RunResult, WsPlan, run_wrk, run_ws, wrk_result
from harness.servers import ServerProcess, ServerSpec, free_port

BENCH_DIR = Path(__file__).resolve().parent.parent


def start(tmp_path: Path, cmd: list[str], port: int, probe: str) -> ServerProcess:
    spec = ServerSpec("t", "test server", cmd, BENCH_DIR, {}, port, probe, start_timeout=30)
    proc = ServerProcess(spec, tmp_path / "server.log")
    proc.start()
    return proc


@pytest.fixture
def ceiling(tmp_path: Path) -> Iterator[ServerProcess]:
    port = free_port()
    proc = start(
        tmp_path,
        [sys.executable, str(BENCH_DIR / "ceiling_app.py"), "--port", str(port)],
        port,
        "/ceiling",
    )
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def test_wrk_summary_counts_non_2xx_as_errors() -> None:
    r = wrk_result(
        {
            "requests": 1000,
            "duration_us": 2_000_000,
            "bytes": 1,
            "errors": {"connect": 0, "read": 1, "write": 0, "status": 9, "timeout": 0},
            "latency_us": {"p50": 1500, "p90": 3000, "p99": 9000, "max": 1, "mean": 1.0},
        }
    )
    assert (r.requests, r.errors, r.rps) == (991, 10, 495.5)
    assert (r.p50_ms, r.p90_ms, r.p99_ms) == (1.5, 3.0, 9.0)
    assert r.valid is True
    assert RunResult(10, 1, 1, 1, 90, 10, 1).valid is False  # 10% failed
    assert RunResult(0, 0, 0, 0, 0, 0, 1).valid is False  # nothing completed


needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk not installed (benchmarks/run.py installs it)"
)


@needs_wrk
def test_wrk_post_script_against_the_ceiling(ceiling: ServerProcess) -> None:
    req = HttpRequest("POST", "/ceiling", b'{"a": 1}', {"X-Test": "1"})
    r = run_wrk(
        shutil.which("wrk") or "wrk",
        ceiling.spec.base_url,
        req,
        connections=2,
        duration=1,
        cpus=None,
    )
    assert r.requests > 10 and r.errors == 0
    assert 0 < r.p50_ms <= r.p90_ms <= r.p99_ms


@needs_wrk
def test_wrk_errors_show_up_for_a_wrong_route(ceiling: ServerProcess) -> None:
    req = HttpRequest("POST", "/nope", b"{}")
    r = run_wrk(
        shutil.which("wrk") or "wrk",
        ceiling.spec.base_url,
        req,
        connections=1,
        duration=1,
        cpus=None,
    )
    assert r.requests == 0 and r.errors > 0 and not r.valid


@needs_wrk
def test_wrk_rotate_script_cycles_paths(ceiling: ServerProcess) -> None:
    req = HttpRequest("POST", "/ceiling", b"{}", paths=["/ceiling", "/ceiling?x=1"])
    r = run_wrk(
        shutil.which("wrk") or "wrk",
        ceiling.spec.base_url,
        req,
        connections=1,
        duration=1,
        cpus=None,
    )
    assert r.requests > 5 and r.errors == 0


@pytest.fixture
def ws_server(tmp_path: Path) -> Iterator[ServerProcess]:
    port = free_port()
    app = Path(__file__).resolve().parent / "ws_test_app.py"
    proc = start(tmp_path, [sys.executable, str(app), str(port)], port, "/")
    # The test app has no HTTP route: wait until its port is open instead.
    import socket
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield proc
    finally:
        proc.stop()


def test_ws_echo_and_broadcast(ws_server: ServerProcess) -> None:
    base = ws_server.spec.base_url
    echo, failure = run_ws(
        base,
        WsPlan("/ws/Echo", "echo", 3, {"message": "x"}),
        warmup=0.3,
        runs=2,
        duration=0.5,
        cpus=None,
    )
    assert failure is None
    assert len(echo) == 2 and all(r.requests > 10 and r.errors == 0 for r in echo)
    assert all(r.client_cpu_pct is not None for r in echo)
    bcast, failure = run_ws(
        base,
        WsPlan("/ws/Room", "broadcast", 4, {"sender": "t"}),
        warmup=0.3,
        runs=1,
        duration=0.5,
        cpus=None,
    )
    assert failure is None
    assert bcast[0].requests > 5 and bcast[0].errors == 0
