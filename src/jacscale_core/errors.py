"""API errors: one exception type, rendered as the error envelope by the app."""

from __future__ import annotations

from typing import Any

# Error codes and their HTTP status (the reference document).
STATUS_BY_CODE: dict[str, int] = {
    "VALIDATION_ERROR": 422,
    "BAD_REQUEST": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "IDENTITY_TAKEN": 409,
    "REQUEST_TIMEOUT": 408,
    "PAYLOAD_TOO_LARGE": 413,
    "RESPONSE_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "RATE_LIMITED": 429,
    "CLIENT_CLOSED_REQUEST": 499,
    "EXECUTION_ERROR": 500,
    "INTERNAL_ERROR": 500,
    "UNAVAILABLE": 503,
    "TIMEOUT": 504,
    "INSUFFICIENT_STORAGE": 507,
}


class ApiError(Exception):
    """An error the client should see: status, machine code, message, field details.

    `details` items follow the reference document: {"loc": ["body", "field"], "msg": ..., "type": ...}.
    Messages must never contain secrets, tracebacks or server paths.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_BY_CODE.get(code, 400)
        self.details = details
        self.headers = headers or {}


def validation_error(loc: list[str | int], msg: str, kind: str = "value_error") -> ApiError:
    """A 422 naming one bad field."""
    return ApiError(
        "VALIDATION_ERROR",
        f"Invalid value for {'.'.join(str(p) for p in loc)}: {msg}",
        details=[{"loc": loc, "msg": msg, "type": kind}],
    )


def unauthorized(message: str = "Authentication required") -> ApiError:
    """A 401 with the bearer challenge header."""
    return ApiError("UNAUTHORIZED", message, headers={"WWW-Authenticate": "Bearer"})


def not_found(message: str = "Not found") -> ApiError:
    """A 404."""
    return ApiError("NOT_FOUND", message)
