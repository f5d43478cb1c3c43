"""SSO: the OpenID Connect code flow (state, nonce, PKCE) against a local test provider."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from starlette.testclient import TestClient

from jacscale_core.testing import TestApp, free_port
from jacscale_core.testing.memory_docs import MemoryDocs
from jacscale_ext.auth.accounts import Accounts
from jacscale_ext.auth.passwords import FAST_FOR_TESTS, PasswordHasher
from jacscale_ext.auth.sso import (
    OidcProvider,
    SsoError,
    allowed_redirect,
    callback_url,
    pkce_challenge,
    token_redirect,
)
from jacscale_ext.auth.throttle import FailureThrottle
from jacscale_ext.auth.tokens import TokenService
from jacscale_ext.auth.users import UserStore
from tests.auth.helpers import FAST_ENV, PASSWORD, TODO_APP, bearer, register, unique_email
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProviderDouble, oidc_provider

HOST = "http://testserver"


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcProviderDouble]:
    with oidc_provider() as provider:
        yield provider


def sso_env(idp: OidcProviderDouble, **extra: str) -> dict[str, str]:
    return {
        **FAST_ENV,
        "SSO_HOST": HOST,
        "SSO_GOOGLE_CLIENT_ID": CLIENT_ID,
        "SSO_GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
        "SSO_GOOGLE_DISCOVERY_URL": idp.discovery_url,
        **extra,
    }


@pytest.fixture(scope="module")
def app_client(
    idp: OidcProviderDouble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    with TestApp(TODO_APP, tmp_path_factory.mktemp("sso-data"), env=sso_env(idp)) as c:
        yield c


@pytest.fixture
def client(app_client: TestClient, idp: OidcProviderDouble) -> TestClient:
    """The shared app with a fresh browser (no cookies) and a reset provider."""
    app_client.cookies.clear()
    idp.tamper = None
    idp.deny_next = False
    idp.user = {"sub": "sub-" + unique_email("s").split("@")[0], "email": unique_email("sso"),
                "email_verified": True}  # fmt: skip
    idp.requests.clear()
    return app_client


def start(client: TestClient, path: str = "/sso/google/login") -> str:
    """Begin a flow; return the provider URL the browser is sent to."""
    resp = client.get(path, follow_redirects=False)
    assert resp.status_code == 302, resp.text
    return str(resp.headers["location"])


def at_provider(url: str) -> str:
    """The browser visits the provider, which redirects back; return that callback URL."""
    resp = httpx.get(url, follow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text
    return str(resp.headers["location"])


def back_to_app(client: TestClient, callback: str) -> Any:
    parts = urlsplit(callback)
    assert f"{parts.scheme}://{parts.netloc}" == HOST
    return client.get(f"{parts.path}?{parts.query}", follow_redirects=False)


def sign_in(client: TestClient, path: str = "/sso/google/login") -> Any:
    return back_to_app(client, at_provider(start(client, path)))


# -- the happy path -----------------------------------------------------------------


def test_sign_in_creates_a_user_with_its_own_root(
    client: TestClient, idp: OidcProviderDouble
) -> None:
    resp = sign_in(client)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (
        body["token_type"] == "bearer" and body["platform"] == "google" and body["created"] is True
    )
    assert resp.headers["cache-control"] == "no-store"
    assert body["data"]["token"] == body["access_token"]  # what jac-scale clients read
    me = client.get("/user/me", headers=bearer(body["access_token"])).json()
    assert me["email"] == idp.user["email"] and me["email_verified"] is True
    assert me["sso"] == ["google"] and me["root_id"] == body["root_id"]
    assert me["data"]["identities"][-1] == {
        "type": "sso", "provider": "google", "verified": True, "is_recovery": False,
    }  # fmt: skip
    added = client.post(
        "/walker/add_todo", json={"title": "via sso"}, headers=bearer(body["access_token"])
    )
    assert added.status_code == 200
    again = sign_in(client).json()
    assert again["user_id"] == body["user_id"] and again["created"] is False
    # an SSO-only account has no password to log in with
    login = client.post(
        "/user/login", json={"email": idp.user["email"], "password": "anything-at-all"}
    )
    assert login.status_code == 401


def test_authorization_request_carries_state_nonce_and_pkce(
    client: TestClient, idp: OidcProviderDouble
) -> None:
    url = start(client)
    assert url.startswith(idp.base_url + "/authorize?")
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID
    assert q["redirect_uri"] == f"{HOST}/sso/google/login/callback"
    assert set(q["scope"].split()) >= {"openid", "email"}
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert len(q["nonce"]) >= 16 and len(q["state"]) > 40
    assert q["prompt"] == "select_account"
    cookie = [c for c in client.cookies.jar if c.name.startswith("jacscale_sso_")]
    assert len(cookie) == 1 and cookie[0].path == "/sso/"
    assert pkce_challenge(str(cookie[0].value)) == q["code_challenge"]
    resp = back_to_app(client, at_provider(url))
    assert resp.status_code == 200
    token_call = [r for r in idp.requests if r[0] == "POST" and r[1] == "/token"][-1][2]
    assert token_call["code_verifier"] == cookie[0].value
    assert token_call["redirect_uri"] == q["redirect_uri"]
    assert not [c for c in client.cookies.jar if c.name.startswith("jacscale_sso_")], (
        "cookie cleared"
    )


def test_register_operation(client: TestClient) -> None:
    url = start(client, "/sso/google/register")
    assert "consent" in parse_qs(urlsplit(url).query)["prompt"][0]
    resp = back_to_app(client, at_provider(url))
    assert resp.status_code == 200 and resp.json()["created"] is True


def test_jac_scale_callback_path_also_works(client: TestClient) -> None:
    callback = at_provider(start(client))
    parts = urlsplit(callback)
    resp = client.get(f"/sso/google/callback?{parts.query}", follow_redirects=False)
    assert resp.status_code == 200, resp.text


# -- account linking ------------------------------------------------------------------


def test_links_to_existing_account_by_verified_email(
    client: TestClient, idp: OidcProviderDouble
) -> None:
    email = unique_email("link")
    reg = register(client, email)
    idp.user = {"sub": "linked-sub-1" + email, "email": email.upper(), "email_verified": True}
    body = sign_in(client).json()
    assert body["user_id"] == reg["user_id"] and body["created"] is False
    assert (
        client.post("/user/login", json={"email": email, "password": PASSWORD}).status_code == 200
    )
    me = client.get("/user/me", headers=bearer(body["access_token"])).json()
    assert me["sso"] == ["google"] and me["email_verified"] is True


def test_unverified_email_does_not_link(client: TestClient, idp: OidcProviderDouble) -> None:
    email = unique_email("victim")
    reg = register(client, email)
    idp.user = {"sub": "attacker-sub" + email, "email": email, "email_verified": False}
    body = sign_in(client).json()
    assert body["user_id"] != reg["user_id"] and body["created"] is True
    me = client.get("/user/me", headers=bearer(body["access_token"])).json()
    assert "email" not in me, "the unverified address is not claimed"


# -- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    [
        "aud",
        "azp",
        "iss",
        "exp",
        "no_exp",
        "nonce",
        "unknown_kid",
        "wrong_key",
        "alg_hs256",
        "alg_none",
    ],
)
def test_bad_id_tokens_are_refused(
    client: TestClient, idp: OidcProviderDouble, tamper: str
) -> None:
    callback = at_provider(start(client))
    idp.tamper = tamper
    resp = back_to_app(client, callback)
    assert resp.status_code == 401, f"{tamper}: {resp.text}"
    assert resp.json()["error"]["code"] == "UNAUTHORIZED"
    assert "access_token" not in resp.text
    idp.tamper = None


def test_callback_from_another_browser_is_refused(
    client: TestClient, idp: OidcProviderDouble
) -> None:
    callback = at_provider(start(client))
    client.cookies.clear()  # the victim's browser never started this flow
    resp = back_to_app(client, callback)
    assert resp.status_code == 400
    assert "not started in this browser" in resp.json()["error"]["message"]
    assert not [r for r in idp.requests if r[1] == "/token"], "the code was never redeemed"


def test_state_is_checked(client: TestClient) -> None:
    callback = at_provider(start(client))
    parts = urlsplit(callback)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    forged = q["state"][:-4] + ("AAAA" if not q["state"].endswith("AAAA") else "BBBB")
    resp = client.get(f"/sso/google/login/callback?code={q['code']}&state={forged}")
    assert resp.status_code == 400
    assert client.get(f"/sso/google/login/callback?code={q['code']}").status_code == 400
    access = client.post("/user/register", json={"email": unique_email(), "password": PASSWORD})
    assert access.status_code == 201
    resp = client.get(f"/sso/google/login/callback?code={q['code']}&state={q['state']}")
    assert resp.status_code == 200, "the real state still works once"


def test_replayed_callback_is_refused(client: TestClient) -> None:
    callback = at_provider(start(client))
    first = back_to_app(client, callback)
    assert first.status_code == 200
    assert back_to_app(client, callback).status_code == 400, "cookie is gone"


def test_provider_error_is_reported(client: TestClient, idp: OidcProviderDouble) -> None:
    idp.deny_next = True
    resp = back_to_app(client, at_provider(start(client)))
    assert resp.status_code == 401
    assert "access_denied" in resp.json()["error"]["message"]


def test_unknown_and_unconfigured_platforms(client: TestClient, tmp_path: Path) -> None:
    assert client.get("/sso/github/login", follow_redirects=False).status_code == 404
    assert client.get("/sso/NOT%20OK/login", follow_redirects=False).status_code == 404
    with TestApp(TODO_APP, tmp_path, env=FAST_ENV) as c:
        resp = c.get("/sso/google/login", follow_redirects=False)
        assert resp.status_code == 404
        assert "SSO_GOOGLE_CLIENT_ID" in resp.json()["error"]["message"]


def test_unreachable_provider_is_a_502_not_a_hang(tmp_path: Path, idp: OidcProviderDouble) -> None:
    env = sso_env(idp, SSO_GOOGLE_DISCOVERY_URL=f"http://127.0.0.1:{free_port()}/.well-known/x")
    with TestApp(TODO_APP, tmp_path, env=env) as c:
        resp = c.get("/sso/google/login", follow_redirects=False)
        assert resp.status_code == 502
        assert CLIENT_SECRET not in resp.text


# -- handing the token to a single-page app ----------------------------------------------


def test_front_end_redirect_hands_over_the_token_in_the_fragment(
    idp: OidcProviderDouble, tmp_path: Path
) -> None:
    env = sso_env(idp, SSO_FRONTEND_REDIRECT="https://app.example.com/auth/done")
    with TestApp(TODO_APP, tmp_path, env=env) as c:
        resp = sign_in(c)
        assert resp.status_code == 302
        target = urlsplit(resp.headers["location"])
        assert (target.scheme, target.netloc, target.path) == (
            "https",
            "app.example.com",
            "/auth/done",
        )
        assert target.query == ""
        values = {k: v[0] for k, v in parse_qs(target.fragment).items()}
        assert values["token_type"] == "bearer" and values["token"] == values["access_token"]
        assert c.get("/user/me", headers=bearer(values["access_token"])).status_code == 200
        # failures go back to the app too, without a token
        idp.deny_next = True
        resp = sign_in(c)
        assert resp.status_code == 302
        fragment = {
            k: v[0] for k, v in parse_qs(urlsplit(resp.headers["location"]).fragment).items()
        }
        assert fragment["error"] == "UNAUTHORIZED" and "access_token" not in fragment


def test_requested_redirect_must_be_allowed(client: TestClient) -> None:
    resp = client.get(
        "/sso/google/login?redirect_uri=https://evil.example/steal", follow_redirects=False
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["loc"] == ["query", "redirect_uri"]
    resp = client.get(
        "/sso/google/login?client_callback=http://evil.example@127.0.0.1/x", follow_redirects=False
    )
    assert resp.status_code == 422
    url = start(client, "/sso/google/login?client_callback=http://127.0.0.1:5173/cb")
    resp = back_to_app(client, at_provider(url))
    assert resp.status_code == 302
    assert resp.headers["location"].startswith("http://127.0.0.1:5173/cb#access_token=")


# -- units -----------------------------------------------------------------------------


def test_pkce_rfc7636_vector() -> None:
    assert pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_callback_url_accepts_both_host_forms() -> None:
    expected = "http://localhost:8000/sso/google/login/callback"
    assert callback_url("http://localhost:8000", "google") == expected
    assert callback_url("http://localhost:8000/sso", "google") == expected
    assert callback_url("http://localhost:8000/sso/", "google") == expected


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://app.example.com/done", True),
        ("https://app.example.com/done?x=1", True),
        ("https://app.example.com/other", False),
        ("https://app.example.com.evil.io/done", False),
        ("https://user@app.example.com/done", False),
        ("http://127.0.0.1:9000/cb", True),
        ("http://localhost/cb", True),
        ("http://[::1]:8080/cb", True),
        ("javascript:alert(1)", False),
        ("//evil.example/x", False),
        ("https://app.example.com/done#frag", False),
    ],
)
def test_allowed_redirect(url: str, ok: bool) -> None:
    assert allowed_redirect(url, ["https://app.example.com/done"], allow_loopback=True) is ok


def test_loopback_can_be_switched_off() -> None:
    assert not allowed_redirect("http://127.0.0.1:9000/cb", [], allow_loopback=False)


def test_token_redirect_forms() -> None:
    assert token_redirect("https://a.io/x#old", {"t": "1"}, "fragment") == "https://a.io/x#t=1"
    assert token_redirect("https://a.io/x?y=2", {"t": "1"}, "query") == "https://a.io/x?y=2&t=1"


def test_provider_unit_rejects_wrong_nonce(idp: OidcProviderDouble) -> None:
    """OidcProvider on its own: a full code exchange, then a nonce mismatch."""

    async def main() -> None:
        async with httpx.AsyncClient() as http:
            provider = OidcProvider(
                "test", client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                discovery_url=idp.discovery_url, http=http,
            )  # fmt: skip
            callback = "http://testserver/cb"
            verifier = "v" * 50
            url = await provider.authorization_url(
                redirect_uri=callback, state="s", nonce="n-123", code_challenge=pkce_challenge(verifier),
                operation="login",
            )  # fmt: skip
            resp = await http.get(url, follow_redirects=False)
            code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
            identity = await provider.complete(
                code=code, code_verifier=verifier, redirect_uri=callback, nonce="n-123"
            )
            assert identity.subject == idp.user["sub"] and identity.email_verified is True
            resp = await http.get(url, follow_redirects=False)
            code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
            with pytest.raises(SsoError, match="nonce mismatch") as bad:
                await provider.complete(
                    code=code, code_verifier=verifier, redirect_uri=callback, nonce="other"
                )
            assert bad.value.public == "test sent a bad ID token"
            resp = await http.get(url, follow_redirects=False)
            code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
            with pytest.raises(SsoError, match="token endpoint answered 400") as refused:
                await provider.complete(
                    code=code, code_verifier="w" * 50, redirect_uri=callback, nonce="n-123"
                )
            assert refused.value.public == "test refused the sign-in"

    anyio.run(main)


def test_auto_register_off_refuses_unknown_identities() -> None:
    async def main() -> None:
        roots: list[str] = []

        async def create_root() -> str:
            roots.append(f"{len(roots):032x}")
            return roots[-1]

        accounts = Accounts(
            store=UserStore(MemoryDocs()),
            hasher=PasswordHasher(FAST_FOR_TESTS),
            tokens=TokenService("k" * 40),
            throttle=FailureThrottle({}),
            create_root=create_root,
        )
        with pytest.raises(Exception, match="No account is linked"):
            await accounts.sso_sign_in(
                "google", "s1", "a@example.com", True, allow_create=False, link_by_email=True
            )
        user, created = await accounts.sso_sign_in(
            "google", "s1", "a@example.com", True, allow_create=True, link_by_email=True
        )
        assert created and user.email == "a@example.com" and roots == [user.root_id]
        again, created = await accounts.sso_sign_in(
            "google", "s1", None, False, allow_create=False, link_by_email=True
        )
        assert again.user_id == user.user_id and not created

    anyio.run(main)


def test_disabled_account_cannot_sign_in(client: TestClient) -> None:
    body = sign_in(client).json()
    accounts = client.app.state.jacscale.state["auth"].accounts  # type: ignore[attr-defined]
    accounts.store.update(body["user_id"], {"disabled": True}, new_session=True)
    accounts._forget(body["user_id"])
    try:
        refused = sign_in(client)
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == "This account is disabled"
        assert client.get("/user/me", headers=bearer(body["access_token"])).status_code == 401
    finally:
        accounts.store.update(body["user_id"], {"disabled": False})
        accounts._forget(body["user_id"])

