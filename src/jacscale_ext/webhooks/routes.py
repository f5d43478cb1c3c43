"""HTTP routes: `/api-key/*` (flat JSON, for logged-in users) and `POST /webhook/{walker}`.

A webhook request is checked in this order, cheapest and least revealing
first: the walker exists and is a webhook (404); the body fits (413); the API
key is given, known, matches, is neither revoked nor expired (401) and may call
this walker (403); the signature over the raw bytes holds (401); the delivery
is not a replay (409). Only then is the body decoded as JSON (415, 422) and
the walker run on the key owner's root, answering with the walker envelope.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jacscale_core import codec
from jacscale_core.errors import ApiError
from jacscale_core.http_endpoints import (
    authenticate,
    decode_json_object,
    json_response,
    require_json,
)
from jacscale_core.middleware import request_id_of
from jacscale_core.principal import Principal
from jacscale_ext.webhooks.config import MAX_EXPIRY_DAYS
from jacscale_ext.webhooks.deliveries import Replayed
from jacscale_ext.webhooks.keys import ApiKey, TooManyKeys, parse_key
from jacscale_ext.webhooks.schemes import SignedRequest
from jacscale_ext.webhooks.state import WalkerPolicy, WebhookState

log = logging.getLogger("jacscale.webhooks")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
CREATE_FIELDS = ("name", "expiry_days", "allowed_walkers", "signing_secret")
MAX_NAME = 100


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


async def read_capped(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes with 413 before reading it all."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise ApiError("PAYLOAD_TOO_LARGE", f"Webhook body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError("PAYLOAD_TOO_LARGE", f"Webhook body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _user(request: Request, state: WebhookState) -> Principal:
    principal = await authenticate(request, state.app)
    if principal is None or principal.kind != "user":
        raise ApiError(
            "UNAUTHORIZED",
            "Log in first: API keys are managed with Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


# --------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------


def parse_create(body: dict[str, Any], state: WebhookState) -> dict[str, Any]:
    """Validate a create request; 422 naming every bad field."""
    details: list[dict[str, Any]] = []

    def bad(name: str, msg: str, kind: str = "value_error") -> None:
        details.append({"loc": ["body", name], "msg": msg, "type": kind})

    for key in body:
        if key not in CREATE_FIELDS:
            bad(key, "Unknown field", "extra_forbidden")
    name = body.get("name")
    if "name" not in body:
        bad("name", "Field required", "missing")
    elif not isinstance(name, str) or not name.strip():
        bad("name", "Expected a non-empty string", "type_error")
    elif len(name.strip()) > MAX_NAME:
        bad("name", f"At most {MAX_NAME} characters")
    expiry = body.get("expiry_days")
    if expiry is None:
        expiry = state.config.api_key_expiry_days
    elif isinstance(expiry, bool) or not isinstance(expiry, int):
        bad("expiry_days", "Expected a whole number of days (0 = never expires)", "type_error")
    elif not 0 <= expiry <= MAX_EXPIRY_DAYS:
        bad("expiry_days", f"Must be between 0 (never expires) and {MAX_EXPIRY_DAYS}")
    walkers = body.get("allowed_walkers")
    allowed: list[str] = []
    if isinstance(walkers, str):
        allowed = [w.strip() for w in walkers.split(",") if w.strip()]
    elif isinstance(walkers, list) and all(isinstance(w, str) for w in walkers):
        allowed = [w.strip() for w in walkers if w.strip()]
    elif walkers is not None:
        bad("allowed_walkers", "Expected a list of webhook walker names", "type_error")
    unknown = [w for w in allowed if w not in state.policies]
    if unknown:
        bad("allowed_walkers", f"Not webhook walkers of this program: {', '.join(unknown)}")
    secret = body.get("signing_secret")
    if secret is not None:
        if not isinstance(secret, str) or not 16 <= len(secret) <= 512 or not secret.isprintable():
            bad("signing_secret", "Expected a printable string of 16 to 512 characters", "type_error")
        elif not state.signing_enabled:
            bad("signing_secret", "Signing secrets are disabled on this server (WEBHOOK_SECRET is not set)")
    if details:
        names = ", ".join(str(d["loc"][-1]) for d in details)
        raise ApiError("VALIDATION_ERROR", f"Invalid input: {names}", details=details)
    return {
        "name": str(name).strip(),
        "expiry_days": int(expiry),
        "allowed_walkers": sorted(set(allowed)),
        "signing_secret": secret,
    }


def key_routes(state: WebhookState) -> list[Route]:
    """POST /api-key/create, GET /api-key/list, DELETE /api-key/{api_key_id}."""

    async def create(request: Request) -> Response:
        user = await _user(request, state)
        require_json(request)
        depth = state.app.settings.api.max_json_depth
        form = parse_create(decode_json_object(await request.body(), depth), state)
        try:
            made = await asyncio.to_thread(
                state.keys.create, user_id=user.user_id, root_id=user.root_id, **form
            )
        except TooManyKeys as exc:
            raise ApiError("CONFLICT", f"{exc}; revoke one first") from None
        answer: dict[str, Any] = {
            "api_key": made.api_key,
            "api_key_id": made.key.id,
            "name": made.key.name,
            "created_at": made.key.created_at,
            "expires_at": made.key.expires_at,
        }
        if made.signing_secret is not None:
            answer["signing_secret"] = made.signing_secret
        if made.key.allowed_walkers:
            answer["allowed_walkers"] = list(made.key.allowed_walkers)
        log.info("api key %s created for user %s", made.key.id, user.user_id)
        return json_response(answer, 201, NO_STORE)

    async def listing(request: Request) -> Response:
        user = await _user(request, state)
        keys = await asyncio.to_thread(state.keys.list_for, user.user_id)
        now = time.time()
        return json_response({"api_keys": [k.listing(now) for k in keys]}, 200, NO_STORE)

    async def revoke(request: Request) -> Response:
        user = await _user(request, state)
        key_id = request.path_params["api_key_id"]
        key = await asyncio.to_thread(state.keys.get, key_id)
        if key is None:
            raise ApiError("NOT_FOUND", f"API key '{key_id[:64]}' not found")
        if key.user_id != user.user_id:
            raise ApiError("FORBIDDEN", "Cannot revoke an API key owned by another user")
        if not key.revoked:
            await asyncio.to_thread(state.keys.revoke, key.id)
            log.info("api key %s revoked by user %s", key.id, user.user_id)
        return json_response(
            {"api_key_id": key.id, "revoked": True,
             "message": f"API key '{key.id}' has been revoked"},
            200,
        )  # fmt: skip

    return [
        Route("/api-key/create", create, methods=["POST"], name="api_key_create"),
        Route("/api-key/list", listing, methods=["GET"], name="api_key_list"),
        Route("/api-key/{api_key_id}", revoke, methods=["DELETE"], name="api_key_revoke"),
    ]


# --------------------------------------------------------------------------
# Webhooks
# --------------------------------------------------------------------------


def _key_refused(message: str) -> ApiError:
    return ApiError(
        "UNAUTHORIZED",
        message,
        details=[{"loc": ["header", "X-API-Key"], "msg": message, "type": "api_key"}],
    )


async def find_key(request: Request, state: WebhookState, policy: WalkerPolicy) -> tuple[ApiKey, str | None]:
    """The caller's key (from X-API-Key, or `?key_id=` for signing-secret schemes), or 401/403."""
    presented = request.headers.get("x-api-key")
    presented = presented.strip() if presented else None
    if presented:
        key_id = parse_key(presented)
        if key_id is None:
            raise _key_refused("Unknown API key")
    elif policy.scheme.needs_signing_secret and request.query_params.get("key_id"):
        key_id = request.query_params["key_id"]
    else:
        raise _key_refused("Missing X-API-Key header")
    key = await asyncio.to_thread(state.keys.get, key_id)
    if key is None or (presented is not None and not key.matches(presented)):
        raise _key_refused("Unknown API key")
    if key.revoked:
        raise _key_refused("API key has been revoked")
    if key.expired(time.time()):
        raise _key_refused("API key has expired")
    name = policy.endpoint.name
    if key.allowed_walkers and name not in key.allowed_walkers:
        raise ApiError("FORBIDDEN", f"This API key may not call webhook {name}")
    return key, presented


