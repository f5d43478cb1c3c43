"""What jac-scale 0.2.31 clients send and expect, over real sockets: undeclared and
string-typed inputs, its auth bodies and answers, POST /user/refresh-token, the
/healthz/live and /healthz/ready probes, and X-Trace-Id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jacscale_core.testing import TestApp, running_server
from tests.auth.helpers import FAST_ENV, PASSWORD, unique_email, write_app

COMPAT_APP = Path(__file__).parent / "apps" / "compat_app.jac"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A live server and the folder its log is written to."""
    data = tmp_path_factory.mktemp("compat-data")
    with running_server(COMPAT_APP, data, env=FAST_ENV) as url:
        yield url, data


@pytest.fixture(scope="module")
def base(server: tuple[str, Path]) -> str:
    return server[0]


def post(base: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    return httpx.post(base + path, json=body, timeout=30, **kwargs)


def problems(resp: httpx.Response) -> list[tuple[list[Any], str]]:
    assert resp.json()["ok"] is False
    return [(d["loc"], d["type"]) for d in resp.json()["error"]["details"]]


# -- inputs ----------------------------------------------------------------------


def test_undeclared_fields_are_ignored_and_listed(base: str) -> None:
    resp = post(base, "/walker/typed_echo", {"n": 1, "colour": "red", "z": [1]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["meta"]["ignored_fields"] == ["colour", "z"]
    assert resp.json()["data"]["reports"][0]["n"] == 1
    clean = post(base, "/walker/typed_echo", {"n": 1})
    assert "ignored_fields" not in clean.json()["meta"]


def test_strings_convert_to_declared_numbers_and_booleans(base: str) -> None:
    resp = post(base, "/walker/typed_echo",
                {"n": "7", "ratio": "2.5", "flag": "yes", "ids": ["1", 2], "note": "7"})  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"]["reports"] == [
        {"n": 7, "n_type": "int", "ratio": 2.5, "flag": True, "ids": [1, 2], "note": "7"}
    ]
    assert post(base, "/function/scale", {"x": "1.5", "times": "4"}).json()["data"]["result"] == 6


def test_values_that_cannot_convert_are_422_naming_each_field(base: str) -> None:
    resp = post(base, "/walker/typed_echo", {"n": "seven", "flag": "maybe", "ratio": "1.5"})
    assert resp.status_code == 422
    assert problems(resp) == [(["body", "n"], "type_error"), (["body", "flag"], "type_error")]
    assert resp.json()["error"]["message"] == "Invalid input: n, flag"


def test_a_missing_get_parameter_is_reported_in_the_query(base: str) -> None:
    resp = httpx.get(base + "/walker/lookup", params={"page": "2"}, timeout=30)
    assert resp.status_code == 422
    assert problems(resp) == [(["query", "key"], "missing")]
    ok = httpx.get(base + "/walker/lookup", params={"key": "k", "page": "2", "x": "1"}, timeout=30)
    assert ok.json()["data"]["reports"] == [{"key": "k", "page": 2}]
    assert ok.json()["meta"]["ignored_fields"] == ["x"]
    bad = httpx.get(base + "/walker/lookup", params={"key": "k", "page": "two"}, timeout=30)
    assert bad.status_code == 422 and problems(bad) == [(["query", "page"], "type_error")]


def test_strict_fields_restores_the_422(tmp_path: Path) -> None:
    toml = "[plugins.scale.api]\nstrict_fields = true\n"
    app = write_app(tmp_path / "app", COMPAT_APP.read_text(), toml)
    with running_server(app, tmp_path / "data", env=FAST_ENV) as url:
        resp = post(url, "/walker/typed_echo", {"n": "3", "colour": "red"})
        query = httpx.get(url + "/walker/lookup", params={"key": "k", "x": "1"}, timeout=30)
    assert resp.status_code == 422
    assert problems(resp) == [(["body", "colour"], "extra_forbidden")]
    assert query.status_code == 422 and problems(query) == [(["query", "x"], "extra_forbidden")]


# -- auth ------------------------------------------------------------------------


def jac_scale_login(base: str, email: str) -> httpx.Response:
    identity = {"type": "email", "value": email}
    return post(base, "/user/login",
                {"identity": identity, "credential": {"type": "password", "password": PASSWORD}})  # fmt: skip


def test_register_login_and_me_answer_flat_keys_and_jac_scale_data(base: str) -> None:
    email = unique_email("js")
    reg = post(base, "/user/register", {
        "identities": [{"type": "email", "value": email}],
        "credential": {"type": "password", "password": PASSWORD},
        "profile": {"first_name": "Ada"},
    })  # fmt: skip
    assert reg.status_code == 201, reg.text
    body = reg.json()
    assert (body["ok"], body["type"], body["error"]) == (True, "response", None)
    assert body["meta"]["extra"]["http_status"] == 201
    assert body["meta"]["request_id"] == reg.headers["x-request-id"]
    assert body["user_id"] == body["data"]["user_id"] and body["email"] == email
    assert body["data"]["identities"] == [
        {"type": "email", "value": email, "verified": False, "is_recovery": True}
    ]
    login = jac_scale_login(base, email)
    assert login.status_code == 200 and login.headers["cache-control"] == "no-store"
    answer = login.json()
    assert answer["access_token"] == answer["data"]["token"]
    assert (answer["data"]["user_id"], answer["data"]["root_id"]) == (
        body["user_id"], body["root_id"],
    )  # fmt: skip
    me = httpx.get(base + "/user/me", headers={"Authorization": "Bearer " + answer["access_token"]},
                   timeout=30).json()  # fmt: skip
    assert me["email"] == email and me["ok"] is True
    assert me["data"]["identities"] == body["data"]["identities"]
    assert (me["data"]["role"], me["data"]["status"]) == ("user", "active")
    assert me["data"]["profile"] == {"first_name": "Ada"}


def test_login_finds_a_user_by_either_kind_of_identity_value(base: str) -> None:
    email = unique_email("any")
    by_email = post(base, "/user/register", {"email": email, "password": PASSWORD}).json()
    name = "name_" + email.split("@")[0]
    by_name = post(base, "/user/register", {"username": name, "password": PASSWORD}).json()
    as_username = {"identity": {"type": "username", "value": email},
                   "credential": {"type": "password", "password": PASSWORD}}  # fmt: skip
    assert post(base, "/user/login", as_username).json()["user_id"] == by_email["user_id"]
    as_email = post(base, "/user/login", {"email": name + "@nowhere.example", "password": PASSWORD})
    assert as_email.status_code == 401  # not a username of anyone: no fallback finds it
    wrong = post(base, "/user/login", {**as_username, "credential": {"password": "wrong-pw"}})
    assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "Invalid credentials"
    # A username that looks like an email belongs to its owner first.
    taken = unique_email("twin")
    twin_user = post(base, "/user/register", {"username": taken, "password": "other-pw-1"}).json()
    twin_mail = post(base, "/user/register", {"email": taken, "password": PASSWORD}).json()
    assert post(base, "/user/login", {"username": taken, "password": "other-pw-1"}).json()[
        "user_id"] == twin_user["user_id"]  # fmt: skip
    assert post(base, "/user/login", {"email": taken, "password": PASSWORD}).json()[
        "user_id"] == twin_mail["user_id"]  # fmt: skip
    assert post(base, "/user/login", {"username": taken, "password": PASSWORD}).status_code == 401
    assert by_name["username"] == name


def test_refresh_token_takes_the_token_in_the_body_with_or_without_bearer(base: str) -> None:
    email = unique_email("rt")
    post(base, "/user/register", {"email": email, "password": PASSWORD})
    token = jac_scale_login(base, email).json()["data"]["token"]
    for sent in (token, f"Bearer {token}"):
        resp = post(base, "/user/refresh-token", {"token": sent})
        assert resp.status_code == 200, resp.text
        answer = resp.json()
        fresh = answer["data"]["token"]
        assert fresh == answer["access_token"]
        assert answer["data"]["message"] == "Token refreshed successfully"
        me = httpx.get(base + "/user/me", headers={"Authorization": f"Bearer {fresh}"}, timeout=30)
        assert me.status_code == 200 and me.json()["email"] == email
    # The documented route takes the body too; both take the Authorization header.
    assert post(base, "/user/refresh", {"token": token}).status_code == 200
    header = httpx.post(base + "/user/refresh-token", timeout=30,
                        headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert header.status_code == 200 and header.json()["data"]["token"]


@pytest.mark.parametrize(
    ("body", "status", "where"),
    [
        ({}, 422, ["body", "token"]),
        ({"token": ""}, 422, ["body", "token"]),
        ({"token": 5}, 422, ["body", "token"]),
        ([1], 422, ["body"]),
        ({"token": "not-a-jwt"}, 401, None),
        ({"token": "Bearer "}, 401, None),
        (None, 401, None),
    ],
)
def test_refresh_token_refuses_bad_bodies(
    base: str, body: Any, status: int, where: list[str] | None
) -> None:
    resp = post(base, "/user/refresh-token", body)
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    if where is not None:
        assert err["code"] == "VALIDATION_ERROR" and err["details"][0]["loc"] == where
    else:
        assert err["code"] == "UNAUTHORIZED" and resp.json()["data"] is None


def test_refresh_token_with_a_malformed_json_body_is_422(base: str) -> None:
    resp = httpx.post(base + "/user/refresh-token", content=b"{oops", timeout=30,
                      headers={"content-type": "application/json"})  # fmt: skip
    assert resp.status_code == 422 and resp.json()["error"]["details"][0]["type"] == "json_invalid"


# -- probes and headers ------------------------------------------------------------


def test_jac_scale_probe_paths(base: str) -> None:
    live = httpx.get(base + "/healthz/live", timeout=30)
    assert live.status_code == 200 and live.json() == {"status": "alive"}
    ready = httpx.get(base + "/healthz/ready", timeout=30)
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready" and ready.json()["ready"] is True
    assert ready.json()["checks"] == httpx.get(base + "/readyz", timeout=30).json()["checks"]


def test_readiness_alias_is_503_when_not_ready(tmp_path: Path) -> None:
    with TestApp(COMPAT_APP, tmp_path) as client:
        client.app.state.jacscale.ready = False  # type: ignore[attr-defined]
        resp = client.get("/healthz/ready")
        assert resp.status_code == 503
        assert resp.json()["status"] == "unavailable" and resp.json()["ready"] is False
        assert client.get("/healthz/live").status_code == 200


SANE = ["4bf92f3577b34da6a3ce929d0e0e4736", "0b9c-trace:1.2_x", "t" * 128]
NOT_SANE = ["t" * 129, "has space", 'quote"', "semi;colon", "new\tline", ""]


@pytest.mark.parametrize("trace", SANE)
def test_a_sane_trace_id_is_echoed(base: str, trace: str) -> None:
    ok = post(base, "/walker/typed_echo", {"n": 1}, headers={"X-Trace-Id": trace})
    assert ok.headers["x-trace-id"] == trace
    failed = post(base, "/walker/typed_echo", {}, headers={"X-Trace-Id": trace})
    assert failed.status_code == 422 and failed.headers["x-trace-id"] == trace
    missing = httpx.get(base + "/nowhere", headers={"X-Trace-Id": trace}, timeout=30)
    assert missing.status_code == 404 and missing.headers["x-trace-id"] == trace


@pytest.mark.parametrize("trace", NOT_SANE)
def test_a_trace_id_that_is_not_sane_is_dropped(base: str, trace: str) -> None:
    resp = post(base, "/walker/typed_echo", {"n": 1}, headers={"X-Trace-Id": trace})
    assert resp.status_code == 200 and "x-trace-id" not in resp.headers


def test_no_trace_id_no_header(base: str) -> None:
    assert "x-trace-id" not in post(base, "/walker/typed_echo", {"n": 1}).headers


def test_the_trace_id_is_in_the_access_log(server: tuple[str, Path]) -> None:
    base, data = server
    post(base, "/walker/typed_echo", {"n": 1}, headers={"X-Trace-Id": "logged-trace-42"})
    post(base, "/walker/typed_echo", {"n": 1}, headers={"X-Trace-Id": "evil trace"})
    log_text = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # access lines are written in batches every 0.1 s
        log_text = "".join(p.read_text() for p in data.glob("server-*.log"))
        if "trace=logged-trace-42" in log_text:
            break
        time.sleep(0.1)
    line = next(x for x in log_text.splitlines() if "trace=logged-trace-42" in x)
    assert '"POST /walker/typed_echo" 200' in line
    assert "evil" not in log_text
