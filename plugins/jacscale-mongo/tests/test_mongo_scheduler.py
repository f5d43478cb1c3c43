"""Two servers with their own data directories share one MongoDB: each job fires once.

MongoDB is the wire-protocol TEST DOUBLE (jacscale_mongo/testing.py). The
lease and the jobs live in MongoDB (jacscale_mongo.jobs), so nothing local is
shared between the two servers.
"""

from __future__ import annotations

import secrets
import time
import uuid
from pathlib import Path

import httpx

from jacscale_core.testing import running_server

# The repository's example programs (data for these tests, nothing imported).
REPO = Path(__file__).resolve().parents[3]
TEST_APPS = REPO / "tests" / "apps"

APP = TEST_APPS / "scheduler_app.jac"
WINDOW_SECONDS = 6.0
PASSWORD = "correct horse battery"


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_for_lines(path: Path, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(lines(path)) < count:
        assert time.monotonic() < deadline, f"{path.name}: fewer than {count} fires"
        time.sleep(0.1)


def test_two_servers_on_one_mongodb_fire_each_job_once(mongo_server: str, tmp_path: Path) -> None:
    beats, reminds = tmp_path / "beats.txt", tmp_path / "reminds.txt"
    env = {
        "MONGODB_URI": f"{mongo_server.rstrip('/')}/sched_{uuid.uuid4().hex[:10]}",
        "JWT_SECRET": secrets.token_urlsafe(48),
        "JACSCALE_PASSWORD_HASH": "fast",
        "BEAT_FILE": str(beats),
        "REMIND_FILE": str(reminds),
    }
    with (
        running_server(APP, tmp_path / "one", env=env) as one,
        running_server(APP, tmp_path / "two", env=env) as two,
    ):
        creds = {"email": "m@example.com", "password": PASSWORD}
        assert httpx.post(one + "/user/register", json=creds, timeout=30).status_code == 201
        token = httpx.post(two + "/user/login", json=creds, timeout=30).json()["access_token"]
        user = {"Authorization": f"Bearer {token}"}
        body = {"walker_or_function": "remind", "trigger": "interval", "interval": 1}
        created = httpx.post(two + "/jobs", json=body, headers=user, timeout=30)
        assert created.status_code == 201, created.text
        job_id = created.json()["data"]["job_id"]
        # Both servers see the job: it is in MongoDB, not in either data directory.
        seen = httpx.get(f"{one}/jobs/{job_id}", headers=user, timeout=30)
        assert seen.status_code == 200, seen.text
        wait_for_lines(beats, 1)
        wait_for_lines(reminds, 1)
        before = (len(lines(beats)), len(lines(reminds)))
        time.sleep(WINDOW_SECONDS)
        counts = (len(lines(beats)) - before[0], len(lines(reminds)) - before[1])
    assert all(5 <= c <= 7 for c in counts), f"fires in {WINDOW_SECONDS}s (beat, remind): {counts}"
