"""Webhooks and API keys: every scheme, every rejection, durability, and the reference document's curl example."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from jacscale_core.app import create_app
from jacscale_core.config import ConfigError
from jacscale_core.testing import TestApp, running_server
from jacscale_core.testing.header_auth import HeaderAuth
from jacscale_core.testing.memory_docs import MemoryDocs
from jacscale_ext.webhooks.deliveries import DeliveryLog, Replayed
from jacscale_ext.webhooks.keys import SecretBox, hash_key

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "03_webhook.jac"
SECRET = "s" * 16 + uuid.uuid4().hex  # 48 characters
ALICE = {"X-Test-User": "alice"}
BOB = {"X-Test-User": "bob"}

EXTRA_WALKERS = """
node Payment {
    has payment_id: str;
}

@restspec(protocol=APIProtocol.WEBHOOK)
walker RecordPayment {
    has payment_id: str;
    can record with Root entry {
        here ++> Payment(payment_id=self.payment_id);
        report {"recorded": self.payment_id};
    }
}

walker ListPayments {
    can list with Root entry { report [p.payment_id for p in [-->(?:Payment)]]; }
}

@restspec(protocol=APIProtocol.WEBHOOK)
walker Explode {
    has event: str = "";
    can go with Root entry { raise ValueError("exploded on purpose"); }
}

@restspec(protocol=APIProtocol.WEBHOOK)
walker Signed {
    has event: str;
    can go with Root entry { report {"event": self.event}; }
}

@restspec(protocol=APIProtocol.WEBHOOK)
walker Standard {
    has event: str;
    can go with Root entry { report {"event": self.event}; }
}

@restspec(protocol=APIProtocol.WEBHOOK)
walker GitHubPush {
    has ref: str = "";
    has zen: str = "";
    can go with Root entry { report {"ref": self.ref, "zen": self.zen}; }
}

@restspec(protocol=APIProtocol.WEBHOOK)
walker StripeEvent {
    has id: str;
    has type: str;
    can go with Root entry { report {"id": self.id, "type": self.type}; }
}
"""

SCHEMES_TOML = """
[plugins.scale.webhook]
max_body_bytes = 2048
replay_window_seconds = 300

[plugins.scale.webhook.walkers.Signed]
scheme = "signed"

[plugins.scale.webhook.walkers.Explode]
scheme = "signed"

[plugins.scale.webhook.walkers.Standard]
scheme = "standard-webhooks"

[plugins.scale.webhook.walkers.GitHubPush]
scheme = "github"
ignore_unknown_fields = true

[plugins.scale.webhook.walkers.StripeEvent]
scheme = "stripe"
ignore_unknown_fields = true
"""


def make_app(directory: Path, toml: str = "") -> Path:
    """The documented example program plus the walkers above, with an optional jac.toml, in `directory`.

    Each gets its own module name: two programs loaded in one process must not share one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    app = directory / f"wh_{uuid.uuid4().hex[:10]}.jac"
    app.write_text(SEED.read_text() + EXTRA_WALKERS)
    if toml:
        (directory / "jac.toml").write_text(toml)
    return app


def seed_signature(key: str, body: bytes) -> str:
    """What `openssl dgst -sha256 -hmac "$API_KEY"` prints."""
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error of an error envelope with the expected status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False and body["meta"]["extra"]["http_status"] == status
    return dict(body["error"])


def new_key(client: TestClient, user: dict[str, str] = ALICE, **fields: Any) -> dict[str, Any]:
    """Create an API key and return the creation answer."""
    r = client.post("/api-key/create", json={"name": "test key", **fields}, headers=user)
    assert r.status_code == 201, r.text
    return dict(r.json())


