"""OpenAPI path items for `/webhook/{walker}` and `/api-key/*` (via `jacscale_openapi_paths`).

Error responses reference the docs plugin's shared components
(`#/components/responses/...`); the key endpoints use its `bearerAuth` scheme.
"""

from __future__ import annotations

from typing import Any

import msgspec

from jacscale_core.program import MISSING, FieldSpec
from jacscale_ext.webhooks.state import WalkerPolicy, WebhookState

TAG = "Webhooks"
KEY_TAG = "API Keys"
RESPONSES = "#/components/responses/"
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
_STR = {"type": "string"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": RESPONSES + name}


def _field_schema(spec: FieldSpec) -> dict[str, Any]:
    try:
        schema: dict[str, Any] = msgspec.json.schema(spec.annotation)
    except (TypeError, ValueError):
        return {}
    if not spec.required and spec.default is not MISSING:
        try:
            msgspec.json.encode(spec.default)
            schema["default"] = spec.default
        except (TypeError, ValueError):
            pass
    return schema


def _body_schema(policy: WalkerPolicy) -> dict[str, Any]:
    fields = policy.endpoint.fields
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: _field_schema(f) for f in fields},
        "additionalProperties": policy.ignore_unknown_fields,
    }
    required = [f.name for f in fields if f.required]
    if required:
        schema["required"] = required
    return schema


def webhook_operation(state: WebhookState, policy: WalkerPolicy) -> dict[str, Any]:
    """The POST operation of one webhook walker."""
    endpoint, scheme = policy.endpoint, policy.scheme
    params: list[dict[str, Any]] = [{
        "name": "X-API-Key", "in": "header", "required": not scheme.needs_signing_secret,
        "description": "The API key from POST /api-key/create",
        "schema": _STR,
    }]  # fmt: skip
    if scheme.needs_signing_secret:
        params.append({
            "name": "key_id", "in": "query", "required": False,
            "description": "The api_key_id, for senders that cannot add an X-API-Key header "
                           "(GitHub, Stripe): the signature authenticates",
            "schema": _STR,
        })  # fmt: skip
    params.extend(scheme.headers(state.header_names))
    summary = endpoint.doc.splitlines()[0] if endpoint.doc else f"Webhook {endpoint.name}"
    return {
        "tags": [TAG],
        "summary": summary,
        "description": f"Signature scheme: `{scheme.name}`. Runs on the API key owner's root.",
        "operationId": f"webhook_{endpoint.name}",
        "parameters": params,
        "requestBody": {
            "required": any(f.required for f in endpoint.fields),
            "content": {"application/json": {"schema": _body_schema(policy)}},
        },
        "responses": {
            "200": {"description": "The walker envelope"},
            "401": _ref("Unauthorized"),
            "403": _ref("Forbidden"),
            "409": {"description": "DUPLICATE_DELIVERY: this delivery was already received"},
            "413": _ref("PayloadTooLarge"),
            "415": _ref("UnsupportedMediaType"),
            "422": _ref("ValidationError"),
            "500": _ref("ExecutionError"),
        },
        "security": [],
    }


def _key_item(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props}


def key_paths() -> dict[str, Any]:
    """The three API key operations."""
    created = _key_item({
        "api_key": _STR, "api_key_id": _STR, "name": _STR,
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "signing_secret": {"type": "string", "description": "Only when the server has WEBHOOK_SECRET"},
    })  # fmt: skip
    listed = _key_item({
        "api_key_id": _STR, "name": _STR, "created_at": _STR,
        "expires_at": {"type": ["string", "null"]}, "active": {"type": "boolean"},
    })  # fmt: skip
    body = {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "expiry_days": {"type": ["integer", "null"], "minimum": 0,
                            "description": "Days until expiry; 0 = never; default from config"},
            "allowed_walkers": {"type": "array", "items": _STR,
                                "description": "Webhook walkers this key may call (default: all)"},
            "signing_secret": {"type": "string",
                               "description": "Your own signing secret (e.g. Stripe's whsec_...)"},
        },
        "example": {"name": "My Webhook Key", "expiry_days": 30},
    }  # fmt: skip
    ok = {"description": "OK"}
    return {
        "/api-key/create": {"post": {
            "tags": [KEY_TAG], "summary": "Create an API key", "operationId": "api_key_create",
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"201": {**ok, "content": {"application/json": {"schema": created}}},
                          "401": _ref("Unauthorized"), "409": _ref("Conflict"),
                          "422": _ref("ValidationError")},
            "security": BEARER,
        }},
        "/api-key/list": {"get": {
            "tags": [KEY_TAG], "summary": "List your API keys", "operationId": "api_key_list",
            "responses": {"200": {**ok, "content": {"application/json": {"schema": _key_item(
                {"api_keys": {"type": "array", "items": listed}})}}},
                "401": _ref("Unauthorized")},
            "security": BEARER,
        }},
        "/api-key/{api_key_id}": {"delete": {
            "tags": [KEY_TAG], "summary": "Revoke an API key", "operationId": "api_key_revoke",
            "parameters": [{"name": "api_key_id", "in": "path", "required": True, "schema": _STR}],
            "responses": {"200": ok, "401": _ref("Unauthorized"), "403": _ref("Forbidden"),
                          "404": {"description": "NOT_FOUND: no such key"}},
            "security": BEARER,
        }},
    }  # fmt: skip


def webhook_paths(state: WebhookState) -> dict[str, Any]:
    """Every webhook walker's path plus the key endpoints."""
    paths = key_paths()
    for name, policy in state.policies.items():
        paths[f"/webhook/{name}"] = {"post": webhook_operation(state, policy)}
    return paths
