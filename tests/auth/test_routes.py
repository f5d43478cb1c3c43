"""The /user/* endpoints over HTTP, bearer authentication, and walker access levels."""

from __future__ import annotations

import base64
import json
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from starlette.testclient import TestClient

from jacscale_core.app import create_app
from jacscale_core.testing import TestApp
from jacscale_ext.auth.secret import SECRET_FILE_NAME
from jacscale_ext.auth.tokens import key_id
from tests.auth.helpers import (
    FAST_ENV,
    PASSWORD,
    SECRET,
    TODO_APP,
    auth_state,
    bearer,
    error_code,
    login,
    new_user,
    register,
    unique_email,
    write_app,
)

ENVELOPE_KEYS = {"ok", "type", "data", "error", "meta"}  # what jac-scale clients read


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestApp(TODO_APP, tmp_path_factory.mktemp("auth-data"), env=FAST_ENV) as c:
        yield c


# -- register --------------------------------------------------------------------


def test_register_documented_body(client: TestClient) -> None:
    email = unique_email()
    resp = client.post("/user/register", json={"email": email, "password": "secret"})
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) == {"user_id", "root_id", "email", *ENVELOPE_KEYS}
    assert body["email"] == email
    assert len(body["user_id"]) == 32 and len(body["root_id"]) == 32


def test_register_username_and_both(client: TestClient) -> None:
    name = "bob_" + secrets.token_hex(3)
    body = register(client, username=name)
    assert body["username"] == name and "email" not in body
    email = unique_email()
    both = register(client, email, username="c_" + secrets.token_hex(3))
    assert both["email"] == email and both["username"].startswith("c_")
    assert (
        client.post(
            "/user/login", json={"username": both["username"], "password": PASSWORD}
        ).status_code
        == 200
    )


