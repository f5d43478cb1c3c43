"""TEST DOUBLE: a tiny local OpenID Connect provider for the SSO tests.

Not a real identity provider and not for any other use. It listens on a free
127.0.0.1 port in a background thread and serves:

- GET  /.well-known/openid-configuration   the discovery document
- GET  /jwks                               its RSA public key (kid "test-rsa-1")
- GET  /authorize                          checks the request, then redirects to
                                           redirect_uri with ?code&state (or ?error)
- POST /token                              checks client, redirect_uri and the PKCE
                                           verifier, answers with an RS256 ID token

Each test sets `provider.user` (the identity the next sign-in returns) and may
set `provider.tamper` to make the next ID token wrong in one way ("aud", "iss",
"exp", "nonce", "alg_hs256", "alg_none", "unknown_kid", "no_exp", "wrong_key",
"azp"). `provider.requests` records what the server received.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

CLIENT_ID = "test-client-id.apps.example"
CLIENT_SECRET = "test-client-secret"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    user: dict[str, Any]
    used: bool = False


@dataclass
class OidcProviderDouble:
    """State of the test double; `base_url` is set once it listens."""

    base_url: str = ""
    user: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "g-1001",
            "email": "ada@example.com",
            "email_verified": True,
        }
    )
    tamper: str | None = None
    deny_next: bool = False
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    grants: dict[str, _Grant] = field(default_factory=dict)
    key: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(
            2048, parameters={"kid": "test-rsa-1"}, private=True
        )
    )
    other_key: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(
            2048, parameters={"kid": "test-rsa-1"}, private=True
        )
    )

    @property
    def issuer(self) -> str:
        """The issuer URL (same as the base URL)."""
        return self.base_url

    @property
    def discovery_url(self) -> str:
        """Where the discovery document is served."""
        return f"{self.base_url}/.well-known/openid-configuration"

    def discovery(self) -> dict[str, Any]:
        """The discovery document."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.base_url}/authorize",
            "token_endpoint": f"{self.base_url}/token",
            "jwks_uri": f"{self.base_url}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    def id_token(self, grant: _Grant) -> str:
        """Sign the ID token for a grant, applying `tamper` once."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": grant.client_id,
            "azp": grant.client_id,
            "iat": now,
            "exp": now + 600,
            "nonce": grant.nonce,
            **grant.user,
        }
        header: dict[str, Any] = {"alg": "RS256", "kid": "test-rsa-1"}
        key: Any = self.key
        tamper, self.tamper = self.tamper, None
        if tamper == "aud":
            claims["aud"] = "someone-else"
            claims.pop("azp")
        elif tamper == "azp":
            claims["aud"] = [grant.client_id, "someone-else"]
            claims["azp"] = "someone-else"
        elif tamper == "iss":
            claims["iss"] = "https://evil.example"
        elif tamper == "exp":
            claims["exp"] = now - 3600
            claims["iat"] = now - 7200
        elif tamper == "no_exp":
            claims.pop("exp")
        elif tamper == "nonce":
            claims["nonce"] = "not-the-nonce"
        elif tamper == "unknown_kid":
            header["kid"] = "never-published"
        elif tamper == "wrong_key":
            key = self.other_key
        elif tamper == "alg_hs256":
            # Algorithm confusion: HMAC keyed with the public key's JSON.
            header = {"alg": "HS256", "kid": "test-rsa-1"}
            key = OctKey.import_key(json.dumps(self.key.as_dict(private=False)))
        elif tamper == "alg_none":
            head = _b64(json.dumps({"alg": "none", "kid": "test-rsa-1"}).encode())
            body = _b64(json.dumps(claims).encode())
            return f"{head}.{body}."
        algs = [header["alg"]]
        return jwt.encode(header, claims, key, algorithms=algs)


def _handler(state: OidcProviderDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            return

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _redirect(self, url: str) -> None:
            self.send_response(302)
            self.send_header("Location", url)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            state.requests.append(("GET", url.path, query))
            if url.path == "/.well-known/openid-configuration":
                self._json(200, state.discovery())
            elif url.path == "/jwks":
                self._json(200, {"keys": [state.key.as_dict(private=False)]})
            elif url.path == "/authorize":
                self._authorize(query)
            else:
                self._json(404, {"error": "not_found"})

        def _authorize(self, q: dict[str, str]) -> None:
            required = [
                "response_type",
                "client_id",
                "redirect_uri",
                "scope",
                "state",
                "nonce",
                "code_challenge",
                "code_challenge_method",
            ]
            missing = [k for k in required if not q.get(k)]
            if missing or q["response_type"] != "code" or q["code_challenge_method"] != "S256":
                self._json(400, {"error": "invalid_request", "missing": missing})
                return
            if q["client_id"] != CLIENT_ID or "openid" not in q["scope"].split():
                self._json(400, {"error": "unauthorized_client"})
                return
            sep = "&" if "?" in q["redirect_uri"] else "?"
            if state.deny_next:
                state.deny_next = False
                err = urlencode({"error": "access_denied", "state": q["state"]})
                self._redirect(f"{q['redirect_uri']}{sep}{err}")
                return
            code = secrets.token_urlsafe(24)
            state.grants[code] = _Grant(
                client_id=q["client_id"],
                redirect_uri=q["redirect_uri"],
                challenge=q["code_challenge"],
                nonce=q["nonce"],
                user=dict(state.user),
            )
            self._redirect(
                f"{q['redirect_uri']}{sep}{urlencode({'code': code, 'state': q['state']})}"
            )

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            state.requests.append(
                ("POST", url.path, {k: v for k, v in form.items() if k != "client_secret"})
            )
            if url.path != "/token":
                self._json(404, {"error": "not_found"})
                return
            grant = state.grants.get(form.get("code", ""))
            if form.get("grant_type") != "authorization_code" or grant is None or grant.used:
                self._json(400, {"error": "invalid_grant"})
                return
            grant.used = True
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                self._json(401, {"error": "invalid_client"})
                return
            if form.get("redirect_uri") != grant.redirect_uri:
                self._json(400, {"error": "invalid_grant", "detail": "redirect_uri"})
                return
            verifier = form.get("code_verifier", "")
            challenge = _b64(hashlib.sha256(verifier.encode()).digest())
            if not verifier or challenge != grant.challenge:
                self._json(400, {"error": "invalid_grant", "detail": "pkce"})
                return
            self._json(
                200,
                {
                    "access_token": secrets.token_urlsafe(16),
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "id_token": state.id_token(grant),
                },
            )

    return Handler


@contextmanager
def oidc_provider() -> Iterator[OidcProviderDouble]:
    """Run the test double on a free 127.0.0.1 port for the duration of the block."""
    state = OidcProviderDouble()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="oidc-double", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
