"""Webhook signature schemes, provided through the `jacscale_webhook_scheme` hook.

A scheme checks the raw request bytes (before any JSON decoding) and answers
with the delivery ids to deduplicate on, or raises a 401 ApiError. Built in:

- `api-key`  (the reference document's, the default): `X-Webhook-Signature` = hex
  HMAC-SHA256 of the body keyed by the API key itself; `sha256=` prefix
  tolerated. No timestamp, so a captured request can be replayed: prefer a
  stronger scheme when the sender supports one.
- `signed`: `X-Webhook-Timestamp` (unix seconds) and `X-Webhook-Signature` =
  hex HMAC-SHA256 of `"<timestamp>." + body` keyed by the key's signing
  secret (what jac-scale 0.2.31 checked); optional `X-Webhook-Id`. Requests
  outside the replay window are refused; a signature or id seen before is a
  replay.
- `standard-webhooks`: the Standard Webhooks format (`webhook-id`,
  `webhook-timestamp`, `webhook-signature: v1,<base64> [v1,<base64> ...]` over
  `"<id>.<timestamp>." + body`, secret `whsec_<base64>`). Any listed signature
  may match, so a sender can sign with two secrets while rotating.
- `github`: `X-Hub-Signature-256: sha256=<hex>` over the body with the key's
  signing secret (paste it as the GitHub webhook secret); `X-GitHub-Delivery`
  deduplicates. GitHub signs no timestamp.
- `stripe`: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=...]` over `"<t>." + body`
  (store Stripe's `whsec_...` endpoint secret as the key's signing secret);
  the event id in the body deduplicates.

The four stronger schemes need keys with signing secrets, hence WEBHOOK_SECRET.
A third-party scheme is any object with the `WebhookScheme` attributes, returned
from a `jacscale_webhook_scheme(name)` hook implementation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import msgspec

from jacscale_core.errors import ApiError
from jacscale_core.plugins import hookimpl


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a scheme may look at: headers (lower-case names), the raw body, the key's secrets."""

    headers: Mapping[str, str]
    body: bytes
    api_key: str | None
    secrets: tuple[str, ...]
    now: float
    window: int
    signature_header: str = "X-Webhook-Signature"
    timestamp_header: str = "X-Webhook-Timestamp"
    id_header: str = "X-Webhook-Id"

    def header(self, name: str) -> str | None:
        """A header value by case-insensitive name (None when absent)."""
        value = self.headers.get(name.lower())
        return value.strip() if value is not None else None


@dataclass(frozen=True, slots=True)
class Verified:
    """A request whose signature checked out; `delivery_ids` are remembered to refuse replays."""

    delivery_ids: tuple[str, ...] = field(default_factory=tuple)


@runtime_checkable
class WebhookScheme(Protocol):
    """A signature scheme.

    `needs_signing_secret`: verifies with the key's signing secret (so a
    request may name its key by id, `?key_id=`, instead of sending the key).
    `needs_api_key`: verifies with the presented `X-API-Key` itself.
    `headers`: OpenAPI header parameters describing what senders must send.
    """

    name: str
    needs_signing_secret: bool
    needs_api_key: bool

    def verify(self, request: SignedRequest) -> Verified:
        """Check the signature; raise ApiError(401) naming what is wrong."""
        ...

    def headers(self, request_defaults: Mapping[str, str]) -> list[dict[str, Any]]:
        """OpenAPI parameters (in: header) for this scheme."""
        ...


def refused(message: str, header: str | None = None) -> ApiError:
    """The 401 every signature failure answers with."""
    details = None
    if header:
        details = [{"loc": ["header", header], "msg": message, "type": "signature"}]
    return ApiError("UNAUTHORIZED", message, details=details)


