"""The command line: load errors, the route table, `jac start`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from jacscale_core.testing import free_port
from tests.fixtures.servers import EXAMPLES, TEST_APPS

CLI = [sys.executable, "-m", "jacscale_core.cli"]


def test_compile_error_prints_diagnostics_with_location_and_fails() -> None:
    bad = TEST_APPS / "bad_syntax.jac"
    proc = subprocess.run(
        [*CLI, "serve", str(bad), "--port", str(free_port())],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert f"{bad}:2:" in proc.stderr
    assert "error" in proc.stderr.lower()


def test_missing_file_fails_clearly() -> None:
    proc = subprocess.run([*CLI, "serve", "nope.jac"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "nope.jac" in proc.stderr


def test_routes_command_prints_the_table(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*CLI, "routes", str(TEST_APPS / "kernel_app.jac"), "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    lines = proc.stdout.splitlines()
    assert any(line.split()[:2] == ["POST", "/walker/typed"] for line in lines)
    assert any(line.split()[:2] == ["POST", "/walker/typed/{node_id}"] for line in lines)
    assert any(line.split()[:2] == ["GET", "/items/{name}"] for line in lines)
    assert not any("hidden_walker" in line for line in lines)


def test_jac_start_serves_with_jacscale(tmp_path: Path) -> None:
    app = tmp_path / "app.jac"
    shutil.copy(EXAMPLES / "todo" / "app.jac", app)
    port = free_port()
    jac = Path(sys.executable).with_name("jac")
    proc = subprocess.Popen(
        [str(jac), "start", "app.jac", "--port", str(port), "--host", "127.0.0.1"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "JAC_DATA_PATH": str(tmp_path / "data")},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/walker/ping", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.3)
        assert r.status_code == 200 and r.json()["data"]["reports"] == ["pong"]
        assert (tmp_path / "data" / "jacscale.db").exists()
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode()
    assert "jacscale serving app.jac" in out


def test_reload_picks_up_a_changed_program(tmp_path: Path) -> None:
    app = tmp_path / "app.jac"
    shutil.copy(EXAMPLES / "todo" / "app.jac", app)
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", str(app), "--port", str(port), "--host", "127.0.0.1", "--reload",
         "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/walker/ping"

    def pong() -> object:
        try:
            return httpx.post(url, timeout=2).json()["data"]["reports"]
        except (httpx.HTTPError, ValueError):
            return None

    try:
        deadline = time.monotonic() + 90
        while pong() != ["pong"]:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.3)
        app.write_text(app.read_text().replace('report "pong";', 'report "pong again";'))
        deadline = time.monotonic() + 90
        while pong() != ["pong again"]:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