def _secrets(state: WebhookState, key: ApiKey, policy: WalkerPolicy) -> tuple[str, ...]:
    if not policy.scheme.needs_signing_secret:
        return ()
    try:
        found = state.keys.signing_secrets(key)
    except ValueError as exc:
        log.error("api key %s: its signing secret cannot be read (%s)", key.id, exc)
        raise ApiError(
            "UNAUTHORIZED", "This API key's signing secret is unusable on this server; create a new key"
        ) from None
    if not found:
        raise ApiError(
            "UNAUTHORIZED",
            f"Webhook {policy.endpoint.name} needs a key with a signing secret; create a new key",
        )
    return found


def webhook_route(state: WebhookState) -> Route:
    """POST /webhook/{walker}."""

    async def webhook(request: Request) -> Response:
        name = request.path_params["walker"]
        policy = state.policies.get(name)
        if policy is None:
            raise ApiError("NOT_FOUND", f"No webhook walker named {name[:100]}")
        try:
            return await _serve(request, state, policy)
        except ApiError as err:
            if err.status in (401, 403, 409):
                log.warning("webhook %s refused (%s): %s", name, err.code, err.message)
            raise

    return Route("/webhook/{walker}", webhook, methods=["POST"], name="webhook")


async def _serve(request: Request, state: WebhookState, policy: WalkerPolicy) -> Response:
    config = state.config
    body = await read_capped(request, config.max_body_bytes)
    key, presented = await find_key(request, state, policy)
    signed = SignedRequest(
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        api_key=presented,
        secrets=_secrets(state, key, policy),
        now=time.time(),
        window=config.replay_window_seconds,
        signature_header=config.signature_header,
        timestamp_header=config.timestamp_header,
        id_header=config.id_header,
    )
    verified = policy.scheme.verify(signed)
    reserved: list[str] = []
    try:
        if verified.delivery_ids:
            reserved = await asyncio.to_thread(
                state.deliveries.reserve, key.id, verified.delivery_ids
            )
    except Replayed:
        raise ApiError(
            "DUPLICATE_DELIVERY", "This webhook delivery was already received", status=409
        ) from None
    try:
        return await _run(request, state, policy, key, body)
    except BaseException:
        if reserved:
            await asyncio.to_thread(state.deliveries.release, reserved)
        raise


async def _run(
    request: Request, state: WebhookState, policy: WalkerPolicy, key: ApiKey, body: bytes
) -> Response:
    endpoint = policy.endpoint
    require_json(request)
    data = decode_json_object(body, state.app.settings.api.max_json_depth)
    if policy.ignore_unknown_fields:
        known = {f.name for f in endpoint.fields}
        data = {k: v for k, v in data.items() if k in known}
    args = endpoint.decode(data)
    principal = Principal(
        user_id=key.user_id, root_id=key.root_id, kind="api_key", claims={"api_key_id": key.id}
    )
    app = state.app
    started = time.perf_counter()
    success = False
    try:
        run = await app.executor.run(endpoint, args, principal)
        success = True
    finally:
        app.pm.hook.jacscale_walker_finished(
            app=app, endpoint=endpoint, principal=principal,
            duration=time.perf_counter() - started, success=success,
        )  # fmt: skip
    envelope = endpoint.envelope if endpoint.envelope is not None else app.settings.api.envelope
    if not envelope:
        return json_response(codec.to_jsonable(run.reports))
    request_id = request_id_of(request.scope)
    return json_response(codec.ok_envelope(run.result, run.reports, request_id, warnings=run.warnings))
