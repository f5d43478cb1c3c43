"""Exactly once across workers and servers: real `jacscale serve` processes on one store.

Fires are counted from the lines the jobs append to files (each line: the pid
of the process that fired). Counts are ranges over a window: this checks that
each fire happens once, not how fast anything is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from jacscale_core.testing import free_port
from tests.fixtures.servers import TEST_APPS

APP = TEST_APPS / "scheduler_app.jac"
WINDOW_SECONDS = 6.0  # a 1 s job fires 5-7 times in it when each fire happens once
START_TIMEOUT = 90.0
PASSWORD = "correct horse battery"


class Server:
    """One `jacscale serve` process."""

    def __init__(self, proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
        self.proc, self.base, self.log = proc, base, log


@contextmanager
def serve(data: Path, env: dict[str, str], workers: int = 1) -> Iterator[Server]:
    """Start `jacscale serve` on a free port; stop it (if still running) afterwards."""
    port = free_port()
    log = data.parent / f"server-{port}.log"
    cmd = [sys.executable, "-m", "jacscale_core.cli", "serve", str(APP), "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers), "--data-dir", str(data)]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert proc.poll() is None, f"server exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"server not ready:\n{log.read_text()}"
            try:
                if httpx.get(server.base + "/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_for_lines(path: Path, count: int, timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = lines(path)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{path.name}: fewer than {count} fires after {timeout}s: {lines(path)}")


def fires_in_window(*paths: Path) -> list[int]:
    """How many lines each file gained during WINDOW_SECONDS."""
    before = [len(lines(p)) for p in paths]
    time.sleep(WINDOW_SECONDS)
    return [len(lines(p)) - b for p, b in zip(paths, before, strict=True)]


def token(base: str, email: str, register: bool) -> dict[str, str]:
    creds = {"email": email, "password": PASSWORD}
    with httpx.Client(base_url=base, timeout=30) as http:
        if register:
            assert http.post("/user/register", json=creds).status_code == 201
        answer = http.post("/user/login", json=creds)
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_a_one_second_job_fires_once_per_second_under_four_workers(tmp_path: Path) -> None:
    beats = tmp_path / "beats.txt"
    with serve(tmp_path / "data", {"BEAT_FILE": str(beats)}, workers=4):
        wait_for_lines(beats, 1)
        (count,) = fires_in_window(beats)
    assert 5 <= count <= 7, f"{count} fires in {WINDOW_SECONDS}s (4 workers would make ~24)"


def test_a_killed_leader_worker_hands_the_lease_over_and_fires_continue(tmp_path: Path) -> None:
    """SIGKILL the worker that fires: another worker takes the lease, the server stays up."""
    beats = tmp_path / "beats.txt"
    with serve(tmp_path / "data", {"BEAT_FILE": str(beats)}, workers=4) as server:
        wait_for_lines(beats, 1)
        leader = int(lines(beats)[-1])
        os.kill(leader, signal.SIGKILL)
        killed_at = len(lines(beats))
        wait_for_lines(beats, killed_at + 1, timeout=60)
        assert str(leader) not in lines(beats)[killed_at:]
        assert server.proc.poll() is None, "one dead worker must not stop the server"
        (count,) = fires_in_window(beats)
        assert 5 <= count <= 7, f"{count} fires in {WINDOW_SECONDS}s after the leader was killed"
        assert httpx.get(server.base + "/readyz", timeout=5).status_code == 200


def test_a_hung_leader_worker_is_replaced_and_does_not_fire_twice_when_it_wakes(
    tmp_path: Path,
) -> None:
    """SIGSTOP freezes the leading worker: the supervisor sees nothing, the lease expires."""
    beats = tmp_path / "beats.txt"
    with serve(tmp_path / "data", {"BEAT_FILE": str(beats)}, workers=3):
        wait_for_lines(beats, 1)
        leader = int(lines(beats)[-1])
        os.kill(leader, signal.SIGSTOP)
        try:
            frozen_at = len(lines(beats))
            wait_for_lines(beats, frozen_at + 1, timeout=60)
            assert str(leader) not in lines(beats)[frozen_at:]
        finally:
            os.kill(leader, signal.SIGCONT)
        # The old leader wakes up believing it leads: it must not fire again.
        (count,) = fires_in_window(beats)
        assert 5 <= count <= 7, f"{count} fires in {WINDOW_SECONDS}s after the old leader woke"


def test_two_servers_fire_each_job_once_and_a_killed_leader_is_replaced(tmp_path: Path) -> None:
    data = tmp_path / "data"
    beats, reminds = tmp_path / "beats.txt", tmp_path / "reminds.txt"
    env = {"BEAT_FILE": str(beats), "REMIND_FILE": str(reminds)}
    with serve(data, env) as one, serve(data, env) as two:
        user = token(one.base, "two@example.com", register=True)
        body = {"walker_or_function": "remind", "trigger": "interval", "interval": 1,
                "args": {"text": "x"}}  # fmt: skip
        created = httpx.post(one.base + "/jobs", json=body, headers=user, timeout=30)
        assert created.status_code == 201, created.text
        job_id = created.json()["data"]["job_id"]
        wait_for_lines(reminds, 1)
        wait_for_lines(beats, 1)
        beat_count, remind_count = fires_in_window(beats, reminds)
        assert 5 <= beat_count <= 7, f"static job: {beat_count} fires by two servers"
        assert 5 <= remind_count <= 7, f"dynamic job: {remind_count} fires by two servers"

        # Kill the leader without a chance to release its lease.
        leader_pid = int(lines(beats)[-1])
        servers = {one.proc.pid: one, two.proc.pid: two}
        assert leader_pid in servers, (leader_pid, list(servers))
        survivor = two if leader_pid == one.proc.pid else one
        os.kill(leader_pid, signal.SIGKILL)
        servers[leader_pid].proc.wait(timeout=30)
        killed_at = len(lines(beats))
        wait_for_lines(beats, killed_at + 1, timeout=60)
        taken_over = lines(beats)[killed_at:]
        assert set(taken_over) == {str(survivor.proc.pid)}
        beat_count, remind_count = fires_in_window(beats, reminds)
        assert 5 <= beat_count <= 7 and 5 <= remind_count <= 7, (beat_count, remind_count)
        seen = httpx.get(f"{survivor.base}/jobs/{job_id}", headers=token(survivor.base, "two@example.com",
                         register=False), timeout=30).json()["data"]  # fmt: skip
        assert seen["run_count"] >= 10 and seen["last_status"] == "succeeded"

    # A restart keeps the dynamic job, and it goes on firing.
    before = len(lines(reminds))
    with serve(data, env) as again:
        user = token(again.base, "two@example.com", register=False)
        listed = httpx.get(again.base + "/jobs", headers=user, timeout=30).json()["data"]["jobs"]
        assert [j["job_id"] for j in listed] == [job_id]
        wait_for_lines(reminds, before + 2)
