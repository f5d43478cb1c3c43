"""`jacscale import-jac-scale`: data made by jac-scale 0.2.31 itself, moved over.

The end-to-end test runs jac-scale 0.2.31 (its own venv, benchmarks/.venv-jacscale,
created on first use: a few minutes on a fresh machine) on the todo example,
signs users up and adds todos through its API, stops it, imports its project
folder, and then logs in to jacscale with the old passwords and lists the same
todos with the same walker. The same data, put into the MongoDB test server in
jac-scale's MongoDB layout, is imported from a mongodb:// URI.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from jacscale_core.testing import TestApp, free_port
from tests.fixtures.servers import EXAMPLES, ROOT

PASSWORD = "old-pass-123"
ENV = {"JACSCALE_PASSWORD_HASH": "fast"}
START_TIMEOUT = 900.0  # a fresh machine compiles jac-scale's own sources on first start


def jac_scale_python() -> Path:
    """jac-scale 0.2.31's Python, installing it into benchmarks/.venv-jacscale if needed."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from harness import environment
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return Path(environment.ensure_jacscale_venv())


def jacscale(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `jacscale` command; its completed process (output as text)."""
    return subprocess.run(
        [sys.executable, "-m", "jacscale_core.cli", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **ENV, **(env or {})},
    )  # fmt: skip


def old_call(
    client: httpx.Client, path: str, body: dict[str, Any], token: str | None = None
) -> Any:
    """Call jac-scale; its `data` (fails the test on an error)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = client.post(path, json=body, headers=headers)
    assert r.status_code in (200, 201), r.text
    return r.json()["data"]


@dataclass
class OldProject:
    """A jac-scale 0.2.31 project folder and what its walkers answered at the end."""

    folder: Path
    listed: dict[str, list[tuple[str, str]]]  # email -> (node id, title) in listing order
    toggled: str  # the id of the todo alice marked done


@pytest.fixture(scope="module")
def jac_scale_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OldProject]:
    """A jac-scale 0.2.31 project folder holding two users and their todos."""
    python = jac_scale_python()
    folder = tmp_path_factory.mktemp("jac-scale-project")
    shutil.copy(EXAMPLES / "todo" / "app.jac", folder / "app.jac")
    port = free_port()
    listed: dict[str, list[tuple[str, str]]] = {}
    todo_id = ""
    log_path = folder / "jac-scale.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(python), str(ROOT / "benchmarks" / "jacscale_launch.py"), "app.jac", str(port)],
            cwd=folder, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                deadline = time.monotonic() + START_TIMEOUT
                while True:
                    assert proc.poll() is None, log_path.read_text()
                    assert time.monotonic() < deadline, log_path.read_text()
                    try:
                        if client.post("/walker/ping", json={}).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(1)
                for email, titles in (
                    ("alice@example.com", ["milk", "eggs"]),
                    ("bob@example.com", ["bread"]),
                ):
                    old_call(client, "/user/register", {
                        "identities": [{"type": "email", "value": email}],
                        "credential": {"type": "password", "password": PASSWORD},
                    })  # fmt: skip
                    token = old_call(client, "/user/login", {
                        "identity": {"type": "email", "value": email},
                        "credential": {"type": "password", "password": PASSWORD},
                    })["token"]  # fmt: skip
                    for title in titles:
                        old_call(client, "/walker/add_todo", {"title": title}, token)
                    if email.startswith("alice"):
                        todo_id = old_call(client, "/walker/list_todos", {}, token)["reports"][0][
                            0
                        ]["_jac_id"]
                        old_call(client, f"/walker/toggle_todo/{todo_id}", {}, token)
                    listed[email] = [
                        (t["_jac_id"], t["title"])
                        for t in old_call(client, "/walker/list_todos", {}, token)["reports"][0]
                    ]
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    assert sorted(t for _, t in listed["alice@example.com"]) == ["eggs", "milk"]
    yield OldProject(folder, listed, todo_id)


