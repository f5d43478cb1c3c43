"""The current app owns process state: two apps in one process stay independent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from jacscale_core.app import create_app
from jacscale_core.current import active_app, current_app, running, standalone_app
from jacscale_core.plugins import hookimpl
from jacscale_ext.kvstore import KVStore

APP = """
import from jac_scale.lib { kvstore }

glob at_import = store(base_path="./uploads");

walker :pub put_text {
    has path: str;
    has text: str;
    can run with Root entry {
        at_import.upload(self.text.encode(), self.path);
        store(base_path="./later").upload(self.text.encode(), self.path);
        report "ok";
    }
}

walker :pub fail {
    has text: str;
    can run with Root entry {
        raise ValueError(self.text);
    }
}

walker :pub kv_name {
    can run with Root entry {
        report kvstore(db_name="d", db_type="fake").db_type;
    }
}
"""


class FakeKV(KVStore):
    """A kvstore driver for db_type "fake", named after the app that made it."""

    def __init__(self, db_name: str, db_type: str) -> None:
        super().__init__(db_name)
        self.db_type = db_type


class FakeDriver:
    """Answers kvstore(db_type="fake") with a store whose db_type is `label`."""

    def __init__(self, label: str) -> None:
        self.label = label

    @hookimpl
    def jacscale_kvstore_driver(self, db_type: str, db_name: str, uri: str | None) -> Any:
        return FakeKV(db_name, self.label) if db_type == "fake" else None


def _write_app(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "app.jac").write_text(APP)
    return directory / "app.jac"


def test_two_apps_in_one_process_keep_their_own_storage_and_redaction(tmp_path: Path) -> None:
    a_path = _write_app(tmp_path / "alpha")
    b_path = _write_app(tmp_path / "beta")
    # Both are built before either serves: the second must not take over the first.
    a = create_app(a_path, data_dir=tmp_path / "data-a", plugins=[FakeDriver("fake-a")])
    b = create_app(b_path, data_dir=tmp_path / "data-b", plugins=[FakeDriver("fake-b")])
    alpha, beta = a_path.parent, b_path.parent
    with (
        TestClient(a, raise_server_exceptions=False) as ca,
        TestClient(b, raise_server_exceptions=False) as cb,
    ):
        assert ca.post("/walker/put_text", json={"path": "x.txt", "text": "A"}).status_code == 200
        assert cb.post("/walker/put_text", json={"path": "x.txt", "text": "B"}).status_code == 200

        leaked_a = ca.post("/walker/fail", json={"text": f"broke in {alpha}/secret.txt"})
        assert leaked_a.status_code == 500
        message_a = leaked_a.json()["error"]["message"]
        assert str(alpha) not in message_a and "<server>/secret.txt" in message_a
        # alpha's directory is not one of beta's own paths: the generic rule applies.
        leaked_b = cb.post("/walker/fail", json={"text": f"broke in {alpha}/secret.txt"})
        message_b = leaked_b.json()["error"]["message"]
        assert str(alpha) not in message_b and "<server>" not in message_b

        assert ca.post("/walker/kv_name").json()["data"]["reports"] == ["fake-a"]
        assert cb.post("/walker/kv_name").json()["data"]["reports"] == ["fake-b"]

    for directory, text in ((alpha, "A"), (beta, "B")):
        assert (directory / "uploads" / "x.txt").read_text() == text
        assert (directory / "later" / "x.txt").read_text() == text
    assert a.state.jacscale.settings.data_dir == (tmp_path / "data-a")
    assert (tmp_path / "data-a").is_dir() and (tmp_path / "data-b").is_dir()
    assert a.state.jacscale.serving and b.state.jacscale.serving
    assert active_app() is None  # nothing leaked into the test's own context


def test_outside_every_app_the_current_one_is_standalone(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    assert active_app() is None
    standalone = current_app()
    assert standalone.app_dir == tmp_path.resolve()
    assert not standalone.serving
    other = standalone_app(tmp_path / "elsewhere")
    with running(other):
        assert current_app() is other
    assert active_app() is None


def test_read_toml_follows_edits(tmp_path: Path) -> None:
    app = standalone_app(tmp_path)
    assert app.read_toml() == {}
    (tmp_path / "jac.toml").write_text('[storage]\nbase_path = "one"\n')
    assert app.read_toml()["storage"]["base_path"] == "one"
    (tmp_path / "jac.toml").write_text('[storage]\nbase_path = "second"\n')
    assert app.read_toml()["storage"]["base_path"] == "second"
