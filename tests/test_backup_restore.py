"""`jacscale db backup | restore | inspect` against a real server under write load."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from jacscale_core.testing import TestApp, running_server
from tests.fixtures.servers import EXAMPLES

ENV = {"JACSCALE_PASSWORD_HASH": "fast"}
PASSWORD = "pw-123456"


def jacscale(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `jacscale` command; its completed process (output as text)."""
    return subprocess.run(
        [sys.executable, "-m", "jacscale_core.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **ENV, **(env or {})},
    )


def login(client: Any, email: str) -> dict[str, str]:
    """The Authorization header for an existing user."""
    r = client.post("/user/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A copy of the todo example."""
    target = tmp_path / "app" / "app.jac"
    target.parent.mkdir()
    shutil.copy(EXAMPLES / "todo" / "app.jac", target)
    return target


def test_backup_under_write_load_restores_every_acknowledged_write(
    app: Path, tmp_path: Path
) -> None:
    live, restored = tmp_path / "live", tmp_path / "restored"
    backup_file = tmp_path / "backups" / "snap.db"
    acked: list[str] = []
    stop = threading.Event()
    errors: list[str] = []
    with running_server(app, live, workers=2, env=ENV) as base:
        with httpx.Client(base_url=base, timeout=30) as client:
            r = client.post("/user/register", json={"email": "w@example.com", "password": PASSWORD})
            assert r.status_code == 201, r.text
            headers = login(client, "w@example.com")

        def writer() -> None:
            with httpx.Client(base_url=base, timeout=30) as c:
                n = 0
                while not stop.is_set():
                    r = c.post("/walker/add_todo", json={"title": f"t{n}"}, headers=headers)
                    if r.status_code != 200:
                        errors.append(r.text)
                        return
                    acked.append(f"t{n}")
                    n += 1

        threads = [threading.Thread(target=writer) for _ in range(1)]
        for t in threads:
            t.start()
        while len(acked) < 30 and not errors:
            stop.wait(0.05)
        before = list(acked)  # acknowledged before the backup began
        result = jacscale("db", "backup", str(app), str(backup_file), "--data-dir", str(live))
        during = len(acked)
        while len(acked) < during + 10 and not errors:  # writes go on after the backup
            stop.wait(0.05)
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert result.returncode == 0, result.stderr
    assert "backed up" in result.stdout
    assert backup_file.exists() and not Path(str(backup_file) + "-wal").exists()

    result = jacscale("db", "restore", str(app), str(backup_file), "--data-dir", str(restored))
    assert result.returncode == 0, result.stderr
    with TestApp(app, restored, env=ENV) as client:
        headers = login(client, "w@example.com")  # the user came back too
        listed = client.post("/walker/list_todos", headers=headers).json()["data"]["reports"][0]
    titles = {t["title"] for t in listed}
    assert set(before) <= titles
    assert titles <= set(acked)  # nothing invented
    assert len(titles) < len(acked)  # and the copy is of one moment, not of the end

    # The restored store now holds data: a second restore must be forced.
    again = jacscale("db", "restore", str(app), str(backup_file), "--data-dir", str(restored))
    assert again.returncode == 1
    assert "already holds data; pass --force" in again.stderr
    forced = jacscale(
        "db", "restore", str(app), str(backup_file), "--data-dir", str(restored), "--force"
    )
    assert forced.returncode == 0, forced.stderr


def test_backup_refuses_to_overwrite_and_restore_refuses_a_foreign_file(
    app: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with TestApp(app, data, env=ENV) as client:
        assert client.post("/walker/increment").status_code == 200
    existing = tmp_path / "exists.db"
    existing.write_text("keep me")
    result = jacscale("db", "backup", str(app), str(existing), "--data-dir", str(data))
    assert result.returncode == 1 and "exists; choose a new file name" in result.stderr
    assert existing.read_text() == "keep me"
    result = jacscale("db", "restore", str(app), str(existing), "--data-dir", str(tmp_path / "new"))
    assert result.returncode == 1 and "not a readable SQLite database" in result.stderr
    result = jacscale(
        "db", "restore", str(app), str(tmp_path / "nope.db"), "--data-dir", str(tmp_path / "new")
    )
    assert result.returncode == 1 and "no backup file" in result.stderr


def test_inspect_counts_types_quarantined_and_orphans(app: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with TestApp(app, data, env=ENV) as client:
        client.post("/user/register", json={"email": "i@example.com", "password": PASSWORD})
        headers = login(client, "i@example.com")
        for title in ("a", "b", "c"):
            assert (
                client.post("/walker/add_todo", json={"title": title}, headers=headers).status_code
                == 200
            )
        assert client.post("/walker/increment").status_code == 200
    renamed = tmp_path / "v2" / "app.jac"
    renamed.parent.mkdir()
    renamed.write_text(
        app.read_text()
        .replace("node Counter", "node Tally")
        .replace("Counter(", "Tally(")
        .replace("?:Counter", "?:Tally")
    )
    result = jacscale("db", "inspect", str(renamed), "--json", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["types"]["app.Todo"]["count"] == 3
    assert report["quarantined"]["app.Counter"]["count"] == 1
    assert report["by_kind"] == {"edge": 4, "node": 7}  # 3 roots (system, guest, user) + 4 nodes
    assert report["orphans"] == {"nodes": 0, "dangling_edges": 0}
    assert report["sizes"]["files"]["jacscale.db"] > 0
    text = jacscale("db", "inspect", str(renamed), "--data-dir", str(data))
    assert "app.Counter" in text.stdout and "quarantined" in text.stdout


def test_backup_of_a_mongo_store_points_at_mongodump(
    app: Path, tmp_path: Path, mongo_server: str
) -> None:
    env = {"MONGODB_URI": f"{mongo_server.rstrip('/')}/backup_test"}
    result = jacscale("db", "backup", str(app), str(tmp_path / "x.db"), env=env)
    assert result.returncode == 1
    assert "mongodump" in result.stderr and not (tmp_path / "x.db").exists()
