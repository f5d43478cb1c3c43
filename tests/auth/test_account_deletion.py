"""Deleting an account ends what belongs to it: tokens and webhook API keys."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from pathlib import Path

from jacscale_core.testing import TestApp
from tests.auth.helpers import EXAMPLES, FAST_ENV, PASSWORD, new_user


def test_deleting_a_user_revokes_their_api_keys_and_tokens(tmp_path: Path) -> None:
    app = tmp_path / "app" / "hooks_del.jac"
    app.parent.mkdir()
    shutil.copy(EXAMPLES / "03_webhook.jac", app)
    with TestApp(app, tmp_path / "data", env=FAST_ENV) as c:
        user = new_user(c, "deleted")
        created = c.post("/api-key/create", json={"name": "k"}, headers=user["headers"])
        assert created.status_code == 201, created.text
        key = created.json()["api_key"]
        body = json.dumps({"payment_id": "P-1", "amount": 1.5}).encode()
        signed = {
            "Content-Type": "application/json",
            "X-API-Key": key,
            "X-Webhook-Signature": hmac.new(key.encode(), body, hashlib.sha256).hexdigest(),
        }
        assert c.post("/webhook/PaymentReceived", content=body, headers=signed).status_code == 200

        r = c.request("DELETE", "/user/me", json={"password": PASSWORD}, headers=user["headers"])
        assert r.status_code == 200, r.text
        assert c.post("/webhook/PaymentReceived", content=body, headers=signed).status_code == 401
        assert c.get("/user/me", headers=user["headers"]).status_code == 401
