"""Process handling: ports, process trees, memory sampling, start-up failures."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness.servers import (
    RssMonitor,
    ServerError,
    ServerProcess,
    ServerSpec,
    free_port,
    owns_port,
    pinned,
    process_tree,
)


def test_owns_port_tells_our_listener_from_others() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert owns_port(os.getpid(), port)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert not owns_port(child.pid, port)
        finally:
            child.kill()
            child.wait()
    assert not owns_port(os.getpid(), free_port())


def test_process_tree_and_rss_monitor() -> None:
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); time.sleep(30)"
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 10
        while len(process_tree(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(process_tree(parent.pid)) == 2
        monitor = RssMonitor(parent.pid, interval=0.05)
        monitor.reset()
        time.sleep(0.2)
        assert monitor.peak_mb() > 5  # two Python interpreters
        assert monitor.hwm_mb() >= monitor.peak_mb() * 0.5
        monitor.stop()
    finally:
        for pid in process_tree(parent.pid)[::-1]:
            os.kill(pid, 9)
        parent.wait()


def test_pinned_prefixes_taskset_only_with_cpus() -> None:
    assert pinned(["x"], None) == ["x"]
    out = pinned(["x"], [1])
    assert out[-1] == "x" and (out == ["x"] or out[:3] == ["taskset", "-c", "1"])


def test_a_server_that_exits_fails_fast_with_its_log(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "print('boom: bad config'); raise SystemExit(3)"]
    spec = ServerSpec("t", "broken", cmd, tmp_path, {}, free_port(), "/", start_timeout=20)
    proc = ServerProcess(spec, tmp_path / "log")
    proc.start()
    started = time.monotonic()
    with pytest.raises(ServerError, match="exited with code 3") as info:
        proc.wait_ready()
    assert "boom: bad config" in str(info.value)
    assert time.monotonic() - started < 10
    proc.stop()


def test_a_server_that_never_answers_times_out(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "import time; time.sleep(60)"]
    spec = ServerSpec("t", "silent", cmd, tmp_path, {}, free_port(), "/", start_timeout=1.5)
    proc = ServerProcess(spec, tmp_path / "log")
    proc.start()
    try:
        with pytest.raises(ServerError, match="not ready after"):
            proc.wait_ready()
    finally:
        proc.stop()
    assert not proc.alive()
