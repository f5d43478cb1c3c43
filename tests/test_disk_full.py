"""A small, then full, data volume: the SQLite store keeps its WAL small, a full disk
answers 507 (not 500) and makes /readyz false, and writes work again once space
is freed, without a restart.

The data directory is a real 5 MB tmpfs (`mount -t tmpfs`), which needs root;
where mounting is not allowed the test says so and is skipped.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from jacscale_core.testing import TestApp

APP = """
node Note { has text: str; }

walker :pub add_note {
    has text: str;
    can go with Root entry { here ++> Note(text=self.text); report "ok"; }
}

walker :pub count_notes {
    can go with Root entry { report len([-->(?:Note)]); }
}
"""


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "volume"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 5 MB tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> Path:
    """Take every free byte of the volume with one file; return it."""
    ballast = directory / "ballast"
    with ballast.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError:
            pass
        # The last partial blocks too.
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError:
            pass
    return ballast


def test_a_small_volume_never_wedges_the_store(small_volume: Path, tmp_path: Path) -> None:
    app = tmp_path / "app.jac"
    app.write_text(APP)
    data = small_volume / "data"
    with TestApp(app, data) as c:
        # Many more tiny writes than filled the WAL of a 5 MB volume before.
        for i in range(400):
            r = c.post("/walker/add_note", json={"text": f"n{i}"})
            assert r.status_code == 200, (i, r.text)
        wal = Path(f"{data}/jacscale.db-wal")
        assert not wal.exists() or wal.stat().st_size < 3 * 1024 * 1024
        assert c.get("/readyz").status_code == 200

        # The WAL file keeps its size for reuse after a checkpoint: empty it first,
        # so the next write needs new disk blocks, then take every free one.
        assert c.app.state.jacscale.store.checkpoint()
        ballast = _fill(small_volume)
        refused = [c.post("/walker/add_note", json={"text": "lost"}) for _ in range(3)]
        for r in refused:
            assert r.status_code == 507, r.text
            assert r.json()["error"]["code"] == "INSUFFICIENT_STORAGE"
            assert "volume is full" in r.json()["error"]["message"]
        ready = c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["store"]["ok"] is False
        assert "disk full" in ready.json()["checks"]["store"]["detail"]
        # Reads still work.
        assert c.post("/walker/count_notes").json()["data"]["reports"] == [400]

        ballast.unlink()  # the operator frees space: no restart needed
        assert c.get("/readyz").status_code == 200
        assert c.post("/walker/add_note", json={"text": "back"}).status_code == 200
        assert c.post("/walker/count_notes").json()["data"]["reports"] == [401]
    with TestApp(app, data) as c:  # and after a restart
        assert c.post("/walker/add_note", json={"text": "again"}).status_code == 200
        assert c.post("/walker/count_notes").json()["data"]["reports"] == [402]
    os.sync()
