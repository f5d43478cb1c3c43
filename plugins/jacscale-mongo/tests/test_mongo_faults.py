"""MongoDB faults: a committed write is never answered with an error, and lost
system/guest roots come back without a restart.

The server is the wire-protocol test double (jacscale_mongo.testing); the
change-log outage is its `failCommand` fail point on inserts into
`jacscale_changes`, the way mongod's own fail point makes a command fail.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from jacscale_mongo.testing import FakeMongoServer
from pymongo import MongoClient

from jacscale_core.memory import GUEST_ROOT_ID, SYSTEM_ROOT_ID
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


def _setup(tmp_path: Path, server: FakeMongoServer) -> tuple[Path, dict[str, str], Any]:
    app = tmp_path / "app.jac"
    app.write_text(APP)
    name = f"faults_{uuid.uuid4().hex[:8]}"
    uri = f"{server.url.rstrip('/')}/{name}?serverSelectionTimeoutMS=2000"
    db = MongoClient(uri, serverSelectionTimeoutMS=2000)[name]
    return app, {"MONGODB_URI": uri, "JACSCALE_DISABLE_PLUGINS": "redis"}, db


def _fail_change_log(db: Any, mode: Any) -> None:
    db.client.admin.command(
        "configureFailPoint", "failCommand", mode=mode,
        data={"failCommands": ["insert"], "errorCode": 91,
              "namespace": f"{db.name}.jacscale_changes"},
    )  # fmt: skip


def test_a_write_that_landed_is_answered_200_when_the_change_log_fails(
    fresh_mongo: FakeMongoServer, tmp_path: Path
) -> None:
    app, env, db = _setup(tmp_path, fresh_mongo)
    with TestApp(app, tmp_path / "data", env=env) as c:
        assert c.post("/walker/add_note", json={"text": "before"}).status_code == 200
        entries_before = db.jacscale_changes.count_documents({})
        _fail_change_log(db, "alwaysOn")
        answers = [c.post("/walker/add_note", json={"text": f"w{i}"}) for i in range(5)]
        assert [r.status_code for r in answers] == [200] * 5, answers[0].text
        # Each of them is in MongoDB, once: a client has no reason to retry.
        texts = [d for d in db.jacscale_anchors.find({"kind": "node", "is_root": False})]
        assert len(texts) == 6
        assert db.jacscale_changes.count_documents({}) == entries_before
        ready = c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["mongodb_changelog"]["ok"] is False
        _fail_change_log(db, "off")
        # The ids are published at the next poll, and readiness comes back.
        assert c.post("/walker/count_notes").json()["data"]["reports"] == [6]
        deadline = time.monotonic() + 10
        while c.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.get("/readyz").status_code == 200
        assert db.jacscale_changes.count_documents({}) > entries_before


def test_lost_roots_are_restored_without_a_restart(fresh_mongo: FakeMongoServer, tmp_path: Path) -> None:
    app, env, db = _setup(tmp_path, fresh_mongo)
    with TestApp(app, tmp_path / "data", env=env) as c:
        assert c.post("/walker/add_note", json={"text": "a"}).status_code == 200
        # The database loses everything (restored from an empty backup, say).
        for coll in db.list_collection_names():
            db.drop_collection(coll)
        assert db.jacscale_anchors.count_documents({"_id": SYSTEM_ROOT_ID.bytes}) == 0
        ready = c.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["roots"]["detail"] == "system and guest roots restored"
        assert db.jacscale_anchors.count_documents({"_id": SYSTEM_ROOT_ID.bytes}) == 1
        assert db.jacscale_anchors.count_documents({"_id": GUEST_ROOT_ID.bytes}) == 1
        # And requests work again (the guest's graph starts empty).
        assert c.post("/walker/add_note", json={"text": "b"}).status_code == 200
        assert c.post("/walker/count_notes").json()["data"]["reports"] == [1]