def login(client: Any, email: str, password: str = PASSWORD) -> dict[str, str]:
    """Log in to jacscale; the Authorization header."""
    r = client.post("/user/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def todos(client: Any, headers: dict[str, str]) -> list[tuple[str, str]]:
    """(node id, title) of the caller's todos, from the example's own walker."""
    return [(t["_jac_id"], t["title"]) for t in listing(client, headers)]


def listing(client: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The caller's todos as list_todos reports them."""
    r = client.post("/walker/list_todos", headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["data"]["reports"][0])


def stored_hash(data: Path, email: str) -> str:
    """The password hash jacscale stores for a user."""
    conn = sqlite3.connect(data / "jacscale.db")
    try:
        (user_id,) = conn.execute(
            "SELECT json_extract(doc, '$.user_id') FROM docs WHERE collection = 'identities' AND id = ?",
            (f"email:{email}",),
        ).fetchone()
        (doc,) = conn.execute(
            "SELECT doc FROM docs WHERE collection = 'users' AND id = ?", (user_id,)
        ).fetchone()
    finally:
        conn.close()
    return str(json.loads(doc)["password_hash"])


def check_moved_over(app: Path, data: Path, old: OldProject) -> None:
    """Old passwords log in and the same walker lists the same todos."""
    assert stored_hash(data, "alice@example.com").startswith("$2b$")
    alice_todos = old.listed["alice@example.com"]
    with TestApp(app, data, env=ENV) as client:
        wrong = client.post(
            "/user/login", json={"email": "alice@example.com", "password": "nope-nope"}
        )
        assert wrong.status_code == 401
        alice = login(client, "alice@example.com")
        assert todos(client, alice) == alice_todos  # same nodes, same ids, same order
        done = {t["_jac_id"]: t["done"] for t in listing(client, alice)}
        assert done == {i: i == old.toggled for i, _ in alice_todos}
        bob = login(client, "bob@example.com")
        assert todos(client, bob) == old.listed["bob@example.com"]
        # Imported graphs keep working: a new todo joins the old ones.
        assert (
            client.post("/walker/add_todo", json={"title": "jam"}, headers=bob).status_code == 200
        )
        assert [t for _, t in todos(client, bob)] == ["bread", "jam"]
    # The successful login replaced the bcrypt hash with argon2id.
    assert stored_hash(data, "alice@example.com").startswith("$argon2id$")
    with TestApp(app, data, env=ENV) as client:
        assert todos(client, login(client, "alice@example.com")) == alice_todos


@pytest.mark.timeout(1800)
def test_import_a_jac_scale_project_folder(jac_scale_project: OldProject, tmp_path: Path) -> None:
    app = tmp_path / "app" / "app.jac"
    app.parent.mkdir()
    shutil.copy(EXAMPLES / "todo" / "app.jac", app)
    data = tmp_path / "data"
    first = jacscale(
        "import-jac-scale", str(app), str(jac_scale_project.folder), "--data-dir", str(data)
    )
    assert first.returncode == 0, first.stderr
    assert "users: 3 imported" in first.stdout  # alice, bob and jac-scale's generated admin
    assert "graph: 3 node(s), 3 edge(s)" in first.stdout
    assert "api keys: none to import" in first.stdout
    again = jacscale(
        "import-jac-scale", str(app), str(jac_scale_project.folder), "--data-dir", str(data)
    )
    assert again.returncode == 0, again.stderr
    assert "users: 0 imported, 3 already present" in again.stdout
    assert "graph: 0 node(s), 0 edge(s), 0 object(s) imported" in again.stdout
    check_moved_over(app, data, jac_scale_project)


@pytest.mark.timeout(1800)
def test_import_from_jac_scale_mongodb(
    jac_scale_project: OldProject, tmp_path: Path, mongo_server: str
) -> None:
    # jac-scale's MongoDB layout (database jac_db): the same records and users as its SQLite.
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server, serverSelectionTimeoutMS=5000)
    db = client["jac_db"]
    for name in ("_anchors", "users", "webhook_api_keys"):
        db[name].drop()
    data_dir = jac_scale_project.folder / ".jac" / "data"
    anchors = sqlite3.connect(f"file:{data_dir / 'anchor_store.db'}?mode=ro", uri=True)
    for anchor_id, kind, module, arch, data in anchors.execute(
        "SELECT id, type, arch_module, arch_type, data FROM anchors"
    ):
        db["_anchors"].insert_one({
            "_id": anchor_id, "type": kind, "arch_module": module, "arch_type": arch,
            "data": json.loads(data), "format_version": 1,
        })  # fmt: skip
    anchors.close()
    users = sqlite3.connect(f"file:{data_dir / 'users.db'}?mode=ro", uri=True)
    users.row_factory = sqlite3.Row
    for row in users.execute("SELECT * FROM identity_users"):
        doc = dict(row)
        for key in ("identities", "credentials", "profile"):
            doc[key] = json.loads(doc[key]) if doc[key] else None
        db["users"].insert_one(doc)
    users.close()
    db["webhook_api_keys"].insert_one({"_id": "k1", "user_id": "x", "name": "ci", "revoked": False})
    client.close()

    app = tmp_path / "app" / "app.jac"
    app.parent.mkdir()
    shutil.copy(EXAMPLES / "todo" / "app.jac", app)
    data = tmp_path / "data"
    result = jacscale("import-jac-scale", str(app), mongo_server, "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    assert "users: 3 imported" in result.stdout
    assert "api keys: 1 not imported" in result.stdout
    check_moved_over(app, data, jac_scale_project)


def test_a_type_the_program_lacks_stops_the_import_before_anything_is_written(
    jac_scale_project: OldProject, tmp_path: Path
) -> None:
    app = tmp_path / "app" / "app.jac"
    app.parent.mkdir()
    app.write_text((EXAMPLES / "todo" / "app.jac").read_text().replace("Todo", "Task"))
    data = tmp_path / "data"
    result = jacscale(
        "import-jac-scale", str(app), str(jac_scale_project.folder), "--data-dir", str(data)
    )
    assert result.returncode == 1
    assert "the program has no class Todo" in result.stderr and "rename_types" in result.stderr
    with TestApp(app, data, env=ENV) as client:
        r = client.post("/user/login", json={"email": "alice@example.com", "password": PASSWORD})
        assert r.status_code == 401  # no user came over
    # With the rename rule the same import works.
    (app.parent / "jac.toml").write_text('[plugins.scale.schema.rename_types]\nTodo = "Task"\n')
    result = jacscale(
        "import-jac-scale", str(app), str(jac_scale_project.folder), "--data-dir", str(data)
    )
    assert result.returncode == 0, result.stderr
    with TestApp(app, data, env=ENV) as client:
        assert (
            todos(client, login(client, "alice@example.com"))
            == jac_scale_project.listed["alice@example.com"]
        )


def test_a_source_that_is_not_jac_scale_data_is_refused(tmp_path: Path) -> None:
    app = tmp_path / "app.jac"
    shutil.copy(EXAMPLES / "todo" / "app.jac", app)
    result = jacscale("import-jac-scale", str(app), str(tmp_path / "missing"))
    assert result.returncode == 1 and "neither a folder nor a mongodb:// URI" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = jacscale("import-jac-scale", str(app), str(empty))
    assert result.returncode == 1 and "no jac-scale data in" in result.stderr
    (empty / ".jac" / "data").mkdir(parents=True)
    (empty / ".jac" / "data" / "anchor_store.db").write_text("not a database")
    result = jacscale("import-jac-scale", str(app), str(empty))
    assert result.returncode == 1 and "is not jac-scale 0.2.31 data" in result.stderr


def test_access_grants_come_over(jac_scale_project: OldProject, tmp_path: Path) -> None:
    # Grants as jaclang writes them (allow_root: per root; perm_grant: everyone),
    # set in a copy of jac-scale's store: alice lets bob read "milk"; bob's "bread"
    # is readable by everyone.
    folder = tmp_path / "project"
    shutil.copytree(jac_scale_project.folder, folder)
    data_dir = folder / ".jac" / "data"
    users = sqlite3.connect(data_dir / "users.db")
    roots = dict(users.execute(
        "SELECT json_extract(identities, '$[0].value_normalized'), root_id FROM identity_users"
    ).fetchall())  # fmt: skip
    users.close()
    bob_root = str(uuid.UUID(roots["bob@example.com"]))
    ids = {title: i for i, title in jac_scale_project.listed["alice@example.com"]}
    ids.update({title: i for i, title in jac_scale_project.listed["bob@example.com"]})
    store = sqlite3.connect(data_dir / "anchor_store.db")
    for title, change in (("milk", ("roots", bob_root, 0)), ("bread", ("all", None, 0))):
        (raw,) = store.execute(
            "SELECT data FROM anchors WHERE id = ?", (str(uuid.UUID(ids[title])),)
        ).fetchone()
        record = json.loads(raw)
        what, root, level = change
        if what == "roots":
            record["access"]["roots"]["anchors"][root] = level
        else:
            record["access"]["all"] = level
        store.execute(
            "UPDATE anchors SET data = ? WHERE id = ?",
            (json.dumps(record), str(uuid.UUID(ids[title]))),
        )
    store.commit()
    store.close()

    app = tmp_path / "app" / "app.jac"
    app.parent.mkdir()
    shutil.copy(EXAMPLES / "todo" / "app.jac", app)
    data = tmp_path / "data"
    result = jacscale("import-jac-scale", str(app), str(folder), "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    assert "access grants: 2 record(s) carry grants" in result.stdout

    def read(client: Any, headers: dict[str, str], title: str) -> int:
        r = client.post("/traverse", json={"source": ids[title], "depth": 0}, headers=headers)
        return int(r.status_code)

    with TestApp(app, data, env=ENV) as client:
        alice, bob = login(client, "alice@example.com"), login(client, "bob@example.com")
        assert read(client, bob, "milk") == 200  # granted to bob's root
        assert read(client, bob, "eggs") == 404  # not granted
        assert read(client, alice, "bread") == 200  # granted to everyone


def test_an_identity_taken_in_jacscale_stops_the_import_before_anything_is_written(
    jac_scale_project: OldProject, tmp_path: Path
) -> None:
    app = tmp_path / "app" / "app.jac"
    app.parent.mkdir()
    shutil.copy(EXAMPLES / "todo" / "app.jac", app)
    data = tmp_path / "data"
    with TestApp(app, data, env=ENV) as client:
        r = client.post(
            "/user/register", json={"email": "bob@example.com", "password": "new-pass-1"}
        )
        assert r.status_code == 201, r.text
    result = jacscale(
        "import-jac-scale", str(app), str(jac_scale_project.folder), "--data-dir", str(data)
    )
    assert result.returncode == 1
    assert (
        "identity email of jac-scale user" in result.stderr
        and "nothing was imported" in result.stderr
    )
    with TestApp(app, data, env=ENV) as client:
        assert (
            client.post(
                "/user/login", json={"email": "alice@example.com", "password": PASSWORD}
            ).status_code
            == 401
        )
        bob = login(client, "bob@example.com", "new-pass-1")
        assert todos(client, bob) == []  # none of jac-scale's graph came in either
    conn = sqlite3.connect(data / "jacscale.db")
    ids = {uuid.UUID(bytes=row[0]).hex for row in conn.execute("SELECT id FROM anchors")}
    conn.close()
    assert not ids & {i for i, _ in jac_scale_project.listed["alice@example.com"]}
