"""The admin console's API and `jacscale admin create`: who may use it, what it changes."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from jacscale_core.testing import TestApp
from tests.auth.helpers import (
    FAST_ENV,
    PASSWORD,
    SECRET,
    bearer,
    login,
    register,
    unique_email,
    write_app,
)

SOURCE = (Path(__file__).resolve().parents[1] / "examples" / "12_graph_explorer.jac").read_text()
ADMIN_PASSWORD = "admin-pass-123"


def create_admin(app: Path, data: Path, email: str, password: str = ADMIN_PASSWORD) -> str:
    """Run `jacscale admin create` with the password on stdin; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "jacscale_core.cli", "admin", "create", str(app),
         "--email", email, "--data-dir", str(data), "--password-stdin"],
        input=password + "\n", capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, **FAST_ENV},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str, Path]]:
    directory = tmp_path_factory.mktemp("admin")
    toml = (
        '[plugins.scale.email]\npassword = "smtp-secret-value"\n'
        '[plugins.scale.jwt]\nprevious_secrets = ["an-old-secret-that-must-not-show-up-anywhere"]\n'
    )
    app = write_app(directory, SOURCE, toml)
    out = create_admin(app, directory / "data", "root@example.com")
    assert "admin created: root@example.com" in out
    with TestApp(app, directory / "data", env=FAST_ENV) as client:
        token = login(client, "root@example.com", ADMIN_PASSWORD)["access_token"]
        yield client, token, app


def user_row(client: TestClient, token: str, email: str) -> dict[str, Any]:
    found = client.get("/admin/api/users", params={"q": email}, headers=bearer(token)).json()
    assert found["total"] == 1, found
    return dict(found["users"][0])


def test_no_default_admin_and_page_served(tmp_path: Path) -> None:
    app = write_app(tmp_path, SOURCE)
    with TestApp(app, tmp_path / "data", env=FAST_ENV) as c:
        for identity, password in (("admin", "changeme"), ("admin@example.com", "changeme")):
            key = "username" if "@" not in identity else "email"
            assert (
                c.post("/user/login", json={key: identity, "password": password}).status_code == 401
            )
        page = c.get("/admin")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert c.get("/admin/static/admin.js").status_code == 200
        assert c.get("/admin/static/../../auth/users.py").status_code == 404


def test_admin_routes_need_an_admin(setup: tuple[TestClient, str, Path]) -> None:
    client, _, _ = setup
    assert client.get("/admin/api/users").status_code == 401
    email = unique_email("plain")
    register(client, email)
    user_token = login(client, email)["access_token"]
    for path in (
        "/admin/api/users",
        "/admin/api/config",
        "/admin/api/metrics",
        "/admin/api/errors",
    ):
        resp = client.get(path, headers=bearer(user_token))
        assert resp.status_code == 403, path
        assert resp.json()["error"]["code"] == "FORBIDDEN"


def test_forged_role_claim_grants_nothing(setup: tuple[TestClient, str, Path]) -> None:
    client, _, _ = setup
    email = unique_email("forger")
    user = register(client, email)
    from jacscale_ext.auth.tokens import TokenService

    # A token with role=admin, validly signed with the server's own secret (worst case).
    service = TokenService(SECRET)
    forged = service.issue(user["user_id"], claims={"root": user["root_id"], "sgen": 0,
                                                    "role": "admin", "is_admin": True}).token  # fmt: skip
    assert client.get("/user/me", headers=bearer(forged)).status_code == 200  # a valid token
    assert client.get("/admin/api/users", headers=bearer(forged)).status_code == 403