def hmac_hex(key: bytes, payload: bytes) -> str:
    """Hex HMAC-SHA256."""
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def digest_id(value: str) -> str:
    """A short, fixed-size form of a signature or id for the replay record."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _hex_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.strip().lower().encode(), expected.encode())


def _strip_sha256(value: str) -> str:
    return value[7:] if value[:7].lower() == "sha256=" else value


def check_timestamp(raw: str | None, header: str, request: SignedRequest) -> int:
    """The timestamp in seconds; 401 when missing, malformed or outside the replay window."""
    if not raw:
        raise refused(f"Missing {header} header", header)
    if not raw.isdigit() or len(raw) > 12:
        raise refused(f"{header} must be a unix timestamp in seconds", header)
    stamp = int(raw)
    if abs(request.now - stamp) > request.window:
        raise refused(
            f"{header} is outside the {request.window}s replay window (check the sender's clock)",
            header,
        )
    return stamp


def _header_doc(name: str, description: str, required: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


class ApiKeyHmacScheme:
    """The reference document's scheme: hex HMAC-SHA256 of the body, keyed by the API key."""

    name = "api-key"
    needs_signing_secret = False
    needs_api_key = True

    def verify(self, request: SignedRequest) -> Verified:
        """Compare the signature header with HMAC(body, api key), in constant time."""
        header = request.signature_header
        given = request.header(header)
        if not given:
            raise refused(f"Missing {header} header", header)
        assert request.api_key is not None
        expected = hmac_hex(request.api_key.encode(), request.body)
        if not _hex_matches(_strip_sha256(given), expected):
            raise refused(f"Invalid {header}", header)
        return Verified()

    def headers(self, request_defaults: Mapping[str, str]) -> list[dict[str, Any]]:
        """The signature header."""
        sig = request_defaults["signature_header"]
        return [_header_doc(sig, "Hex HMAC-SHA256 of the raw body, keyed by the API key "
                                 "(`sha256=` prefix allowed)")]  # fmt: skip


class NoSignatureScheme:
    """`verify_signature = false`: the API key alone authenticates (not for production)."""

    name = "none"
    needs_signing_secret = False
    needs_api_key = True

    def verify(self, request: SignedRequest) -> Verified:
        """Accept every request (the key was already checked)."""
        return Verified()

    def headers(self, request_defaults: Mapping[str, str]) -> list[dict[str, Any]]:
        """None beyond X-API-Key."""
        return []


class SignedScheme:
    """Timestamped HMAC with the key's signing secret; replay window and deduplication."""

    name = "signed"
    needs_signing_secret = True
    needs_api_key = False

    def verify(self, request: SignedRequest) -> Verified:
        """HMAC of `"<timestamp>." + body` with any of the key's signing secrets."""
        sig_header = request.signature_header
        given = request.header(sig_header)
        if not given:
            raise refused(f"Missing {sig_header} header", sig_header)
        raw = request.header(request.timestamp_header)
        check_timestamp(raw, request.timestamp_header, request)
        payload = f"{raw}.".encode() + request.body
        signature = _strip_sha256(given)
        if not any(_hex_matches(signature, hmac_hex(s.encode(), payload)) for s in request.secrets):
            raise refused(f"Invalid {sig_header}", sig_header)
        ids = ["sig:" + digest_id(signature.lower())]
        delivery = request.header(request.id_header)
        if delivery:
            ids.append("id:" + digest_id(delivery))
        return Verified(tuple(ids))

    def headers(self, request_defaults: Mapping[str, str]) -> list[dict[str, Any]]:
        """Timestamp, signature and the optional delivery id."""
        return [
            _header_doc(request_defaults["timestamp_header"], "Unix time in seconds"),
            _header_doc(request_defaults["signature_header"],
                        'Hex HMAC-SHA256 of "<timestamp>." + body, keyed by the signing secret'),
            _header_doc(request_defaults["id_header"], "Unique delivery id (deduplicated)", False),
        ]  # fmt: skip


def _standard_key(secret: str) -> bytes:
    raw = secret[6:] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return secret.encode()


class StandardWebhooksScheme:
    """https://www.standardwebhooks.com: webhook-id / webhook-timestamp / webhook-signature."""

    name = "standard-webhooks"
    needs_signing_secret = True
    needs_api_key = False

    def verify(self, request: SignedRequest) -> Verified:
        """Any `v1,<base64>` entry must equal HMAC(`"<id>.<ts>." + body`) under a secret."""
        msg_id = request.header("webhook-id")
        if not msg_id:
            raise refused("Missing webhook-id header", "webhook-id")
        raw = request.header("webhook-timestamp")
        check_timestamp(raw, "webhook-timestamp", request)
        header = request.header("webhook-signature")
        if not header:
            raise refused("Missing webhook-signature header", "webhook-signature")
        given = [
            part[3:].encode() for part in header.split() if part.startswith("v1,")
        ]
        if not given:
            raise refused("webhook-signature has no v1 signature", "webhook-signature")
        payload = f"{msg_id}.{raw}.".encode() + request.body
        for secret in request.secrets:
            expected = base64.b64encode(
                hmac.new(_standard_key(secret), payload, hashlib.sha256).digest()
            )
            if any(hmac.compare_digest(g, expected) for g in given):
                return Verified(("id:" + digest_id(msg_id),))
        raise refused("Invalid webhook-signature", "webhook-signature")

    def headers(self, request_defaults: Mapping[str, str]) -> list[dict[str, Any]]:
        """The three Standard Webhooks headers."""
        return [
            _header_doc("webhook-id", "Unique message id (deduplicated)"),
            _header_doc("webhook-timestamp", "Unix time in seconds"),
            _header_doc("webhook-signature",
                        'Space-separated "v1,<base64 HMAC-SHA256 of id.timestamp.body>"'),
        ]  # fmt: skip


