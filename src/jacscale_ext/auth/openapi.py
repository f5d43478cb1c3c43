"""OpenAPI path items for the auth endpoints (contributed via `jacscale_openapi_paths`).

Schemas are inline so the contribution stands alone; protected operations name
the `bearerAuth` security scheme (an HTTP bearer JWT scheme the docs plugin
declares in `components.securitySchemes`).
"""

from __future__ import annotations

from typing import Any

TAG = "User APIs"
SSO_TAG = "SSO APIs"
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]

_str: dict[str, Any] = {"type": "string"}

IDENTITY = {
    "type": "object",
    "required": ["type", "value"],
    "properties": {"type": {"type": "string", "enum": ["email", "username"]}, "value": _str},
}
CREDENTIAL = {
    "type": "object",
    "required": ["password"],
    "properties": {"type": {"type": "string", "enum": ["password"]}, "password": _str},
}

REGISTER_BODY = {
    "oneOf": [
        {
            "title": "Email or username",
            "type": "object",
            "required": ["password"],
            "properties": {
                "email": {"type": "string", "format": "email"},
                "username": {"type": "string", "minLength": 1, "maxLength": 64},
                "password": {"type": "string", "minLength": 6},
                "profile": {"type": "object", "additionalProperties": True},
            },
        },
        {
            "title": "jac-scale 0.2.31 identities",
            "type": "object",
            "required": ["identities", "credential"],
            "properties": {
                "identities": {"type": "array", "minItems": 1, "items": IDENTITY},
                "credential": CREDENTIAL,
                "profile": {"type": "object", "additionalProperties": True},
            },
        },
    ],
    "example": {"email": "user@example.com", "password": "secret"},
}

LOGIN_BODY = {
    "oneOf": [
        {
            "title": "Email or username",
            "type": "object",
            "required": ["password"],
            "properties": {"email": _str, "username": _str, "password": _str},
        },
        {
            "title": "jac-scale 0.2.31 identity",
            "type": "object",
            "required": ["identity", "credential"],
            "properties": {"identity": IDENTITY, "credential": CREDENTIAL},
        },
    ],
    "example": {"email": "user@example.com", "password": "secret"},
}


def _with_envelope(
    required: list[str], props: dict[str, Any], data: dict[str, Any]
) -> dict[str, Any]:
    """A flat answer that also carries jac-scale's envelope keys (`data` described by `data`)."""
    return {
        "type": "object",
        "required": [*required, "ok", "type", "data"],
        "properties": {
            **props,
            "ok": {"type": "boolean", "enum": [True]},
            "type": {"type": "string", "enum": ["response"]},
            "data": {"type": "object", **data,
                     "description": "What jac-scale 0.2.31 clients read (jaclang's client runtime)"},
            "error": {"type": "null"},
            "meta": {"type": "object"},
        },
    }  # fmt: skip


_TOKEN_PROPS: dict[str, Any] = {
    "access_token": {"type": "string", "description": "JWT to send as `Authorization: Bearer`"},
    "token_type": {"type": "string", "enum": ["bearer"]},
    "expires_in": {"type": "integer", "description": "seconds"},
    "user_id": _str,
    "root_id": _str,
}
_TOKEN_DATA: dict[str, Any] = {
    "required": ["token", "user_id", "root_id"],
    "properties": {"token": {"type": "string", "description": "the same JWT as `access_token`"},
                   "user_id": _str, "root_id": _str, "role": _str, "message": _str},
}  # fmt: skip
TOKEN_ANSWER = _with_envelope(
    ["access_token", "token_type", "expires_in", "user_id", "root_id"], _TOKEN_PROPS, _TOKEN_DATA
)

IDENTITIES = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"type": {"type": "string", "enum": ["email", "username", "sso"]},
                       "value": _str, "provider": _str, "verified": {"type": "boolean"},
                       "is_recovery": {"type": "boolean"}},
    },
}  # fmt: skip

_REGISTERED_PROPS = {"user_id": _str, "root_id": _str, "email": _str, "username": _str}
REGISTERED = _with_envelope(
    ["user_id", "root_id"],
    _REGISTERED_PROPS,
    {"required": ["user_id"],
     "properties": {**_REGISTERED_PROPS, "identities": IDENTITIES, "message": _str}},
)  # fmt: skip

_ME_PROPS = {
    "user_id": _str,
    "root_id": _str,
    "email": _str,
    "email_verified": {"type": "boolean"},
    "username": _str,
    "created_at": {"type": "string", "format": "date-time"},
    "sso": {"type": "array", "items": _str},
    "profile": {"type": "object"},
}
ME = _with_envelope(
    ["user_id", "root_id", "created_at"],
    _ME_PROPS,
    {"required": ["user_id", "identities"],
     "properties": {**_ME_PROPS, "identities": IDENTITIES, "role": _str, "status": _str}},
)  # fmt: skip

REFRESH_BODY = {
    "type": "object",
    "properties": {"token": {"type": "string",
                             "description": "The JWT to refresh (`<jwt>` or `Bearer <jwt>`); "
                                            "without it, the Authorization header's"}},
    "example": {"token": "eyJ..."},
}  # fmt: skip

ERROR = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean", "enum": [False]},
        "type": {"type": "string", "enum": ["error"]},
        "data": {"type": "null"},
        "error": {
            "type": "object",
            "properties": {
                "code": _str,
                "message": _str,
                "details": {"type": "array", "items": {"type": "object"}},
            },
        },
        "meta": {"type": "object"},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json(ERROR)}