def test_register_jac_scale_identities_shape(client: TestClient) -> None:
    email = unique_email()
    name = "js_" + secrets.token_hex(3)
    resp = client.post(
        "/user/register",
        json={
            "identities": [{"type": "email", "value": email}, {"type": "username", "value": name}],
            "credential": {"type": "password", "password": PASSWORD},
            "profile": {"firstname": "Ada"},
        },
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["email"] == email and resp.json()["username"] == name
    # jac-scale's login shape
    resp = client.post(
        "/user/login",
        json={"identity": {"type": "username", "value": name},
              "credential": {"type": "password", "password": PASSWORD}},
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    me = client.get("/user/me", headers=bearer(resp.json()["access_token"])).json()
    assert me["profile"] == {"firstname": "Ada"}


def test_each_user_gets_an_own_root(client: TestClient) -> None:
    a, b = new_user(client), new_user(client)
    assert a["root_id"] != b["root_id"]
    assert (
        client.post("/walker/add_todo", json={"title": "a's"}, headers=a["headers"]).status_code
        == 200
    )
    listed_b = client.post("/walker/list_todos", json={}, headers=b["headers"]).json()
    assert listed_b["data"]["reports"] == [[]]
    listed_a = client.post("/walker/list_todos", json={}, headers=a["headers"]).json()
    assert [t["title"] for t in listed_a["data"]["reports"][0]] == ["a's"]


def test_duplicate_email_is_409_case_insensitive(client: TestClient) -> None:
    email = unique_email()
    register(client, email)
    resp = client.post("/user/register", json={"email": email.upper(), "password": PASSWORD})
    assert resp.status_code == 409
    assert error_code(resp) == "IDENTITY_TAKEN"
    assert resp.json()["error"]["details"][0]["loc"] == ["body", "email"]


def test_duplicate_username_releases_the_other_identity(client: TestClient) -> None:
    name = "dup_" + secrets.token_hex(3)
    register(client, username=name)
    email = unique_email()
    resp = client.post(
        "/user/register", json={"email": email, "username": name, "password": PASSWORD}
    )
    assert resp.status_code == 409
    # nothing was kept: the email is still free
    assert register(client, email)["email"] == email


@pytest.mark.parametrize(
    ("body", "loc", "status"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, ["body", "email"], 422),
        ({"email": "a@b", "password": PASSWORD}, ["body", "email"], 422),
        ({"email": 5, "password": PASSWORD}, ["body", "email"], 422),
        ({"password": PASSWORD}, ["body", "email"], 422),
        ({"email": "ok@example.com"}, ["body", "password"], 422),
        ({"email": "ok@example.com", "password": "short"}, ["body", "password"], 422),
        ({"email": "ok@example.com", "password": 123456789}, ["body", "password"], 422),
        ({"email": "ok@example.com", "password": "x" * 2000}, ["body", "password"], 422),
        ({"username": "__guest__", "password": PASSWORD}, ["body", "username"], 422),
        ({"username": "has space", "password": PASSWORD}, ["body", "username"], 422),
        ({"identities": [], "credential": {"password": PASSWORD}}, ["body", "identities"], 422),
        ({"identities": [{"type": "phone", "value": "1"}], "credential": {"password": PASSWORD}},
         ["body", "identities", 0, "type"], 422),
        ({"identities": [{"type": "email", "value": "x@example.com"}], "credential": {"type": "otp"}},
         ["body", "credential", "type"], 422),
        ([1, 2], ["body"], 422),
    ],
)  # fmt: skip
def test_register_bad_input_names_the_field(
    client: TestClient, body: Any, loc: list[Any], status: int
) -> None:
    resp = client.post("/user/register", json=body)
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == "VALIDATION_ERROR"
    assert loc in [d["loc"] for d in err["details"]]


def test_register_bad_json_and_content_type(client: TestClient) -> None:
    resp = client.post(
        "/user/register", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 422 and resp.json()["error"]["details"][0]["loc"] == ["body"]
    resp = client.post("/user/register", content=b"email=a", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    resp = client.post("/user/register", content=b"")
    assert resp.status_code == 422


def test_failed_registration_writes_nothing(client: TestClient) -> None:
    email = unique_email()
    assert (
        client.post("/user/register", json={"email": email, "password": "short"}).status_code == 422
    )
    assert register(client, email)["email"] == email


# -- login -----------------------------------------------------------------------


def test_login_documented_answer(client: TestClient) -> None:
    email = unique_email()
    reg = register(client, email)
    resp = client.post("/user/login", json={"email": email, "password": PASSWORD})
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {
        "access_token", "token_type", "expires_in", "user_id", "root_id", *ENVELOPE_KEYS
    }  # fmt: skip
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 7 * 86400
    assert (body["user_id"], body["root_id"]) == (reg["user_id"], reg["root_id"])
    assert resp.headers["cache-control"] == "no-store"
    assert login(client, email.upper())["user_id"] == reg["user_id"], "email is case-insensitive"


def test_login_errors_do_not_reveal_accounts(client: TestClient) -> None:
    email = unique_email()
    register(client, email)
    wrong = client.post("/user/login", json={"email": email, "password": "wrong-password"})
    unknown = client.post(
        "/user/login", json={"email": unique_email(), "password": "wrong-password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"] == unknown.json()["error"] == {
        "code": "UNAUTHORIZED", "message": "Invalid credentials"}  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {"username": "__guest__", "password": "__no_password__"},
        {"username": "admin", "password": "changeme"},
        {"email": "admin", "password": "changeme"},
        {"email": "admin@example.com", "password": "changeme"},
    ],
)
def test_no_builtin_accounts(client: TestClient, body: dict[str, str]) -> None:
    resp = client.post("/user/login", json=body)
    assert resp.status_code in (401, 422)
    assert "access_token" not in resp.text


def test_login_bad_input(client: TestClient) -> None:
    resp = client.post("/user/login", json={"email": "x@example.com"})
    assert resp.status_code == 422
    assert ["body", "password"] in [d["loc"] for d in resp.json()["error"]["details"]]
    resp = client.post("/user/login", json={"password": "x"})
    assert resp.status_code == 422


# -- /user/me, refresh, password -------------------------------------------------


def test_me(client: TestClient) -> None:
    user = new_user(client)
    resp = client.get("/user/me", headers=user["headers"])
    assert resp.status_code == 200
    me = resp.json()
    assert me["user_id"] == user["user_id"] and me["root_id"] == user["root_id"]
    assert me["email"] == user["email"]
    assert time.strptime(me["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert "password" not in json.dumps(me) and "argon" not in json.dumps(me)


def test_me_needs_a_valid_token(client: TestClient) -> None:
    resp = client.get("/user/me")
    assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer")
    for header in ("Bearer", "Bearer ", "Bearer garbage", "Bearer a.b.c"):
        resp = client.get("/user/me", headers={"Authorization": header})
        assert resp.status_code == 401, header
        assert resp.json()["error"]["message"] == "Invalid or expired token"
    resp = client.get("/user/me", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert resp.status_code == 401


def test_refresh(client: TestClient) -> None:
    user = new_user(client)
    resp = client.post("/user/refresh", headers=user["headers"])
    assert resp.status_code == 200
    body = resp.json()
    assert body["token_type"] == "bearer" and body["user_id"] == user["user_id"]
    assert body["access_token"] != user["token"]
    assert client.get("/user/me", headers=bearer(body["access_token"])).status_code == 200
    assert client.post("/user/refresh").status_code == 401


def test_refresh_cannot_stretch_a_session_forever(client: TestClient) -> None:
    user = new_user(client)
    first = jwt.decode(user["token"], OctKey.import_key(SECRET), algorithms=["HS256"]).claims
    refreshed = client.post("/user/refresh", headers=user["headers"]).json()["access_token"]
    again = jwt.decode(refreshed, OctKey.import_key(SECRET), algorithms=["HS256"]).claims
    assert again["auth_time"] == first["auth_time"], "refresh keeps the time of the login"
    old_login = int(time.time()) - 31 * 86400
    stale = _sign(_claims(user, auth_time=old_login))
    assert client.get("/user/me", headers=bearer(stale)).status_code == 200, "still valid to use"
    resp = client.post("/user/refresh", headers=bearer(stale))
    assert resp.status_code == 401
    assert "log in again" in resp.json()["error"]["message"]


def test_password_change_ends_old_tokens(client: TestClient) -> None:
    user = new_user(client)
    other_old = login(client, user["email"])["access_token"]
    resp = client.put(
        "/user/password",
        json={"current_password": PASSWORD, "new_password": "brand-new-pw"},
        headers=user["headers"],
    )
    assert resp.status_code == 200, resp.text
    fresh = resp.json()["access_token"]
    for old in (user["token"], other_old):
        assert client.get("/user/me", headers=bearer(old)).status_code == 401
        assert client.post("/user/refresh", headers=bearer(old)).status_code == 401
        assert client.post("/walker/list_todos", json={}, headers=bearer(old)).status_code == 401
    assert client.get("/user/me", headers=bearer(fresh)).status_code == 200
    assert (
        client.post("/user/login", json={"email": user["email"], "password": PASSWORD}).status_code
        == 401
    )
    assert login(client, user["email"], "brand-new-pw")["user_id"] == user["user_id"]


def test_password_change_bad_input(client: TestClient) -> None:
    user = new_user(client)
    resp = client.put(
        "/user/password",
        json={"current_password": "not-it", "new_password": "brand-new-pw"},
        headers=user["headers"],
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["loc"] == ["body", "current_password"]
    resp = client.put(
        "/user/password",
        json={"current_password": PASSWORD, "new_password": "x"},
        headers=user["headers"],
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["loc"] == ["body", "new_password"]
    resp = client.put(
        "/user/password", json={"new_password": "long-enough"}, headers=user["headers"]
    )
    assert resp.status_code == 422
    assert client.get("/user/me", headers=user["headers"]).status_code == 200, "nothing changed"
    assert (
        client.put(
            "/user/password", json={"current_password": PASSWORD, "new_password": "abcdefgh"}
        ).status_code
        == 401
    )


def test_delete_account_ends_tokens(client: TestClient) -> None:
    user = new_user(client)
    resp = client.request(
        "DELETE", "/user/me", json={"password": "wrong-one"}, headers=user["headers"]
    )
    assert resp.status_code == 422
    resp = client.request(
        "DELETE", "/user/me", json={"password": PASSWORD}, headers=user["headers"]
    )
    assert resp.status_code == 200 and resp.json() == {"deleted": True, "user_id": user["user_id"]}
    assert client.get("/user/me", headers=user["headers"]).status_code == 401
    assert client.post("/walker/list_todos", json={}, headers=user["headers"]).status_code == 401
    assert (
        client.post("/user/login", json={"email": user["email"], "password": PASSWORD}).status_code
        == 401
    )
    assert register(client, user["email"])["user_id"] != user["user_id"], "the email is free again"


# -- token attacks over HTTP -------------------------------------------------------


def _b64(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _claims(user: dict[str, Any], **over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": user["user_id"],
        "root": user["root_id"],
        "sgen": 0,
        "iss": "jacscale",
        "aud": "jacscale",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "token_type": "access",
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(
    claims: dict[str, Any], secret: str = SECRET, alg: str = "HS256", kid: str | None = None
) -> str:
    header = {"alg": alg, "kid": kid or key_id(secret)}
    return jwt.encode(header, claims, OctKey.import_key(secret), algorithms=[alg])


def test_hand_signed_token_with_the_real_secret_works(client: TestClient) -> None:
    user = new_user(client)
    assert client.get("/user/me", headers=bearer(_sign(_claims(user)))).status_code == 200


def _token_cases(user: dict[str, Any], state_token: str) -> dict[str, str]:
    other = secrets.token_urlsafe(48)
    return {
        "forged (other secret)": _sign(_claims(user), secret=other),
        "forged (other secret, our kid)": _sign(_claims(user), secret=other, kid=key_id(SECRET)),
        "forged (jac-scale default secret)": _sign(_claims(user), secret="supersecretkey"),
        "expired": _sign(_claims(user, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)),
        "no exp": _sign(_claims(user, exp=None)),
        "no iat": _sign(_claims(user, iat=None)),
        "not yet valid": _sign(_claims(user, nbf=int(time.time()) + 3600)),
        "wrong issuer": _sign(_claims(user, iss="evil")),
        "wrong audience": _sign(_claims(user, aud="another-app")),
        "wrong type": _sign(_claims(user, token_type="refresh")),
        "wrong type (sso state)": state_token,
        "wrong alg HS512": _sign(
            _claims(user), secret=SECRET + SECRET, alg="HS512", kid=key_id(SECRET)
        ),
        "alg none": f"{_b64({'alg': 'none', 'kid': key_id(SECRET)})}.{_b64(_claims(user))}.",
        "unknown user": _sign(_claims(user, sub="0" * 32)),
        "stale session": _sign(_claims(user, sgen=-1)),
        "tampered": (
            lambda t: (
                t.split(".")[0] + "." + _b64(_claims(user, sub="x" * 32)) + "." + t.split(".")[2]
            )
        )(_sign(_claims(user))),
    }


def test_bad_tokens_are_refused_everywhere(client: TestClient) -> None:
    user = new_user(client)
    tokens = auth_state(client).tokens
    state_token = tokens.issue(user["user_id"], token_type="sso_state").token
    for name, token in _token_cases(user, state_token).items():
        for method, path in (
            ("GET", "/user/me"),
            ("POST", "/user/refresh"),
            ("POST", "/walker/list_todos"),
        ):
            resp = client.request(
                method, path, json={} if method == "POST" else None, headers=bearer(token)
            )
            assert resp.status_code == 401, f"{name} via {path}: {resp.status_code} {resp.text}"
            assert resp.json()["error"]["message"] == "Invalid or expired token"
            assert "invalid_token" in resp.headers["www-authenticate"]


def test_bad_token_on_public_walker_is_still_401(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", ACCESS_APP)
    with TestApp(app, tmp_path / "data", env=FAST_ENV) as c:
        assert c.post("/walker/open_w", json={}).status_code == 200
        resp = c.post("/walker/open_w", json={}, headers=bearer("garbage"))
        assert resp.status_code == 401


# -- configuration: env vars, jac.toml, generated secret, production ----------------


def test_jwt_env_vars_work_as_documented(tmp_path: Path) -> None:
    secret = secrets.token_urlsafe(64)
    env = {**FAST_ENV, "JWT_SECRET": secret, "JWT_ALGORITHM": "HS512", "JWT_EXP_DELTA_DAYS": "2"}
    with TestApp(TODO_APP, tmp_path, env=env) as c:
        user = new_user(c)
        answer = login(c, user["email"])
        assert answer["expires_in"] == 2 * 86400
        token = answer["access_token"]
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        assert header["alg"] == "HS512" and header["kid"] == key_id(secret)
        claims = jwt.decode(token, OctKey.import_key(secret), algorithms=["HS512"]).claims
        assert claims["sub"] == user["user_id"] and claims["exp"] - claims["iat"] == 2 * 86400


def test_jwt_section_in_jac_toml(tmp_path: Path) -> None:
    secret = secrets.token_urlsafe(48)
    toml = f'[plugins.scale.jwt]\nsecret = "{secret}"\nexp_delta_days = 1\nissuer = "my-app"\naudience = "my-api"\n'
    app = write_app(tmp_path / "app", TODO_APP.read_text(), toml)
    with TestApp(app, tmp_path / "data", env={"JACSCALE_PASSWORD_HASH": "fast"}) as c:
        user = new_user(c)
        claims = jwt.decode(user["token"], OctKey.import_key(secret), algorithms=["HS256"]).claims
        assert (claims["iss"], claims["aud"], claims["exp"] - claims["iat"]) == (
            "my-app",
            "my-api",
            86400,
        )
    env = {"JACSCALE_PASSWORD_HASH": "fast", "JWT_EXP_DELTA_DAYS": "3"}
    with TestApp(app, tmp_path / "data", env=env) as c:
        assert login(c, user["email"])["expires_in"] == 3 * 86400, "env beats jac.toml"


def test_generated_secret_when_unset(tmp_path: Path) -> None:
    with TestApp(TODO_APP, tmp_path, env={"JACSCALE_PASSWORD_HASH": "fast"}) as c:
        user = new_user(c)
    path = tmp_path / SECRET_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text()
    assert jwt.decode(user["token"], OctKey.import_key(secret), algorithms=["HS256"]).claims["sub"]
    with TestApp(TODO_APP, tmp_path, env={"JACSCALE_PASSWORD_HASH": "fast"}) as c:
        assert c.get("/user/me", headers=user["headers"]).status_code == 200, "survives a restart"


def test_secret_rotation_keeps_old_tokens(tmp_path: Path) -> None:
    old_secret, new_secret = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    with TestApp(TODO_APP, tmp_path, env={**FAST_ENV, "JWT_SECRET": old_secret}) as c:
        user = new_user(c)
    env = {**FAST_ENV, "JWT_SECRET": new_secret, "JWT_PREVIOUS_SECRETS": old_secret}
    with TestApp(TODO_APP, tmp_path, env=env) as c:
        assert c.get("/user/me", headers=user["headers"]).status_code == 200
        fresh = c.post("/user/refresh", headers=user["headers"]).json()["access_token"]
        assert jwt.decode(fresh, OctKey.import_key(new_secret), algorithms=["HS256"]).claims
    with TestApp(TODO_APP, tmp_path, env={**FAST_ENV, "JWT_SECRET": new_secret}) as c:
        assert c.get("/user/me", headers=user["headers"]).status_code == 401, "old key retired"
        assert c.get("/user/me", headers=bearer(fresh)).status_code == 200


def test_production_refuses_to_start_without_secret(tmp_path: Path) -> None:
    env = {"JACSCALE_ENV": "production"}
    with pytest.raises(Exception, match="production mode needs an explicit JWT secret"):
        with TestApp(TODO_APP, tmp_path, env=env):
            pass
    assert not (tmp_path / SECRET_FILE_NAME).exists()
    with pytest.raises(Exception, match="published default"):
        with TestApp(TODO_APP, tmp_path, env={**env, "JWT_SECRET": "supersecretkey"}):
            pass
    with pytest.raises(Exception, match="for tests"):
        with TestApp(TODO_APP, tmp_path, env={**env, **FAST_ENV}):
            pass
    with TestApp(TODO_APP, tmp_path, env={**env, "JWT_SECRET": SECRET}) as c:
        assert auth_state(c).accounts.hasher.params.memory_kib == 19456
        assert c.get("/healthz").status_code == 200


def test_production_flag_on_the_command_line(tmp_path: Path) -> None:
    app = create_app(TODO_APP, data_dir=tmp_path, cli={"production": True})
    with pytest.raises(Exception, match="production mode needs an explicit JWT secret"):
        with TestClient(app):
            pass


# -- walker access levels (:pub open, protected needs a token, :priv not served) ---

ACCESS_APP = """
walker :pub open_w { can go with Root entry { report "open"; } }
walker prot_w { can go with Root entry { report "prot"; } }
walker :priv priv_w { can go with Root entry { report "priv"; } }
def :pub open_fn() -> str { return "open"; }
def prot_fn() -> str { return "prot"; }
def :priv priv_fn() -> str { return "priv"; }
"""


def test_walker_and_function_access_levels(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", ACCESS_APP)
    with TestApp(app, tmp_path / "data", env=FAST_ENV) as c:
        user = new_user(c)
        for kind, name in (("walker", "open_w"), ("function", "open_fn")):
            assert c.post(f"/{kind}/{name}", json={}).status_code == 200
            assert c.post(f"/{kind}/{name}", json={}, headers=user["headers"]).status_code == 200
        for kind, name in (("walker", "prot_w"), ("function", "prot_fn")):
            resp = c.post(f"/{kind}/{name}", json={})
            assert resp.status_code == 401 and error_code(resp) == "UNAUTHORIZED"
            assert c.post(f"/{kind}/{name}", json={}, headers=bearer("nope")).status_code == 401
            ok = c.post(f"/{kind}/{name}", json={}, headers=user["headers"])
            assert ok.status_code == 200, ok.text
        for kind, name in (("walker", "priv_w"), ("function", "priv_fn")):
            assert c.post(f"/{kind}/{name}", json={}).status_code == 404
            assert c.post(f"/{kind}/{name}", json={}, headers=user["headers"]).status_code == 404


# -- OpenAPI -----------------------------------------------------------------------

AUTH_OPERATIONS = [
    ("/user/register", "post"),
    ("/user/login", "post"),
    ("/user/me", "get"),
    ("/user/me", "delete"),
    ("/user/password", "put"),
    ("/user/refresh", "post"),
    ("/user/refresh-token", "post"),
    ("/sso/{platform}/login", "get"),
    ("/sso/{platform}/register", "get"),
    ("/sso/{platform}/login/callback", "get"),
]


def test_every_auth_endpoint_is_in_openapi(client: TestClient) -> None:
    resp = client.get("/openapi.json")
    assert resp.status_code == 200, resp.text
    paths = resp.json()["paths"]
    for path, method in AUTH_OPERATIONS:
        assert method in paths.get(path, {}), f"{method.upper()} {path} missing from /openapi.json"
        op = paths[path][method]
        assert op["responses"], f"{path} has no responses"
    login_op = paths["/user/login"]["post"]
    ok = login_op["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(ok["required"]) == {
        "access_token", "token_type", "expires_in", "user_id", "root_id", "ok", "type", "data"
    }  # fmt: skip
    assert "requestBody" in paths["/user/register"]["post"]
    assert paths["/user/me"]["get"]["security"] == [{"bearerAuth": []}]