class GitHubScheme:
    """GitHub webhooks: X-Hub-Signature-256 over the body; X-GitHub-Delivery deduplicates."""

    name = "github"
    needs_signing_secret = True
    needs_api_key = False

    def verify(self, request: SignedRequest) -> Verified:
        """`sha256=<hex HMAC of the body>` with the key's signing secret."""
        header = "X-Hub-Signature-256"
        given = request.header(header)
        if not given:
            raise refused(f"Missing {header} header", header)
        if given[:7].lower() != "sha256=":
            raise refused(f"{header} must start with sha256=", header)
        signature = given[7:]
        if not any(_hex_matches(signature, hmac_hex(s.encode(), request.body)) for s in request.secrets):
            raise refused(f"Invalid {header}", header)
        ids = ["sig:" + digest_id(signature.lower())]
        delivery = request.header("X-GitHub-Delivery")
        if delivery:
            ids.append("id:" + digest_id(delivery))
        return Verified(tuple(ids))

    def headers(self, request_defaults: Mapping[str, str]) -> list[dict[str, Any]]:
        """GitHub's headers."""
        return [
            _header_doc("X-Hub-Signature-256", "sha256=<hex HMAC-SHA256 of the body>"),
            _header_doc("X-GitHub-Delivery", "Delivery GUID (deduplicated)", False),
        ]


class StripeScheme:
    """Stripe webhooks: `Stripe-Signature: t=...,v1=...` over `"<t>." + body`."""

    name = "stripe"
    needs_signing_secret = True
    needs_api_key = False

    def verify(self, request: SignedRequest) -> Verified:
        """Any v1 entry must match; the timestamp must be inside the window."""
        header = "Stripe-Signature"
        value = request.header(header)
        if not value:
            raise refused(f"Missing {header} header", header)
        stamp: str | None = None
        given: list[str] = []
        for item in value.split(","):
            key, _, val = item.strip().partition("=")
            if key == "t":
                stamp = val
            elif key == "v1":
                given.append(val)
        if stamp is None:
            raise refused(f"{header} has no t= timestamp", header)
        check_timestamp(stamp, header, request)
        if not given:
            raise refused(f"{header} has no v1 signature", header)
        payload = f"{stamp}.".encode() + request.body
        for secret in request.secrets:
            expected = hmac_hex(secret.encode(), payload)
            match = next((g for g in given if _hex_matches(g, expected)), None)
            if match is not None:
                ids = ["sig:" + digest_id(match.lower())]
                event = _event_id(request.body)
                if event:
                    ids.append("id:" + digest_id(event))
                return Verified(tuple(ids))
        raise refused(f"Invalid {header}", header)

    def headers(self, request_defaults: Mapping[str, str]) -> list[dict[str, Any]]:
        """Stripe's header."""
        return [_header_doc("Stripe-Signature", "t=<unix time>,v1=<hex HMAC-SHA256 of t.body>")]


def _event_id(body: bytes) -> str | None:
    try:
        decoded = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    if isinstance(decoded, dict) and isinstance(decoded.get("id"), str):
        return str(decoded["id"])
    return None


BUILT_IN: dict[str, WebhookScheme] = {
    s.name: s
    for s in (
        ApiKeyHmacScheme(),
        SignedScheme(),
        StandardWebhooksScheme(),
        GitHubScheme(),
        StripeScheme(),
        NoSignatureScheme(),
    )
}


@hookimpl(trylast=True)
def jacscale_webhook_scheme(name: str) -> WebhookScheme | None:
    """The built-in schemes (a plugin may answer first for any name)."""
    return BUILT_IN.get(name)