def call_seed(
    client: TestClient, key: str | None, payload: dict[str, Any], walker: str = "PaymentReceived",
    signature: str | None = None, headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a webhook signed with the reference document's scheme."""
    body = json.dumps(payload).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        sent["X-API-Key"] = key
        sent["X-Webhook-Signature"] = signature if signature is not None else seed_signature(key, body)
    return client.post(f"/webhook/{walker}", content=body, headers=sent)


PAYMENT = {"payment_id": "PAY-12345", "amount": 99.99, "currency": "USD"}


@pytest.fixture(scope="module")
def seed_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The documented scheme (the default), no WEBHOOK_SECRET."""
    directory = tmp_path_factory.mktemp("wh-seed")
    app = make_app(directory / "app")
    with TestApp(app, directory / "data", plugins=[HeaderAuth()]) as client:
        yield client


@pytest.fixture(scope="module")
def schemes_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Per-walker schemes, WEBHOOK_SECRET set, a 2 KiB body cap."""
    directory = tmp_path_factory.mktemp("wh-schemes")
    app = make_app(directory / "app", SCHEMES_TOML)
    with TestApp(app, directory / "data", env={"WEBHOOK_SECRET": SECRET}, plugins=[HeaderAuth()]) as client:
        yield client


# --------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------


def test_create_answers_the_seed_shape(seed_client: TestClient) -> None:
    answer = new_key(seed_client, expiry_days=30)
    assert set(answer) == {"api_key", "api_key_id", "name", "created_at", "expires_at"}
    assert answer["name"] == "test key"
    assert answer["api_key"].startswith("jsk_" + answer["api_key_id"])
    created = time.strptime(answer["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    expires = time.strptime(answer["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert round((time.mktime(expires) - time.mktime(created)) / 86400) == 30


def test_expiry_zero_is_permanent_and_default_comes_from_config(seed_client: TestClient) -> None:
    permanent = new_key(seed_client, expiry_days=0)
    assert permanent["expires_at"] is None
    assert call_seed(seed_client, permanent["api_key"], PAYMENT).status_code == 200
    default = new_key(seed_client)
    created = time.mktime(time.strptime(default["created_at"], "%Y-%m-%dT%H:%M:%SZ"))
    expires = time.mktime(time.strptime(default["expires_at"], "%Y-%m-%dT%H:%M:%SZ"))
    assert round((expires - created) / 86400) == 365


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": 3}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "k", "expiry_days": "30"}, "expiry_days"),
        ({"name": "k", "expiry_days": -1}, "expiry_days"),
        ({"name": "k", "expiry_days": True}, "expiry_days"),
        ({"name": "k", "expiry_days": 40_000}, "expiry_days"),
        ({"name": "k", "allowed_walkers": 5}, "allowed_walkers"),
        ({"name": "k", "allowed_walkers": ["ListPayments"]}, "allowed_walkers"),
        ({"name": "k", "signing_secret": "whsec_abcdefghijklmnopqrstuvwxyz"}, "signing_secret"),
        ({"name": "k", "color": "red"}, "color"),
    ],
)
def test_create_rejects_bad_fields_by_name(seed_client: TestClient, body: dict[str, Any], field: str) -> None:
    err = error_of(seed_client.post("/api-key/create", json=body, headers=ALICE), 422)
    assert err["code"] == "VALIDATION_ERROR"
    assert field in {d["loc"][-1] for d in err["details"]}


def test_create_rejects_non_json(seed_client: TestClient) -> None:
    r = seed_client.post("/api-key/create", content=b"{nope", headers={**ALICE, "Content-Type": "application/json"})
    assert error_of(r, 422)["details"][0]["loc"] == ["body"]
    r = seed_client.post("/api-key/create", content=b"name=x", headers={**ALICE, "Content-Type": "text/plain"})
    assert error_of(r, 415)["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_key_endpoints_need_a_logged_in_user(seed_client: TestClient) -> None:
    assert error_of(seed_client.post("/api-key/create", json={"name": "k"}), 401)["code"] == "UNAUTHORIZED"
    assert error_of(seed_client.get("/api-key/list"), 401)["code"] == "UNAUTHORIZED"
    assert error_of(seed_client.delete("/api-key/" + "0" * 32), 401)["code"] == "UNAUTHORIZED"
    bad = {"X-Test-User": "!bad"}
    assert error_of(seed_client.get("/api-key/list", headers=bad), 401)["code"] == "UNAUTHORIZED"


def test_list_shows_only_my_keys_without_secrets(seed_client: TestClient) -> None:
    carol = {"X-Test-User": "carol"}
    mine = new_key(seed_client, carol, expiry_days=5)
    new_key(seed_client, {"X-Test-User": "dave"})
    r = seed_client.get("/api-key/list", headers=carol)
    assert r.status_code == 200
    keys = r.json()["api_keys"]
    assert [k["api_key_id"] for k in keys] == [mine["api_key_id"]]
    item = keys[0]
    assert {"api_key_id", "name", "created_at", "expires_at", "active"} <= set(item)
    assert item["active"] is True and "api_key" not in item and mine["api_key"] not in r.text


def test_revoke_unknown_404_foreign_403_own_200_then_the_key_stops(seed_client: TestClient) -> None:
    key = new_key(seed_client, ALICE)
    assert error_of(seed_client.delete("/api-key/" + "f" * 32, headers=ALICE), 404)["code"] == "NOT_FOUND"
    assert error_of(seed_client.delete("/api-key/not-an-id", headers=ALICE), 404)["code"] == "NOT_FOUND"
    assert error_of(seed_client.delete(f"/api-key/{key['api_key_id']}", headers=BOB), 403)["code"] == "FORBIDDEN"
    assert call_seed(seed_client, key["api_key"], PAYMENT).status_code == 200
    r = seed_client.delete(f"/api-key/{key['api_key_id']}", headers=ALICE)
    assert r.status_code == 200 and r.json()["revoked"] is True
    err = error_of(call_seed(seed_client, key["api_key"], PAYMENT), 401)
    assert err["message"] == "API key has been revoked"
    listed = seed_client.get("/api-key/list", headers=ALICE).json()["api_keys"]
    assert key["api_key_id"] not in {k["api_key_id"] for k in listed}


def test_keys_survive_a_restart_and_only_their_hash_is_stored(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app")
    with TestApp(app, tmp_path / "data", plugins=[HeaderAuth()]) as client:
        key = new_key(client)
        docs = client.app.state.jacscale.store.docs  # type: ignore[attr-defined]
        stored = docs.get("api_keys", key["api_key_id"])
        assert stored["key_hash"] == hash_key(key["api_key"])
    raw = (tmp_path / "data" / "jacscale.db").read_bytes()
    assert key["api_key"].encode() not in raw
    assert key["api_key"].split("_")[-1].encode() not in raw
    with TestApp(app, tmp_path / "data", plugins=[HeaderAuth()]) as client:
        assert call_seed(client, key["api_key"], PAYMENT).status_code == 200


# --------------------------------------------------------------------------
# The documented scheme and every rejection
# --------------------------------------------------------------------------


def test_seed_scheme_runs_the_walker_with_the_envelope(seed_client: TestClient) -> None:
    key = new_key(seed_client)["api_key"]
    r = call_seed(seed_client, key, PAYMENT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["type"] == "response"
    assert body["data"]["reports"] == [
        {"status": "success", "message": "Payment PAY-12345 received", "amount": 99.99, "currency": "USD"}
    ]
    assert body["data"]["result"]["_jac_type"] == "PaymentReceived"
    assert body["meta"]["request_id"] == r.headers["x-request-id"]


def test_signature_prefix_and_case_are_tolerated(seed_client: TestClient) -> None:
    key = new_key(seed_client)["api_key"]
    body = json.dumps(PAYMENT).encode()
    sig = seed_signature(key, body)
    assert call_seed(seed_client, key, PAYMENT, signature="sha256=" + sig).status_code == 200
    assert call_seed(seed_client, key, PAYMENT, signature="SHA256=" + sig.upper()).status_code == 200


def test_walker_runs_on_the_key_owners_root(seed_client: TestClient) -> None:
    key = new_key(seed_client, {"X-Test-User": "erin"})["api_key"]
    r = call_seed(seed_client, key, {"payment_id": "P-erin"}, walker="RecordPayment")
    assert r.status_code == 200, r.text
    mine = seed_client.post("/walker/ListPayments", json={}, headers={"X-Test-User": "erin"})
    assert mine.json()["data"]["reports"] == [["P-erin"]]
    theirs = seed_client.post("/walker/ListPayments", json={}, headers={"X-Test-User": "frank"})
    assert theirs.json()["data"]["reports"] == [[]]


def test_rejects_a_missing_key(seed_client: TestClient) -> None:
    r = seed_client.post("/webhook/PaymentReceived", json=PAYMENT)
    err = error_of(r, 401)
    assert err["message"] == "Missing X-API-Key header"
    assert err["details"][0]["loc"] == ["header", "X-API-Key"]


@pytest.mark.parametrize(
    "key",
    [
        "eyJhbGciOiJIUzI1NiIs...",  # the reference document's placeholder
        "jsk_" + "0" * 32 + "_" + "1" * 64,  # well-formed, unknown id
        "",
    ],
)
def test_rejects_unknown_keys(seed_client: TestClient, key: str) -> None:
    r = call_seed(seed_client, key or None, PAYMENT, headers={"X-API-Key": key} if not key else None)
    assert error_of(r, 401)["code"] == "UNAUTHORIZED"


def test_rejects_a_forged_key_with_a_real_id(seed_client: TestClient) -> None:
    real = new_key(seed_client)["api_key"]
    forged = real[: -64] + "a" * 64
    assert error_of(call_seed(seed_client, forged, PAYMENT), 401)["message"] == "Unknown API key"


def test_rejects_an_expired_key(seed_client: TestClient) -> None:
    key = new_key(seed_client, expiry_days=1)
    docs = seed_client.app.state.jacscale.store.docs  # type: ignore[attr-defined]
    docs.update("api_keys", key["api_key_id"], {"expires_ts": time.time() - 1})
    assert error_of(call_seed(seed_client, key["api_key"], PAYMENT), 401)["message"] == "API key has expired"
    listed = seed_client.get("/api-key/list", headers=ALICE).json()["api_keys"]
    assert {k["api_key_id"]: k["active"] for k in listed}[key["api_key_id"]] is False


def test_rejects_missing_and_wrong_signatures(seed_client: TestClient) -> None:
    key = new_key(seed_client)["api_key"]
    body = json.dumps(PAYMENT).encode()
    r = seed_client.post("/webhook/PaymentReceived", content=body,
                         headers={"X-API-Key": key, "Content-Type": "application/json"})  # fmt: skip
    assert error_of(r, 401)["message"] == "Missing X-Webhook-Signature header"
    assert error_of(call_seed(seed_client, key, PAYMENT, signature="0" * 64), 401)["message"] == (
        "Invalid X-Webhook-Signature"
    )
    # Signed with another key, or over other bytes: refused.
    other = new_key(seed_client)["api_key"]
    assert error_of(call_seed(seed_client, key, PAYMENT, signature=seed_signature(other, body)), 401)
    tampered = seed_signature(key, body.replace(b"99.99", b"9999"))
    assert error_of(call_seed(seed_client, key, PAYMENT, signature=tampered), 401)


def test_raw_bytes_are_verified_before_json(seed_client: TestClient) -> None:
    key = new_key(seed_client)["api_key"]
    junk = b"{not json"
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    r = seed_client.post("/webhook/PaymentReceived", content=junk, headers={**headers, "X-Webhook-Signature": "0" * 64})
    assert error_of(r, 401)["code"] == "UNAUTHORIZED"
    r = seed_client.post("/webhook/PaymentReceived", content=junk,
                         headers={**headers, "X-Webhook-Signature": seed_signature(key, junk)})  # fmt: skip
    assert error_of(r, 422)["details"][0]["type"] == "json_invalid"
    # Valid signature, bad fields: 422 naming them.
    err = error_of(call_seed(seed_client, key, {"payment_id": 5, "extra": 1}), 422)
    assert {d["loc"][-1] for d in err["details"]} == {"payment_id", "amount", "extra"}


def test_rejects_an_oversized_body(schemes_client: TestClient) -> None:
    key = new_key(schemes_client)["api_key"]
    r = call_seed(schemes_client, key, {"payment_id": "x" * 3000, "amount": 1.0})
    assert error_of(r, 413)["code"] == "PAYLOAD_TOO_LARGE"


def test_rejects_the_wrong_walker(seed_client: TestClient) -> None:
    key = new_key(seed_client)["api_key"]
    assert error_of(call_seed(seed_client, key, {}, walker="ListPayments"), 404)["code"] == "NOT_FOUND"
    assert error_of(call_seed(seed_client, key, {}, walker="NoSuchWalker"), 404)["code"] == "NOT_FOUND"
    # A webhook walker is not served at /walker/ ...
    assert seed_client.post("/walker/PaymentReceived", json=PAYMENT, headers=ALICE).status_code == 404
    # ... and a key scoped to one webhook cannot call another.
    scoped = new_key(seed_client, allowed_walkers=["RecordPayment"])
    assert scoped["allowed_walkers"] == ["RecordPayment"]
    err = error_of(call_seed(seed_client, scoped["api_key"], PAYMENT), 403)
    assert err["message"] == "This API key may not call webhook PaymentReceived"
    ok = call_seed(seed_client, scoped["api_key"], {"payment_id": "p"}, walker="RecordPayment")
    assert ok.status_code == 200
    assert seed_client.get("/webhook/PaymentReceived").status_code == 405


# --------------------------------------------------------------------------
# Stronger schemes
# --------------------------------------------------------------------------


def signed_headers(secret: str, body: bytes, stamp: int | None = None, delivery: str | None = None) -> dict[str, str]:
    stamp = int(time.time()) if stamp is None else stamp
    sig = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    headers = {"X-Webhook-Timestamp": str(stamp), "X-Webhook-Signature": "sha256=" + sig,
               "Content-Type": "application/json"}  # fmt: skip
    if delivery:
        headers["X-Webhook-Id"] = delivery
    return headers


def test_keys_get_a_signing_secret_when_the_server_has_one(schemes_client: TestClient) -> None:
    key = new_key(schemes_client)
    assert key["signing_secret"].startswith("whsec_")
    assert len(base64.b64decode(key["signing_secret"][6:])) == 32
    docs = schemes_client.app.state.jacscale.store.docs  # type: ignore[attr-defined]
    stored = json.dumps(docs.get("api_keys", key["api_key_id"]))
    assert key["signing_secret"] not in stored and key["signing_secret"][6:] not in stored


def test_signed_scheme_window_and_replays(schemes_client: TestClient) -> None:
    key = new_key(schemes_client)
    api_key, secret = key["api_key"], key["signing_secret"]
    body = b'{"event": "order.paid"}'
    headers = {"X-API-Key": api_key, **signed_headers(secret, body, delivery="evt-1")}
    r = schemes_client.post("/webhook/Signed", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["reports"] == [{"event": "order.paid"}]
    # The very same request again: a replay.
    assert error_of(schemes_client.post("/webhook/Signed", content=body, headers=headers), 409)["code"] == (
        "DUPLICATE_DELIVERY"
    )
    # Re-signed later with the same delivery id: still a replay.
    again = {"X-API-Key": api_key, **signed_headers(secret, body, int(time.time()) + 1, delivery="evt-1")}
    assert error_of(schemes_client.post("/webhook/Signed", content=body, headers=again), 409)
    # Stale and future timestamps.
    for stamp in (int(time.time()) - 301, int(time.time()) + 400):
        old = {"X-API-Key": api_key, **signed_headers(secret, body, stamp)}
        err = error_of(schemes_client.post("/webhook/Signed", content=body, headers=old), 401)
        assert "replay window" in err["message"]
    # Missing or malformed timestamp, wrong secret.
    bare = {"X-API-Key": api_key, **signed_headers(secret, body)}
    del bare["X-Webhook-Timestamp"]
    assert error_of(schemes_client.post("/webhook/Signed", content=body, headers=bare), 401)["message"] == (
        "Missing X-Webhook-Timestamp header"
    )
    bare["X-Webhook-Timestamp"] = "yesterday"
    assert error_of(schemes_client.post("/webhook/Signed", content=body, headers=bare), 401)
    wrong = {"X-API-Key": api_key, **signed_headers("whsec_other", body)}
    assert error_of(schemes_client.post("/webhook/Signed", content=body, headers=wrong), 401)["message"] == (
        "Invalid X-Webhook-Signature"
    )
    # The documented scheme's signature is not enough for a `signed` walker.
    seed = {"X-API-Key": api_key, "X-Webhook-Signature": seed_signature(api_key, body),
            "Content-Type": "application/json"}  # fmt: skip
    assert error_of(schemes_client.post("/webhook/Signed", content=body, headers=seed), 401)


def test_signed_scheme_accepts_the_key_id_instead_of_the_key(schemes_client: TestClient) -> None:
    key = new_key(schemes_client)
    body = b'{"event": "by-id"}'
    r = schemes_client.post(f"/webhook/Signed?key_id={key['api_key_id']}", content=body,
                            headers=signed_headers(key["signing_secret"], body))  # fmt: skip
    assert r.status_code == 200, r.text
    # The documented scheme needs the key itself.
    r = schemes_client.post(f"/webhook/PaymentReceived?key_id={key['api_key_id']}", json=PAYMENT)
    assert error_of(r, 401)["message"] == "Missing X-API-Key header"


def test_a_failed_walker_releases_the_delivery_for_a_retry(schemes_client: TestClient) -> None:
    key = new_key(schemes_client)
    body = b'{"event": "x"}'
    headers = {"X-API-Key": key["api_key"], **signed_headers(key["signing_secret"], body, delivery="retry-1")}
    first = schemes_client.post("/webhook/Explode", content=body, headers=headers)
    assert error_of(first, 500)["code"] == "EXECUTION_ERROR"
    assert "Traceback" not in first.text
    second = schemes_client.post("/webhook/Explode", content=body, headers=headers)
    assert error_of(second, 500)["code"] == "EXECUTION_ERROR"  # not 409: the first did not count


def standard_headers(secrets_: list[str], msg_id: str, body: bytes, stamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if stamp is None else stamp
    sigs = []
    for secret in secrets_:
        raw = base64.b64decode(secret.removeprefix("whsec_"))
        mac = hmac.new(raw, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        sigs.append("v1," + base64.b64encode(mac).decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": " ".join(sigs),
            "Content-Type": "application/json"}  # fmt: skip


def test_standard_webhooks_with_rotation_and_replay(schemes_client: TestClient) -> None:
    key = new_key(schemes_client)
    old_secret = "whsec_" + base64.b64encode(b"x" * 32).decode()
    body = b'{"event": "invoice.paid"}'
    # Signed with a retired secret and the current one: accepted.
    headers = {"X-API-Key": key["api_key"],
               **standard_headers([old_secret, key["signing_secret"]], "msg_1", body)}  # fmt: skip
    r = schemes_client.post("/webhook/Standard", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert error_of(schemes_client.post("/webhook/Standard", content=body, headers=headers), 409)
    only_old = {"X-API-Key": key["api_key"], **standard_headers([old_secret], "msg_2", body)}
    assert error_of(schemes_client.post("/webhook/Standard", content=body, headers=only_old), 401)["message"] == (
        "Invalid webhook-signature"
    )
    stale = {"X-API-Key": key["api_key"],
             **standard_headers([key["signing_secret"]], "msg_3", body, int(time.time()) - 1000)}  # fmt: skip
    assert "replay window" in error_of(schemes_client.post("/webhook/Standard", content=body, headers=stale), 401)[
        "message"
    ]
    no_id = {"X-API-Key": key["api_key"], **standard_headers([key["signing_secret"]], "msg_4", body)}
    del no_id["webhook-id"]
    assert error_of(schemes_client.post("/webhook/Standard", content=body, headers=no_id), 401)


def test_github_can_call_a_walker_directly(schemes_client: TestClient) -> None:
    key = new_key(schemes_client)
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1, "ref": "refs/heads/main",
                       "repository": {"full_name": "o/r"}}).encode()  # fmt: skip
    sig = hmac.new(key["signing_secret"].encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": "sha256=" + sig, "X-GitHub-Event": "push",
               "X-GitHub-Delivery": str(uuid.uuid4()), "Content-Type": "application/json"}  # fmt: skip
    url = f"/webhook/GitHubPush?key_id={key['api_key_id']}"
    r = schemes_client.post(url, content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["reports"] == [{"ref": "refs/heads/main", "zen": "Keep it logically awesome."}]
    assert error_of(schemes_client.post(url, content=body, headers=headers), 409)
    bad = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64, "X-GitHub-Delivery": "other"}
    assert error_of(schemes_client.post(url, content=body, headers=bad), 401)["message"] == (
        "Invalid X-Hub-Signature-256"
    )
    assert error_of(schemes_client.post(f"/webhook/GitHubPush?key_id={'0' * 32}", content=body, headers=headers), 401)


def test_stripe_with_its_own_endpoint_secret(schemes_client: TestClient) -> None:
    stripe_secret = "whsec_" + uuid.uuid4().hex
    key = new_key(schemes_client, signing_secret=stripe_secret)
    assert "signing_secret" not in key  # the caller's own secret is not echoed
    event = {"id": "evt_" + uuid.uuid4().hex[:12], "type": "payment_intent.succeeded", "object": "event",
             "data": {"object": {"amount": 2000}}}  # fmt: skip
    body = json.dumps(event).encode()

    def stripe_headers(stamp: int) -> dict[str, str]:
        sig = hmac.new(stripe_secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        return {"Stripe-Signature": f"t={stamp},v1={sig},v0=deadbeef", "Content-Type": "application/json"}

    url = f"/webhook/StripeEvent?key_id={key['api_key_id']}"
    now = int(time.time())
    r = schemes_client.post(url, content=body, headers=stripe_headers(now))
    assert r.status_code == 200, r.text
    assert r.json()["data"]["reports"] == [{"id": event["id"], "type": "payment_intent.succeeded"}]
    # Stripe's retry of the same event (new timestamp) after a success is a duplicate.
    assert error_of(schemes_client.post(url, content=body, headers=stripe_headers(now + 2)), 409)
    assert "replay window" in error_of(
        schemes_client.post(url, content=body, headers=stripe_headers(now - 400)), 401
    )["message"]
    assert error_of(schemes_client.post(url, content=body, headers={"Content-Type": "application/json"}), 401)


def test_openapi_documents_webhooks_with_their_headers(schemes_client: TestClient) -> None:
    spec = schemes_client.get("/openapi.json").json()
    op = spec["paths"]["/webhook/PaymentReceived"]["post"]
    names = {p["name"] for p in op["parameters"]}
    assert {"X-API-Key", "X-Webhook-Signature"} <= names
    assert op["requestBody"]["content"]["application/json"]["schema"]["required"] == ["payment_id", "amount"]
    github = {p["name"] for p in spec["paths"]["/webhook/GitHubPush"]["post"]["parameters"]}
    assert {"X-Hub-Signature-256", "key_id"} <= github
    assert "/api-key/create" in spec["paths"] and "/webhook/ListPayments" not in spec["paths"]


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


def test_schemes_needing_signing_secrets_refuse_to_start_without_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    app = make_app(tmp_path / "app", SCHEMES_TOML)
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        create_app(app, data_dir=tmp_path / "data")
    # The documented example value is not a secret.
    monkeypatch.setenv("WEBHOOK_SECRET", "your-secure-random-secret")
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        create_app(app, data_dir=tmp_path / "data")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[plugins.scale.webhook]\nscheme = "rot13"\n', "unknown webhook scheme 'rot13'"),
        ('[plugins.scale.webhook.walkers.ListPayments]\nscheme = "signed"\n', "not a webhook walker"),
        ("[plugins.scale.webhook]\napi_key_expiry_days = -1\n", "api_key_expiry_days"),
        ("[plugins.scale.webhook]\nmax_body_bytes = 0\n", "max_body_bytes"),
    ],
)
def test_bad_configuration_stops_start_up(tmp_path: Path, toml: str, message: str) -> None:
    app = make_app(tmp_path / "app", toml)
    with pytest.raises(ConfigError, match=message):
        create_app(app, data_dir=tmp_path / "data")


def test_verify_signature_false_needs_only_the_key(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app", "[plugins.scale.webhook]\nverify_signature = false\n")
    with TestApp(app, tmp_path / "data", plugins=[HeaderAuth()]) as client:
        key = new_key(client)["api_key"]
        r = client.post("/webhook/PaymentReceived", json=PAYMENT, headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        assert error_of(client.post("/webhook/PaymentReceived", json=PAYMENT), 401)


def test_seed_options_signature_header_and_default_expiry(tmp_path: Path) -> None:
    toml = '[plugins.scale.webhook]\nsignature_header = "X-Signature"\napi_key_expiry_days = 0\n'
    app = make_app(tmp_path / "app", toml)
    with TestApp(app, tmp_path / "data", plugins=[HeaderAuth()]) as client:
        key = new_key(client)
        assert key["expires_at"] is None  # the configured default: permanent
        body = json.dumps(PAYMENT).encode()
        headers = {"X-API-Key": key["api_key"], "Content-Type": "application/json"}
        sig = seed_signature(key["api_key"], body)
        r = client.post("/webhook/PaymentReceived", content=body, headers={**headers, "X-Signature": sig})
        assert r.status_code == 200, r.text
        r = client.post("/webhook/PaymentReceived", content=body, headers={**headers, "X-Webhook-Signature": sig})
        assert error_of(r, 401)["message"] == "Missing X-Signature header"


# --------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------


def test_delivery_log_reserves_all_or_nothing_and_sweeps() -> None:
    log = DeliveryLog(MemoryDocs(), ttl=10)
    taken = log.reserve("k", ("sig:a", "id:b"), now=100)
    assert len(taken) == 2
    with pytest.raises(Replayed):
        log.reserve("k", ("sig:c", "id:b"), now=101)
    assert log.reserve("k", ("sig:c",), now=101)  # not left reserved by the refused attempt
    assert log.reserve("other-key", ("id:b",), now=101)  # ids are per key
    assert log.reserve("k", ("id:b",), now=111)  # expired: taken over
    assert log.sweep(now=200) == 4


def test_sealed_secrets_need_the_same_server_secret() -> None:
    sealed = SecretBox(SECRET).seal("whsec_abc", "id1")
    assert SecretBox(SECRET).open(sealed, "id1") == "whsec_abc"
    with pytest.raises(ValueError, match="another WEBHOOK_SECRET"):
        SecretBox(SECRET + "x").open(sealed, "id1")
    with pytest.raises(ValueError):
        SecretBox(SECRET).open(sealed, "id2")  # bound to its key id


# --------------------------------------------------------------------------
# The reference document's curl example, as written, against a real server
# --------------------------------------------------------------------------

CURL_EXAMPLE = """
set -eu
PAYLOAD='{"payment_id":"PAY-12345","amount":99.99,"currency":"USD"}'
SIGNATURE=$(echo -n "$PAYLOAD" | openssl dgst -sha256 -hmac "$API_KEY" | cut -d' ' -f2)

curl -s -X POST "$BASE/webhook/PaymentReceived" \\
  -H "Content-Type: application/json" \\
  -H "X-API-Key: $API_KEY" \\
  -H "X-Webhook-Signature: $SIGNATURE" \\
  -d "$PAYLOAD"
"""


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("openssl")), reason="needs curl and openssl")
def test_seed_curl_example_runs_as_written(tmp_path: Path) -> None:
    app = tmp_path / "app" / "app.jac"
    app.parent.mkdir()
    shutil.copy(SEED, app)
    with running_server(app, tmp_path / "data") as base:
        with httpx.Client(base_url=base, timeout=10) as http:
            login = {"email": "payer@example.com", "password": "correct horse battery"}
            assert http.post("/user/register", json=login).status_code == 201
            token = http.post("/user/login", json=login).json()["access_token"]
            created = http.post("/api-key/create", json={"name": "My Webhook Key", "expiry_days": 30},
                                headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            assert created.status_code == 201, created.text
            api_key = created.json()["api_key"]
        out = subprocess.run(
            ["bash", "-c", CURL_EXAMPLE], env={"PATH": "/usr/bin:/bin", "API_KEY": api_key, "BASE": base},
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
    body = json.loads(out.stdout)
    assert body["ok"] is True, body
    assert body["data"]["reports"][0]["message"] == "Payment PAY-12345 received"
