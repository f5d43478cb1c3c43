"""JSON out: jaclang-compatible value rendering and the response envelope (msgspec).

`to_jsonable` produces exactly what `Serializer.serialize(x, api_mode=True)` gives
in jaclang 0.16.7 (tests/test_codec.py checks a corpus against it), without its
reflection cost on the common paths; msgspec then encodes the result.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any
from uuid import UUID

import msgspec
from jaclang.jac0core.archetype import (
    Access,
    Anchor,
    Archetype,
    EdgeAnchor,
    NodeAnchor,
    NodeArchetype,
    Permission,
    WalkerArchetype,
)

from jacscale_core.errors import ApiError

log = logging.getLogger("jacscale.codec")

_encoder = msgspec.json.Encoder()
# Public attributes a class contributes through dir() (jaclang lists dir(obj)).
_class_attrs: dict[type, tuple[str, ...]] = {}
# Never rendered: the @restspec options jac-scale leaked into every walker result.
_HIDDEN = frozenset({"restspec"})


def encode(obj: Any) -> bytes:
    """JSON bytes for a structure of plain values."""
    return _encoder.encode(obj)


def _public_names(obj: Any) -> list[str]:
    cls = type(obj)
    names = _class_attrs.get(cls)
    if names is None:
        names = tuple(
            a for a in dir(cls) if not a.startswith("_") and a not in _HIDDEN
        )
        _class_attrs[cls] = names
    instance = [k for k in obj.__dict__ if not k.startswith("_") and k not in _HIDDEN]
    return sorted(set(names).union(instance))


def _attrs(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _public_names(obj):
        try:
            value = getattr(obj, name)
        except AttributeError:
            continue
        if callable(value):
            continue
        out[name] = to_jsonable(value)
    return out


def to_jsonable(val: Any) -> Any:
    """Render a value the way jaclang's API serializer does."""
    t = type(val)
    if val is None or t is str or t is int or t is float or t is bool:
        return val
    if t is list or t is tuple:
        return [to_jsonable(v) for v in val]
    if t is dict:
        return {str(k): to_jsonable(v) for k, v in val.items()}
    if isinstance(val, (str, int, float, bool)):
        return val
    if isinstance(val, UUID):
        return str(val)
    if isinstance(val, Enum):
        return val.value
    if isinstance(val, (list, tuple)):
        return [to_jsonable(v) for v in val]
    if isinstance(val, dict):
        return {str(k): to_jsonable(v) for k, v in val.items()}
    if isinstance(val, Access):
        return {"anchors": {str(k): v.value for k, v in val.anchors.items()}}
    if isinstance(val, Permission):
        return {"all": val.all.value, "roots": to_jsonable(val.roots)}
    if isinstance(val, Anchor):
        return _anchor(val)
    if isinstance(val, Archetype):
        anchor = val.__dict__.get("__jac__") or getattr(val, "__jac__", None)
        kind = (
            "node"
            if isinstance(val, NodeArchetype)
            else "walker"
            if isinstance(val, WalkerArchetype)
            else "archetype"
        )
        head = {
            "_jac_type": t.__name__,
            "_jac_id": anchor.id.hex if anchor is not None else None,
            "_jac_archetype": kind,
        }
        return head | _attrs(val)
    if getattr(val, "__dict__", None):
        out: dict[str, Any] = {"__type__": t.__name__, "__module__": t.__module__}
        for k, v in val.__dict__.items():
            if not k.startswith("_"):
                out[k] = to_jsonable(v)
        return out
    log.debug("rendering %s.%s with str()", t.__module__, t.__name__)
    return str(val)


def _anchor(val: Anchor) -> dict[str, Any]:
    result: dict[str, Any] = {
        "id": str(val.id),
        "root": str(val.root) if val.root else None,
        "persistent": val.persistent,
        "access": to_jsonable(val.access),
    }
    if val.is_populated():
        result["archetype"] = _attrs(val.archetype)
    if isinstance(val, NodeAnchor):
        result["edges"] = [str(e.id) for e in val.edges]
        result["version"] = val.version
    if isinstance(val, EdgeAnchor):
        result["source"] = str(val.source.id) if val.source else None
        result["target"] = str(val.target.id) if val.target else None
        result["is_undirected"] = val.is_undirected
    return result


def ok_envelope(
    result: Any,
    reports: list[Any],
    request_id: str,
    status: int = 200,
    warnings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The success envelope (REFERENCE.md)."""
    data: dict[str, Any] = {"result": to_jsonable(result), "reports": to_jsonable(reports)}
    if warnings:
        data["warnings"] = [_warning(w) for w in warnings]
    return {
        "ok": True,
        "type": "response",
        "data": data,
        "error": None,
        "meta": {"extra": {"http_status": status}, "request_id": request_id},
    }


def _warning(diag: dict[str, Any]) -> dict[str, Any]:
    keys = ("operation", "target_id", "target_type", "required", "actual", "message")
    return {k: to_jsonable(diag.get(k)) for k in keys}


def error_envelope(err: ApiError, request_id: str) -> dict[str, Any]:
    """The error envelope (REFERENCE.md)."""
    error: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.details:
        error["details"] = err.details
    return {
        "ok": False,
        "type": "error",
        "data": None,
        "error": error,
        "meta": {"extra": {"http_status": err.status}, "request_id": request_id},
    }
