"""JSON out: jaclang-compatible value rendering and the response envelope (msgspec).

`to_jsonable` produces exactly what `Serializer.serialize(x, api_mode=True)` gives
in jaclang 0.16.7 (tests/test_codec.py checks a corpus against it), without its
reflection cost on the common paths; msgspec then encodes the result. One
deliberate difference: `bytes` are base64 text, where jaclang's `str()` fallback
made a 90 MiB file a 663 MB Python-literal string.
"""

from __future__ import annotations

import base64
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


_names_cache: dict[tuple[type, tuple[str, ...]], tuple[str, ...]] = {}


def _public_names(obj: Any) -> tuple[str, ...]:
    """Sorted public attribute names, as `dir()` would list them (cached per shape)."""
    cls = type(obj)
    instance = tuple(obj.__dict__)
    key = (cls, instance)
    names = _names_cache.get(key)
    if names is None:
        class_names = _class_attrs.get(cls)
        if class_names is None:
            class_names = _class_attrs[cls] = tuple(
                a for a in dir(cls) if not a.startswith("_") and a not in _HIDDEN
            )
        own = (k for k in instance if not k.startswith("_") and k not in _HIDDEN)
        names = tuple(sorted(set(class_names).union(own)))
        if len(_names_cache) > 10_000:
            _names_cache.clear()
        _names_cache[key] = names
    return names


def _attrs(obj: Any, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    values = obj.__dict__
    for name in _public_names(obj):
        if name in skip:
            continue
        value = values[name] if name in values else getattr(obj, name, _ABSENT)
        if value is _ABSENT or callable(value):
            continue
        out[name] = to_jsonable(value)
    return out


_ABSENT = object()


def to_jsonable(val: Any) -> Any:
    """Render a value the way jaclang's API serializer does."""
    t = type(val)
    if val is None or t is str or t is int or t is float or t is bool:
        return val
    if t is list or t is tuple:
        return [to_jsonable(v) for v in val]
    if t is dict:
        return {str(k): to_jsonable(v) for k, v in val.items()}
    render = _renderers.get(t)
    if render is None:
        render = _renderers[t] = _renderer_for(t)
    return render(val)


def _renderer_for(t: type) -> Any:
    """The rendering rule for a type, in jaclang's order of checks."""
    if issubclass(t, (str, int, float, bool)):
        return lambda v: v
    if issubclass(t, UUID):
        return str
    if issubclass(t, (bytes, bytearray, memoryview)):
        # base64 (4 characters per 3 bytes), never str(): b"\x00" became "b'\\x00'".
        return _base64
    if issubclass(t, Enum):
        return lambda v: v.value
    if issubclass(t, (list, tuple)):
        return lambda v: [to_jsonable(x) for x in v]
    if issubclass(t, dict):
        return lambda v: {str(k): to_jsonable(x) for k, x in v.items()}
    if issubclass(t, Access):
        return lambda v: {"anchors": {str(k): x.value for k, x in v.anchors.items()}}
    if issubclass(t, Permission):
        return lambda v: {"all": v.all.value, "roots": to_jsonable(v.roots)}
    if issubclass(t, Anchor):
        return _anchor
    if issubclass(t, Archetype):
        kind = (
            "node" if issubclass(t, NodeArchetype)
            else "walker" if issubclass(t, WalkerArchetype)
            else "archetype"
        )  # fmt: skip
        name = t.__name__

        def archetype(v: Any) -> dict[str, Any]:
            anchor = v.__dict__.get("__jac__") or getattr(v, "__jac__", None)
            head = {
                "_jac_type": name,
                "_jac_id": anchor.id.hex if anchor is not None else None,
                "_jac_archetype": kind,
            }
            return head | _attrs(v)

        return archetype
    return _generic


def _base64(val: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(val).decode("ascii")


def _generic(val: Any) -> Any:
    if getattr(val, "__dict__", None):
        t = type(val)
        out: dict[str, Any] = {"__type__": t.__name__, "__module__": t.__module__}
        for k, v in val.__dict__.items():
            if not k.startswith("_"):
                out[k] = to_jsonable(v)
        return out
    log.debug("rendering %s with str()", type(val).__name__)
    return str(val)


_WALKER_RESULT_SKIP = frozenset({"reports"})


def walker_result(walker: WalkerArchetype) -> dict[str, Any]:
    """A walker as `data.result`: rendered like any walker, minus its `reports`.

    The reports are `data.reports`; jac-scale 0.2.31 repeated them here (upstream
    jaclang dropped the copy too), doubling the size of list answers.
    """
    anchor = walker.__dict__.get("__jac__") or getattr(walker, "__jac__", None)
    head = {
        "_jac_type": type(walker).__name__,
        "_jac_id": anchor.id.hex if anchor is not None else None,
        "_jac_archetype": "walker",
    }
    return head | _attrs(walker, _WALKER_RESULT_SKIP)


class Rendered:
    """A value already rendered by `to_jsonable` (rendering it again returns it as is).

    The executor renders reports while the request's graph is still loaded, then
    releases the graph; consumers keep calling `to_jsonable` on what they get.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


_renderers: dict[type, Any] = {Rendered: lambda v: v.value}


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
    ignored_fields: list[str] | None = None,
) -> dict[str, Any]:
    """The success envelope (the reference document); `meta.ignored_fields` names undeclared inputs."""
    data: dict[str, Any] = {"result": to_jsonable(result), "reports": to_jsonable(reports)}
    if warnings:
        data["warnings"] = [_warning(w) for w in warnings]
    meta: dict[str, Any] = {"extra": {"http_status": status}, "request_id": request_id}
    if ignored_fields:
        meta["ignored_fields"] = ignored_fields
    return {"ok": True, "type": "response", "data": data, "error": None, "meta": meta}


def _warning(diag: dict[str, Any]) -> dict[str, Any]:
    keys = ("operation", "target_id", "target_type", "required", "actual", "message")
    return {k: to_jsonable(diag.get(k)) for k in keys}


def error_envelope(err: ApiError, request_id: str) -> dict[str, Any]:
    """The error envelope (the reference document)."""
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
