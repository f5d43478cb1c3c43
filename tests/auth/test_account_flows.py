"""Account flows: forgot/reset password, email verification, add-identity, PATCH /user/me.

Email goes to a real local SMTP server (aiosmtpd, STARTTLS + AUTH) through the
built-in mailer; tokens are read from the delivered messages.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from jacscale_core.testing import TestApp
from jacscale_ext.auth.action_tokens import TOKENS, token_hash
from tests.auth.helpers import FAST_ENV, PASSWORD, bearer, login, register, unique_email, write_app
from tests.support.smtp_server import SmtpServer, smtp_server

SOURCE = (Path(__file__).resolve().parents[2] / "examples" / "12_graph_explorer.jac").read_text()
TOKEN_RE = re.compile(r"^([A-Za-z0-9_-]{40,})\r?$", re.MULTILINE)


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path_factory.mktemp("smtp")) as server:
        yield server


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer) -> Iterator[TestClient]:
    directory = tmp_path_factory.mktemp("flows")
    toml = smtp.toml() + "\n[plugins.scale.auth]\nemail_max_per_identity = 3\n"
    app = write_app(directory, SOURCE, toml)
    with TestApp(app, directory / "data", env=FAST_ENV) as c:
        yield c


def token_in(message: Any) -> str:
    """The one-time token of an emailed link (the body carries it on its own line)."""
    found = TOKEN_RE.search(message.get_content())
    assert found, message.get_content()
    return found.group(1)


def mail_count(smtp: SmtpServer) -> int:
    with smtp.lock:
        return len(smtp.messages)


def forgot(client: TestClient, email: str) -> dict[str, Any]:
    resp = client.post("/user/forgot-password", json={"email": email})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_forgot_and_reset_password(client: TestClient, smtp: SmtpServer) -> None:
    email = unique_email("reset")
    register(client, email)
    old_token = login(client, email)["access_token"]
    before = mail_count(smtp)
    answer = forgot(client, email)
    assert answer["status"] == "ok"
    message = smtp.wait_for(before + 1)[-1]
    assert message["To"] == email and message["Subject"] == "Reset your password"
    assert message["From"] == "app@example.com"
    assert USER_LOGGED_IN(smtp)
    token = token_in(message)
    resp = client.post(
        "/user/reset-password", json={"token": token, "new_password": "brand-new-pw"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "password_reset"
    # the old password and every earlier session are gone; the new password works
    assert (
        client.post("/user/login", json={"email": email, "password": PASSWORD}).status_code == 401
    )
    assert client.get("/user/me", headers=bearer(old_token)).status_code == 401
    me = client.get(
        "/user/me", headers=bearer(login(client, email, "brand-new-pw")["access_token"])
    )
    assert me.json()["email_verified"] is True  # the link reached the mailbox
    # single use
    again = client.post(
        "/user/reset-password", json={"token": token, "new_password": "another-pw-1"}
    )
    assert again.status_code == 400
    assert again.json()["error"]["details"][0]["loc"] == ["body", "token"]


def USER_LOGGED_IN(smtp: SmtpServer) -> bool:  # noqa: N802 - reads as a fact in the assert
    return bool(smtp.logins)


def test_forgot_password_does_not_reveal_accounts(client: TestClient, smtp: SmtpServer) -> None:
    email = unique_email("exists")
    register(client, email)
    before = mail_count(smtp)
    known = client.post("/user/forgot-password", json={"email": email})
    unknown = client.post("/user/forgot-password", json={"email": unique_email("nobody")})
    assert known.status_code == unknown.status_code == 200
    same = {k: v for k, v in known.json().items() if k != "meta"}
    assert same == {k: v for k, v in unknown.json().items() if k != "meta"}  # meta: the request id
    assert known.headers.get("content-length") == unknown.headers.get("content-length")
    smtp.wait_for(before + 1)
    time.sleep(0.3)
    assert mail_count(smtp) == before + 1  # only the real account got mail


def test_reset_tokens_are_hashed_and_earlier_ones_revoked(
    client: TestClient, smtp: SmtpServer
) -> None:
    email = unique_email("hashed")
    register(client, email)
    before = mail_count(smtp)
    forgot(client, email)
    first = token_in(smtp.wait_for(before + 1)[-1])
    forgot(client, email)
    second = token_in(smtp.wait_for(before + 2)[-1])
    docs = client.app.state.jacscale.store.docs  # type: ignore[attr-defined]
    assert docs.get(TOKENS, token_hash(second)) is not None
    assert docs.get(TOKENS, second) is None  # the text itself is never stored
    assert docs.get(TOKENS, token_hash(first)) is None  # a new link replaces the old one
    assert client.post("/user/reset-password",
                       json={"token": first, "new_password": "newer-pw-1"}).status_code == 400  # fmt: skip


def test_expired_reset_token_is_refused(client: TestClient) -> None:
    email = unique_email("expired")
    user = register(client, email)
    ctx = client.app.state.jacscale  # type: ignore[attr-defined]
    from jacscale_ext.auth.action_tokens import ActionTokens

    token = ActionTokens(ctx.store.docs, clock=lambda: time.time() - 7200).issue(
        user["user_id"], "reset", email, 1800
    )
    resp = client.post("/user/reset-password", json={"token": token, "new_password": "newer-pw-1"})
    assert resp.status_code == 400
    assert login(client, email)["access_token"]  # password unchanged


def test_forgot_password_is_throttled_per_address(client: TestClient) -> None:
    email = unique_email("throttle")
    for _ in range(3):
        assert client.post("/user/forgot-password", json={"email": email}).status_code == 200
    resp = client.post("/user/forgot-password", json={"email": email})
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) > 0
    # an address nobody registered is throttled the same way: 429 reveals nothing
    assert client.post("/user/forgot-password", json={"email": unique_email()}).status_code == 200


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "email"]),
        ({"email": "not-an-email"}, ["body", "email"]),
        ({"email": 5}, ["body", "email"]),
        ({"identity": "x"}, ["body", "identity"]),
    ],
)
def test_forgot_password_bad_input(
    client: TestClient, body: dict[str, Any], loc: list[str]
) -> None:
    resp = client.post("/user/forgot-password", json=body)
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["loc"] == loc


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"new_password": "long-enough"}, ["body", "token"]),
        ({"token": "", "new_password": "long-enough"}, ["body", "token"]),
        ({"token": "x" * 43}, ["body", "new_password"]),
        ({"token": "x" * 43, "new_password": "123"}, ["body", "new_password"]),
    ],
)
def test_reset_password_bad_input(client: TestClient, body: dict[str, Any], loc: list[str]) -> None:
    resp = client.post("/user/reset-password", json=body)
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["loc"] == loc


def test_reset_with_unknown_token_is_400(client: TestClient) -> None:
    resp = client.post(
        "/user/reset-password", json={"token": "x" * 43, "new_password": "long-enough"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == "Reset token is invalid or expired"


def test_jac_scale_identity_shape_is_accepted(client: TestClient, smtp: SmtpServer) -> None:
    email = unique_email("shape")
    register(client, email)
    before = mail_count(smtp)
    resp = client.post(
        "/user/forgot-password", json={"identity": {"type": "email", "value": email}}
    )
    assert resp.status_code == 200
    assert smtp.wait_for(before + 1)[-1]["To"] == email


def test_email_verification(client: TestClient, smtp: SmtpServer) -> None:
    email = unique_email("verify")
    register(client, email)
    token = login(client, email)["access_token"]
    assert client.post("/user/send-verification").status_code == 401
    before = mail_count(smtp)
    resp = client.post("/user/send-verification", headers=bearer(token))
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "pending_verification" and resp.json()["email_sent"] is True
    message = smtp.wait_for(before + 1)[-1]
    assert message["Subject"] == "Verify your email"
    verify = client.post("/user/verify-identity", json={"token": token_in(message)})
    assert verify.status_code == 200
    assert verify.json()["status"] == "verified" and verify.json()["identity"] == email
    assert verify.json()["data"] == {"status": "verified", "identity": email}  # jac-scale's place
    assert client.get("/user/me", headers=bearer(token)).json()["email_verified"] is True
    again = client.post("/user/send-verification", headers=bearer(token))
    assert again.json()["status"] == "already_verified"
    reused = client.post("/user/verify-identity", json={"token": token_in(message)})
    assert reused.status_code == 400


def test_send_verification_for_another_email_is_404(client: TestClient) -> None:
    email = unique_email("other")
    register(client, email)
    token = login(client, email)["access_token"]
    resp = client.post("/user/send-verification", headers=bearer(token),
                       json={"email": unique_email("notmine")})  # fmt: skip
    assert resp.status_code == 404


def test_reset_token_does_not_verify_and_vice_versa(client: TestClient, smtp: SmtpServer) -> None:
    email = unique_email("purpose")
    register(client, email)
    before = mail_count(smtp)
    forgot(client, email)
    reset_token = token_in(smtp.wait_for(before + 1)[-1])
    assert client.post("/user/verify-identity", json={"token": reset_token}).status_code == 400


def test_add_identity(client: TestClient) -> None:
    name = "user" + unique_email().split("@")[0].replace("-", "")
    resp = client.post("/user/register", json={"username": name, "password": PASSWORD})
    assert resp.status_code == 201
    token = client.post("/user/login", json={"username": name, "password": PASSWORD}).json()[
        "access_token"
    ]
    email = unique_email("added")
    added = client.post("/user/add-identity", headers=bearer(token),
                        json={"identity": {"type": "email", "value": email}})  # fmt: skip
    assert added.status_code == 200, added.text
    assert added.json()["data"] == {"status": "added", "email": email, "verified": False}
    assert login(client, email)["user_id"] == resp.json()["user_id"]
    again = client.post("/user/add-identity", headers=bearer(token), json={"email": unique_email()})
    assert again.status_code == 409
    taken_email = unique_email("taken2")
    register(client, taken_email)
    name2 = name + "b"
    client.post("/user/register", json={"username": name2, "password": PASSWORD})
    token2 = client.post("/user/login", json={"username": name2, "password": PASSWORD}).json()[
        "access_token"
    ]
    clash = client.post("/user/add-identity", headers=bearer(token2), json={"email": taken_email})
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "IDENTITY_TAKEN"
    bad = client.post("/user/add-identity", headers=bearer(token2), json={"email": "nope"})
    assert bad.status_code == 422
    assert client.post("/user/add-identity", json={"email": unique_email()}).status_code == 401


def test_patch_me_merges_profile(client: TestClient) -> None:
    email = unique_email("profile")
    register(client, email, profile={"firstname": "Ada", "city": "London"})
    token = login(client, email)["access_token"]
    resp = client.patch("/user/me", headers=bearer(token),
                        json={"profile": {"lastname": "Lovelace", "city": None}})  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert resp.json()["profile"] == {"firstname": "Ada", "lastname": "Lovelace"}
    assert client.get("/user/me", headers=bearer(token)).json()["profile"] == resp.json()["profile"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "profile"]),
        ({"profile": "x"}, ["body", "profile"]),
        ({"profile": {"9bad": 1}}, ["body", "profile", "9bad"]),
        ({"profile": {"a": {"nested": 1}}}, ["body", "profile", "a"]),
        ({"profile": {}, "email": "x@example.com"}, ["body", "email"]),
        ({"profile": {f"k{i}": i for i in range(21)}}, ["body", "profile"]),
    ],
)
def test_patch_me_bad_input(client: TestClient, body: dict[str, Any], loc: list[str]) -> None:
    email = unique_email("badprofile")
    register(client, email)
    token = login(client, email)["access_token"]
    resp = client.patch("/user/me", headers=bearer(token), json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"][0]["loc"] == loc
    assert "profile" not in client.get("/user/me", headers=bearer(token)).json()


def test_without_a_mailer_the_log_has_no_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = write_app(tmp_path, SOURCE)
    with TestApp(app, tmp_path / "data", env=FAST_ENV) as c:
        email = unique_email("nomailer")
        register(c, email)
        with caplog.at_level(logging.INFO):
            assert c.post("/user/forgot-password", json={"email": email}).status_code == 200
        docs = c.app.state.jacscale.store.docs  # type: ignore[attr-defined]
        stored = docs.find(TOKENS, {"purpose": "reset"})
    assert len(stored) == 1
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "email not sent (no mailer" in text and "purpose=password_reset" in text
    assert email not in text  # the address is masked
    assert stored[0]["_id"] not in text
