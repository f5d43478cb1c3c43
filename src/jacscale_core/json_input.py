"""JSON from clients: decoded with msgspec, nested no deeper than a limit.

Two thousand nested `[` made every JSON endpoint answer 500 `RecursionError`
(in the decoder or in whatever walked the value next). Here the nesting depth is
bounded: a value nested deeper than `max_depth` containers, or one the decoder
cannot even descend, is a 422 naming the body. The depth is measured without
recursion, so measuring it cannot fail the same way.
"""

from __future__ import annotations

from typing import Any

import msgspec

from jacscale_core.errors import ApiError

# `[plugins.scale.api] max_json_depth`: 64 containers inside each other.
MAX_JSON_DEPTH = 64


def invalid_json(exc: msgspec.DecodeError) -> ApiError:
    """The 422 for a request body that is not JSON (raise it `from None`)."""
    return ApiError(
        "VALIDATION_ERROR",
        "Request body is not valid JSON",
        details=[{"loc": ["body"], "msg": str(exc), "type": "json_invalid"}],
    )


def too_deep_error(max_depth: int, loc: list[str | int] | None = None) -> ApiError:
    """The 422 for a value nested deeper than `max_depth`."""
    msg = f"JSON nested deeper than {max_depth} levels"
    return ApiError(
        "VALIDATION_ERROR",
        f"Request body is {msg}",
        details=[{"loc": loc or ["body"], "msg": msg, "type": "json_too_deep"}],
    )


def nesting_depth_exceeds(value: Any, max_depth: int) -> bool:
    """True when `value` has lists/dicts nested more than `max_depth` deep (iterative)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if type(item) is dict else item
        if depth > max_depth:
            return True
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
    return False


def _may_be_too_deep(body: bytes | str, max_depth: int) -> bool:
    """False when the body has too few brackets to be nested deeper than `max_depth`."""
    if isinstance(body, str):
        return body.count("[") + body.count("{") > max_depth
    return body.count(b"[") + body.count(b"{") > max_depth


def decode_json(body: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode client JSON; 422 for invalid JSON or nesting deeper than `max_depth`."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise invalid_json(exc) from None
    except RecursionError:
        raise too_deep_error(max_depth) from None
    if type(decoded) in (dict, list) and _may_be_too_deep(body, max_depth):
        if nesting_depth_exceeds(decoded, max_depth):
            raise too_deep_error(max_depth)
    return decoded
