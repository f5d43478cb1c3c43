"""Schema evolution: data written by v1 of a program, read and migrated by v2.

Every kind of change runs on the embedded SQLite store and on the Mongo plugin
(against the MongoDB wire-protocol test double), through the served app.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jacscale_core.app import build_context
from jacscale_core.data_scan import inspect_store
from jacscale_core.migrate import migrate
from jacscale_core.schema import Schema
from jacscale_core.testing import TestApp
from tests.fixtures.servers import EXAMPLES

V1 = """
node Todo {
    has title: str;
    has done: bool = False;
    has note: str = "kept";
    has count: str = "5";
}
walker :pub add {
    has title: str;
    has count: str = "5";
    can go with Root entry { here ++> Todo(title=self.title, count=self.count); }
}
walker :pub all { can go with Root entry { report [-->]; } }
walker :pub typed { can go with Root entry { report [-->(?:Todo)]; } }
walker :pub touch {
    can go with Root entry { for t in [-->(?:Todo)] { t.title = t.title + "!"; } }
}
"""


@dataclass
class Store:
    """Where a test's data lives: a data dir, plus MONGODB_URI for the Mongo runs."""

    data: Path
    env: dict[str, str]


@pytest.fixture(params=["sqlite", "mongo"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A fresh, empty store of each kind."""
    env: dict[str, str] = {}
    if request.param == "mongo":
        server = request.getfixturevalue("mongo_server")
        env["MONGODB_URI"] = f"{server.rstrip('/')}/schema_{uuid.uuid4().hex[:10]}"
    return Store(tmp_path / "data", env)


def write_app(folder: Path, source: str, toml: str = "") -> Path:
    """app.jac (and jac.toml) in `folder`; the path of app.jac."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.jac").write_text(source)
    if toml:
        (folder / "jac.toml").write_text(toml)
    return folder / "app.jac"


def v2(tmp: Path, name: str, source: str, toml: str = "") -> Path:
    """Version 2 of the app, in its own folder."""
    return write_app(tmp / name, source, toml)


def call(app: Path, store: Store, walker: str, body: dict[str, Any] | None = None) -> list[Any]:
    """Run one walker on a fresh server process-state; its reports (fails on non-200)."""
    with TestApp(app, store.data, env=store.env) as client:
        r = client.post(f"/walker/{walker}", json=body or {})
        assert r.status_code == 200, r.text
        return list(r.json()["data"]["reports"])


def titles(reports: list[Any]) -> list[str]:
    """The titles of the nodes a walker reported as one list."""
    return sorted(n["title"] for n in reports[0])


@pytest.fixture
def seeded(tmp_path: Path, store: Store) -> Path:
    """v1 of the app with two todos stored; the path of v1's app.jac."""
    app = write_app(tmp_path / "v1", V1)
    call(app, store, "add", {"title": "a"})
    call(app, store, "add", {"title": "b"})
    assert titles(call(app, store, "all")) == ["a", "b"]
    return app


@dataclass
class Opened:
    """A store opened the way `jacscale db ...` opens it."""

    ctx: Any

    def records(self) -> dict[str, Any]:
        """title -> the stored fields of every Todo-like record, as stored."""
        out = {}
        for rec in inspect_records(self.ctx):
            fields = Schema().unpickle(rec.state)[0][1]
            if "title" in fields:
                out[fields["title"]] = (rec, fields)
        return out


def inspect_records(ctx: Any) -> Iterator[Any]:
    """Every record of the context's store."""
    from jacscale_core.data_scan import scan

    yield from scan(ctx.store)


def opened(app: Path, store: Store) -> Opened:
    """The app's store and schema, as the CLI builds them."""
    return Opened(build_context(app, env={**store.env}, cli={"data_dir": str(store.data)}))


# --------------------------------------------------------------------------
# A class renamed or removed
# --------------------------------------------------------------------------


def test_renamed_class_without_a_rule_is_quarantined_and_nothing_fails(
    tmp_path: Path, store: Store, seeded: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app2 = v2(tmp_path, "v2", V1.replace("Todo", "Task"))
    caplog.set_level(logging.WARNING, logger="jacscale.schema")
    assert call(app2, store, "all") == [[]]  # untyped traversals skip quarantined records
    assert call(app2, store, "typed") == [[]]
    assert any(
        "2 stored record(s) of type 'app.Todo' cannot be loaded" in r.getMessage()
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]
    call(app2, store, "add", {"title": "new"})
    call(app2, store, "touch")  # writes every Task it finds; the quarantined ones are untouched
    assert titles(call(app2, store, "all")) == ["new!"]
    info = opened(app2, store)
    report = inspect_store(info.ctx.store, info.ctx.executor.tier.schema)
    info.ctx.store.close()
    assert report.quarantined["app.Todo"]["count"] == 2
    assert "no longer exists" in report.quarantined["app.Todo"]["reasons"][0]
    assert report.types["app.Task"]["count"] == 1
    # Reverting the code brings the old records back, unchanged.
    assert titles(call(seeded, store, "typed")) == ["a", "b"]


def test_rename_rule_loads_old_records_and_migrate_rewrites_them_once(
    tmp_path: Path, store: Store, seeded: Path
) -> None:
    rule = '[plugins.scale.schema.rename_types]\nTodo = "Task"\n'
    app2 = v2(tmp_path, "v2", V1.replace("Todo", "Task"), rule)
    assert titles(call(app2, store, "typed")) == ["a", "b"]
    info = opened(app2, store)
    first = migrate(info.ctx.store, info.ctx.executor.tier.schema)
    second = migrate(info.ctx.store, info.ctx.executor.tier.schema)
    info.ctx.store.close()
    assert first.migrated == 2 and not first.quarantined
    assert second.migrated == 0 and second.unchanged == first.migrated + first.unchanged
    # Migrated records name the new class: the rule is no longer needed.
    app3 = v2(tmp_path, "v3", V1.replace("Todo", "Task"))
    assert titles(call(app3, store, "typed")) == ["a", "b"]


# --------------------------------------------------------------------------
# Fields removed, renamed, dropped, retyped, added
# --------------------------------------------------------------------------


def test_removed_field_is_dropped_on_load_and_kept_in_the_record_until_a_write(
    tmp_path: Path, store: Store, seeded: Path
) -> None:
    app2 = v2(tmp_path, "v2", V1.replace('has note: str = "kept";', ""))
    loaded = call(app2, store, "all")[0]
    assert all("note" not in n for n in loaded) and {n["title"] for n in loaded} == {"a", "b"}
    info = opened(app2, store)
    before = info.records()
    info.ctx.store.close()
    assert before["a"][1]["note"] == "kept"  # a read did not rewrite the record
    # Reverting now loses nothing.
    assert {n["note"] for n in call(seeded, store, "all")[0]} == {"kept"}
    call(app2, store, "touch")  # a real write stores what v2 has
    info = opened(app2, store)
    after = info.records()
    info.ctx.store.close()
    assert "note" not in after["a!"][1] and after["a!"][0].version == before["a"][0].version + 1


def test_rename_and_drop_field_rules_apply_on_load_and_on_migrate(
    tmp_path: Path, store: Store, seeded: Path
) -> None:
    source = V1.replace("has done: bool = False;", "has finished: bool = True;").replace(
        'has note: str = "kept";', ""
    )
    rules = (
        '[plugins.scale.schema.rename_fields.Todo]\ndone = "finished"\n'
        '[plugins.scale.schema.drop_fields]\nTodo = ["note"]\n'
    )
    app2 = v2(tmp_path, "v2", source, rules)
    loaded = call(app2, store, "all")[0]
    assert [n["finished"] for n in loaded] == [False, False]  # the stored `done`, renamed
    info = opened(app2, store)
    report = migrate(info.ctx.store, info.ctx.executor.tier.schema)
    assert report.migrated == 2
    stored = info.records()
    assert migrate(info.ctx.store, info.ctx.executor.tier.schema).migrated == 0
    info.ctx.store.close()
    fields = stored["a"][1]
    assert fields["finished"] is False and "done" not in fields and "note" not in fields


def test_retyped_field_converts_losslessly_or_quarantines(
    tmp_path: Path, store: Store, seeded: Path
) -> None:
    call(seeded, store, "add", {"title": "bad", "count": "many"})
    app2 = v2(tmp_path, "v2", V1.replace('has count: str = "5";', "has count: int = 0;"))
    loaded = call(app2, store, "all")[0]
    assert sorted((n["title"], n["count"]) for n in loaded) == [("a", 5), ("b", 5)]
    info = opened(app2, store)
    report = migrate(info.ctx.store, info.ctx.executor.tier.schema)
    stored = info.records()
    inspected = inspect_store(info.ctx.store, info.ctx.executor.tier.schema)
    info.ctx.store.close()
    assert report.migrated == 2 and report.quarantined == {"app.Todo": 1}
    assert "Todo.count holds str 'many'" in report.reasons["app.Todo"]
    assert stored["a"][1]["count"] == 5 and stored["bad"][1]["count"] == "many"
    assert inspected.quarantined["app.Todo"]["count"] == 1


def test_new_required_field_needs_a_default_rule(
    tmp_path: Path, store: Store, seeded: Path
) -> None:
    source = V1.replace("has title: str;", "has title: str;\n    has priority: int;").replace(
        "Todo(title=self.title, count=self.count)",
        "Todo(title=self.title, count=self.count, priority=1)",
    )
    app2 = v2(tmp_path, "v2", source)
    assert call(app2, store, "all") == [[]]  # no value, no default: quarantined, not a 500
    rule = "[plugins.scale.schema.defaults.Todo]\npriority = 3\n"
    app3 = v2(tmp_path, "v3", source, rule)
    assert sorted(n["priority"] for n in call(app3, store, "all")[0]) == [3, 3]
    info = opened(app3, store)
    assert migrate(info.ctx.store, info.ctx.executor.tier.schema).migrated == 2
    assert info.records()["a"][1]["priority"] == 3
    info.ctx.store.close()


# --------------------------------------------------------------------------
# The todo example with its node class renamed
# --------------------------------------------------------------------------


def test_renaming_the_todo_class_breaks_no_request(tmp_path: Path) -> None:
    v1 = tmp_path / "v1" / "app.jac"
    v1.parent.mkdir()
    shutil.copy(EXAMPLES / "todo" / "app.jac", v1)
    renamed = v2(tmp_path, "v2", v1.read_text().replace("Todo", "Task"))
    data = tmp_path / "data"
    env = {"JACSCALE_PASSWORD_HASH": "fast"}
    with TestApp(v1, data, env=env) as client:
        r = client.post("/user/register", json={"email": "a@example.com", "password": "pw-123456"})
        assert r.status_code == 201, r.text
        token = client.post("/user/login", json={"email": "a@example.com", "password": "pw-123456"})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        old = client.post("/walker/add_todo", json={"title": "old"}, headers=headers)
        old_id = old.json()["data"]["reports"][0]["_jac_id"]
        client.post("/walker/toggle_todo/" + old_id, headers=headers)
    with TestApp(renamed, data, env=env) as client:
        token = client.post("/user/login", json={"email": "a@example.com", "password": "pw-123456"})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        calls = [
            ("/walker/list_todos", {}),
            ("/walker/add_todo", {"title": "new"}),
            ("/walker/toggle_todo/" + old_id, {}),
            ("/walker/clear_done", {}),
            ("/walker/bulk_add", {"count": 2}),
            ("/walker/list_todos", {}),
            ("/walker/increment", {}),
            ("/walker/ping", {}),
            ("/function/add", {"a": 1}),
        ]
        answers = {}
        for path, body in calls:
            r = client.post(path, json=body, headers=headers)
            assert r.status_code < 500, (path, r.status_code, r.text)
            answers[path] = r
        listed = answers["/walker/list_todos"].json()["data"]["reports"][0]
        assert sorted(t["title"] for t in listed) == ["item-0", "item-1", "new"]
        graph = client.post("/traverse", json={"depth": 2, "detailed": True}, headers=headers)
        assert graph.status_code == 200, graph.text
        types = sorted(n["_jac_type"] for n in graph.json()["data"]["result"]["nodes"])
        assert types == ["Counter", "Root", "Task", "Task", "Task"]
    # Back on v1, the old todo is still there, still done.
    with TestApp(v1, data, env=env) as client:
        token = client.post("/user/login", json={"email": "a@example.com", "password": "pw-123456"})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        listed = client.post("/walker/list_todos", headers=headers).json()["data"]["reports"][0]
        assert [(t["title"], t["done"]) for t in listed if t["title"] == "old"] == [("old", True)]