def _op(
    summary: str,
    ok: tuple[str, str, dict[str, Any]],
    errors: dict[str, str],
    *,
    body: dict[str, Any] | None = None,
    bearer: bool = False,
    tag: str = TAG,
    op_id: str,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    status, description, schema = ok
    responses: dict[str, Any] = {status: {"description": description}}
    if schema:
        responses[status]["content"] = _json(schema)
    for code, text in errors.items():
        responses[code] = _error(text)
    op: dict[str, Any] = {
        "tags": [tag],
        "summary": summary,
        "operationId": op_id,
        "responses": responses,
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(body)}
    if bearer:
        op["security"] = BEARER
    if parameters:
        op["parameters"] = parameters
    return op


_PLATFORM = {"name": "platform", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "SSO platform, e.g. google"}  # fmt: skip
_REDIRECT = {"name": "redirect_uri", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "Front-end URL to hand the token to (must be allowed)"}  # fmt: skip


def _refresh_op(op_id: str) -> dict[str, Any]:
    op = _op(
        'A fresh token for a valid one (Authorization header or `{"token"}` body)',
        ("200", "A new token", TOKEN_ANSWER),
        {"401": "Missing, invalid or expired token", "422": "`token` is not a non-empty string"},
        bearer=True,
        op_id=op_id,
    )
    op["requestBody"] = {"required": False, "content": _json(REFRESH_BODY)}
    op["security"] = [*BEARER, {}]
    return op


def auth_paths() -> dict[str, Any]:
    """Path items for every auth route."""
    unauthorized = {"401": "Missing, invalid or expired token"}
    redirect: tuple[str, str, dict[str, Any]] = (
        "302",
        "Redirect to the provider's sign-in page",
        {},
    )
    return {
        "/user/register": {
            "post": _op(
                "Register a user (own root graph)",
                ("201", "Created", REGISTERED),
                {
                    "409": "Email or username already registered (IDENTITY_TAKEN)",
                    "422": "Invalid field (named in details)",
                },
                body=REGISTER_BODY,
                op_id="user_register",
            )  # fmt: skip
        },
        "/user/login": {
            "post": _op(
                "Log in with email or username and password",
                ("200", "Signed in", TOKEN_ANSWER),
                {
                    "401": "Invalid credentials",
                    "422": "Invalid field",
                    "429": "Too many failed attempts (see Retry-After)",
                },
                body=LOGIN_BODY,
                op_id="user_login",
            )  # fmt: skip
        },
        "/user/me": {
            "get": _op(
                "The signed-in user",
                ("200", "The user", ME),
                unauthorized,
                bearer=True,
                op_id="user_me",
            ),
            "delete": _op(
                "Delete the signed-in user (the graph data stays)",
                (
                    "200",
                    "Deleted",
                    {
                        "type": "object",
                        "properties": {"deleted": {"type": "boolean"}, "user_id": _str},
                    },
                ),
                {**unauthorized, "422": "Wrong password"},
                body={"type": "object", "required": ["password"], "properties": {"password": _str}},
                bearer=True,
                op_id="user_delete",
            ),  # fmt: skip
        },
        "/user/password": {
            "put": _op(
                "Change the password; every earlier token stops working",
                (
                    "200",
                    "Changed; a fresh token",
                    {**TOKEN_ANSWER, "properties": {**TOKEN_ANSWER["properties"], "message": _str}},
                ),
                {
                    **unauthorized,
                    "422": "Wrong current password or invalid new password",
                    "429": "Too many failed attempts",
                },
                body={
                    "type": "object",
                    "required": ["current_password", "new_password"],
                    "properties": {"current_password": _str, "new_password": _str},
                },
                bearer=True,
                op_id="user_password",
            )  # fmt: skip
        },
        "/user/refresh": {"post": _refresh_op("user_refresh")},
        "/user/refresh-token": {"post": _refresh_op("user_refresh_token")},
        "/sso/{platform}/login": {
            "get": _op(
                "Start signing in with an SSO provider",
                redirect,
                {"404": "Platform not configured", "422": "redirect_uri not allowed"},
                tag=SSO_TAG,
                op_id="sso_login",
                parameters=[_PLATFORM, _REDIRECT],
            )
        },
        "/sso/{platform}/register": {
            "get": _op(
                "Start registering with an SSO provider",
                redirect,
                {"404": "Platform not configured", "422": "redirect_uri not allowed"},
                tag=SSO_TAG,
                op_id="sso_register",
                parameters=[_PLATFORM, _REDIRECT],
            )
        },
        "/sso/{platform}/login/callback": {
            "get": _op(
                "Provider callback: verifies the sign-in and answers with a token "
                "(JSON, or a redirect to the front end with the token in the URL fragment)",
                (
                    "200",
                    "Signed in",
                    _with_envelope(
                        list(_TOKEN_PROPS),
                        {**_TOKEN_PROPS, "platform": _str, "created": {"type": "boolean"}},
                        _TOKEN_DATA,
                    ),
                ),
                {
                    "400": "Invalid or expired sign-in attempt",
                    "401": "Provider refused the sign-in",
                    "502": "Provider unreachable",
                },
                tag=SSO_TAG,
                op_id="sso_callback",
                parameters=[
                    _PLATFORM,
                    {"name": "code", "in": "query", "required": False, "schema": _str},
                    {"name": "state", "in": "query", "required": True, "schema": _str},
                ],
            )  # fmt: skip
        },
    }