def test_disable_user_blocks_login_and_ends_sessions(
    setup: tuple[TestClient, str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    client, token, _ = setup
    email = unique_email("victim")
    register(client, email)
    user_token = login(client, email)["access_token"]
    row = user_row(client, token, email)
    assert row["disabled"] is False and row["role"] == "user"
    assert "password_hash" not in row
    with caplog.at_level(logging.INFO, logger="jacscale.audit"):
        resp = client.patch(f"/admin/api/users/{row['user_id']}", headers=bearer(token),
                            json={"disabled": True})  # fmt: skip
    assert resp.status_code == 200 and resp.json()["disabled"] is True
    assert any("account disabled" in r.getMessage() and row["user_id"] in r.getMessage()
               for r in caplog.records)  # fmt: skip
    refused = client.post("/user/login", json={"email": email, "password": PASSWORD})
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "This account is disabled"
    assert client.get("/user/me", headers=bearer(user_token)).status_code == 401
    # a wrong password still says nothing about the account
    assert (
        client.post("/user/login", json={"email": email, "password": "wrong-pw"}).status_code == 401
    )
    client.patch(
        f"/admin/api/users/{row['user_id']}", headers=bearer(token), json={"disabled": False}
    )
    assert login(client, email)["access_token"]


def test_role_change_is_audited_and_takes_effect(
    setup: tuple[TestClient, str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    client, token, _ = setup
    email = unique_email("promoted")
    register(client, email)
    user_token = login(client, email)["access_token"]
    row = user_row(client, token, email)
    with caplog.at_level(logging.INFO, logger="jacscale.audit"):
        resp = client.patch(f"/admin/api/users/{row['user_id']}", headers=bearer(token),
                             json={"role": "admin"})  # fmt: skip
    assert resp.status_code == 200 and resp.json()["role"] == "admin"
    audit = [r.getMessage() for r in caplog.records if r.name == "jacscale.audit"]
    assert any(f"role change: user {row['user_id']} user -> admin by admin" in m for m in audit)
    assert client.get("/admin/api/users", headers=bearer(user_token)).status_code == 200
    client.patch(f"/admin/api/users/{row['user_id']}", headers=bearer(token), json={"role": "user"})
    assert client.get("/admin/api/users", headers=bearer(user_token)).status_code == 403


def test_admin_cannot_lock_themselves_out(setup: tuple[TestClient, str, Path]) -> None:
    client, token, _ = setup
    me = client.get("/user/me", headers=bearer(token)).json()
    for change in ({"disabled": True}, {"role": "user"}):
        resp = client.patch(f"/admin/api/users/{me['user_id']}", headers=bearer(token), json=change)
        assert resp.status_code == 409


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body"]),
        ({"role": "root"}, ["body", "role"]),
        ({"disabled": "yes"}, ["body", "disabled"]),
        ({"password_hash": "x"}, ["body", "password_hash"]),
    ],
)
def test_change_bad_input(
    setup: tuple[TestClient, str, Path], body: dict[str, Any], loc: list[str]
) -> None:
    client, token, _ = setup
    email = unique_email("badchange")
    register(client, email)
    row = user_row(client, token, email)
    resp = client.patch(f"/admin/api/users/{row['user_id']}", headers=bearer(token), json=body)
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["loc"] == loc
    assert user_row(client, token, email) == row


def test_unknown_or_malformed_user_id(setup: tuple[TestClient, str, Path]) -> None:
    client, token, _ = setup
    assert client.patch("/admin/api/users/" + "0" * 32, headers=bearer(token),
                        json={"disabled": True}).status_code == 404  # fmt: skip
    assert client.patch("/admin/api/users/nope", headers=bearer(token),
                        json={"disabled": True}).status_code == 422  # fmt: skip
    assert client.get("/admin/api/users?limit=x", headers=bearer(token)).status_code == 422
    assert client.get("/admin/api/users?limit=100000", headers=bearer(token)).status_code == 422


def test_forced_password_reset(setup: tuple[TestClient, str, Path]) -> None:
    client, token, _ = setup
    email = unique_email("forced")
    register(client, email)
    old = login(client, email)["access_token"]
    row = user_row(client, token, email)
    resp = client.post(f"/admin/api/users/{row['user_id']}/reset-password", headers=bearer(token))
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["email_sent"] is False and answer["reset_token"]  # no mailer here
    assert client.get("/user/me", headers=bearer(old)).status_code == 401
    assert (
        client.post("/user/login", json={"email": email, "password": PASSWORD}).status_code == 401
    )
    done = client.post("/user/reset-password",
                       json={"token": answer["reset_token"], "new_password": "chosen-by-user"})  # fmt: skip
    assert done.status_code == 200
    assert login(client, email, "chosen-by-user")["access_token"]


def test_user_search_and_paging(setup: tuple[TestClient, str, Path]) -> None:
    client, token, _ = setup
    tag = unique_email("page").split("@")[0]
    for i in range(3):
        register(client, f"{tag}-{i}@example.com")
    first = client.get(
        "/admin/api/users", params={"q": tag, "limit": 2}, headers=bearer(token)
    ).json()
    rest = client.get("/admin/api/users", params={"q": tag, "limit": 2, "offset": 2},
                      headers=bearer(token)).json()  # fmt: skip
    assert first["total"] == rest["total"] == 3
    emails = [u["email"] for u in first["users"] + rest["users"]]
    assert sorted(emails) == [f"{tag}-{i}@example.com" for i in range(3)]


def test_config_is_redacted(setup: tuple[TestClient, str, Path]) -> None:
    client, token, _ = setup
    resp = client.get("/admin/api/config", headers=bearer(token))
    assert resp.status_code == 200
    text = resp.text
    assert "smtp-secret-value" not in text and "an-old-secret" not in text and SECRET not in text
    sections = resp.json()["sections"]
    assert sections["plugins.scale.email"]["password"] == "***"
    assert sections["plugins.scale.jwt"]["previous_secrets"] == ["***"]
    assert sections["plugins.scale.email"]["host"] == ""  # empty values stay visible
    assert sections["plugins.scale.traverse"]["max_depth"] == 10


def test_redact_hides_uri_credentials() -> None:
    from jacscale_ext.admin import redact

    value = {"mongodb_uri": "mongodb://bob:hunter2@db.example:27017/x", "api_key": "k",
             "nested": {"client_secret": "s", "port": 1}}  # fmt: skip
    assert redact(value) == {"mongodb_uri": "mongodb://***@db.example:27017/x", "api_key": "***",
                             "nested": {"client_secret": "***", "port": 1}}  # fmt: skip


def test_metrics_and_errors(setup: tuple[TestClient, str, Path]) -> None:
    client, token, _ = setup
    email = unique_email("metrics")
    register(client, email)
    user_token = login(client, email)["access_token"]
    assert client.post("/walker/seed", headers=bearer(user_token)).status_code == 200
    metrics = client.get("/admin/api/metrics", headers=bearer(token)).json()
    walkers = {w["name"]: w for w in metrics["walkers"]}
    assert walkers["seed"]["count"] >= 1 and walkers["seed"]["mean_ms"] > 0
    routes = {(r["method"], r["path"]): r for r in metrics["requests"]}
    assert routes[("POST", "/walker/seed")]["count"] >= 1
    errors = client.get("/admin/api/errors", headers=bearer(token)).json()["errors"]
    assert isinstance(errors, list)


def test_admin_create_promotes_an_existing_account(setup: tuple[TestClient, str, Path]) -> None:
    client, token, app = setup
    email = unique_email("existing")
    register(client, email)
    out = create_admin(app, app.parent / "data", email, password="ignored-here")
    assert "admin promoted" in out
    fresh = login(client, email)["access_token"]  # the old password still works
    assert client.get("/admin/api/users", headers=bearer(fresh)).status_code == 200


def test_admin_create_refuses_a_short_password(tmp_path: Path) -> None:
    app = write_app(tmp_path, SOURCE)
    done = subprocess.run(
        [sys.executable, "-m", "jacscale_core.cli", "admin", "create", str(app),
         "--email", "a@example.com", "--data-dir", str(tmp_path / "data"), "--password-stdin"],
        input="123\n", capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, **FAST_ENV},
    )  # fmt: skip
    assert done.returncode != 0
    assert "at least 6 characters" in done.stderr


def test_admin_can_be_switched_off(tmp_path: Path) -> None:
    app = write_app(tmp_path, SOURCE, "[plugins.scale.admin]\nenabled = false\n")
    with TestApp(app, tmp_path / "data", env=FAST_ENV) as c:
        assert c.get("/admin").status_code == 404
        assert c.get("/admin/api/users").status_code == 404


def test_scheduled_jobs_are_listed(tmp_path: Path) -> None:
    scheduler_app = Path(__file__).resolve().parents[1] / "examples" / "10_scheduler.jac"
    app = write_app(tmp_path, scheduler_app.read_text())
    with TestApp(app, tmp_path / "data", env=FAST_ENV) as c:
        email = unique_email("jobs")
        user = register(c, email)
        accounts = c.app.state.jacscale.state["auth"].accounts  # type: ignore[attr-defined]
        accounts.store.update(user["user_id"], {"role": "admin"})
        token = login(c, email)["access_token"]
        made = c.post("/jobs", headers=bearer(token),
                      json={"walker_or_function": "remind", "trigger": "interval", "interval": 60,
                            "args": {"text": "stretch"}})  # fmt: skip
        assert made.status_code == 201, made.text
        answer = c.get("/admin/api/jobs", headers=bearer(token)).json()
    assert answer["available"] is True
    names = {(j["walker_or_function"], j["static"]) for j in answer["jobs"]}
    assert ("heartbeat", True) in names and ("remind", False) in names
    mine = next(j for j in answer["jobs"] if not j["static"])
    assert mine["created_by"] == user["user_id"] and mine["interval"] == 60
