"""/readyz reflects whether the store can write and whether the system/guest roots
exist, and puts lost roots back without a restart (SQLite; MongoDB in its plugin)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from jacscale_core.memory import GUEST_ROOT_ID, SYSTEM_ROOT_ID
from jacscale_core.testing import TestApp

APP = """
node Note { has text: str; }

walker :pub add_note {
    has text: str;
    can go with Root entry { here ++> Note(text=self.text); report "ok"; }
}
"""


def _roots(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        marks = (SYSTEM_ROOT_ID.bytes, GUEST_ROOT_ID.bytes)
        return int(conn.execute("SELECT COUNT(*) FROM anchors WHERE id IN (?, ?)", marks).fetchone()[0])


def test_readiness_restores_lost_roots(tmp_path: Path) -> None:
    app = tmp_path / "app.jac"
    app.write_text(APP)
    data = tmp_path / "data"
    with TestApp(app, data) as c:
        ready = c.get("/readyz").json()
        assert ready["ready"] is True
        assert ready["checks"]["store"]["ok"] and ready["checks"]["roots"]["ok"]
        assert ready["checks"]["roots"]["detail"] == "system and guest roots present"
        with sqlite3.connect(data / "jacscale.db") as conn:  # another process loses them
            conn.execute("DELETE FROM anchors WHERE is_root = 1")
        assert _roots(data / "jacscale.db") == 0
        ready = c.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["roots"]["detail"] == "system and guest roots restored"
        assert _roots(data / "jacscale.db") == 2
        assert c.post("/walker/add_note", json={"text": "a"}).status_code == 200


def test_a_request_that_finds_the_roots_gone_restores_them(tmp_path: Path) -> None:
    app = tmp_path / "app.jac"
    app.write_text(APP)
    data = tmp_path / "data"
    with TestApp(app, data) as c:
        with sqlite3.connect(data / "jacscale.db") as conn:
            conn.execute("DELETE FROM anchors WHERE is_root = 1")
        c.app.state.jacscale.executor.tier.cache.clear()  # as after a restart
        r = c.post("/walker/add_note", json={"text": "a"})
        assert r.status_code == 200, r.text
        assert _roots(data / "jacscale.db") == 2
