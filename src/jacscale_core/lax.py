"""Lenient input conversion, as jac-scale (pydantic's lax mode) does it.

Clients written for jac-scale send numbers and booleans as strings (`"n": "7"`,
`"done": "yes"`). A value that already has the declared type is used as is;
otherwise `lax_value` rewrites the scalars it can convert the way pydantic's
lax mode would, walking lists, sets, tuples, dicts and unions, and the caller
validates the result strictly. What cannot convert is left alone, so the strict
check reports it.

Conversions (pydantic 2's rules for JSON-like input):
- int: "7", " 7 ", "+7", "1_000", "7.0" (a zero fraction); 7.0; true/false -> 1/0.
  Not "1e3", "7.5", "0x10" or an empty string.
- float: what Python's `float()` reads ("1.5", " 1.5 ", "1e3", "1_0.5", "inf");
  true/false -> 1.0/0.0.
- bool: "true"/"false", "1"/"0", "yes"/"no", "on"/"off", "t"/"f", "y"/"n" in any
  case; 0/1 and 0.0/1.0.
- str stays strict: 7 is not "7" (pydantic agrees).
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

import msgspec

_INT_TEXT = re.compile(r"^[+-]?[0-9]+(?:_[0-9]+)*(?:\.0*)?$")
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_SEQUENCES = (list, set, frozenset)


def convert(value: Any, annotation: Any) -> Any:
    """`value` as `annotation`: strictly, else after lax conversion; raises the strict error.

    Raises `msgspec.ValidationError` (from the strict attempt, so it describes what
    the client sent) when no conversion fits, and `TypeError` when msgspec cannot
    express `annotation`.
    """
    try:
        return msgspec.convert(value, annotation, strict=True)
    except msgspec.ValidationError as exc:
        converted = lax_value(value, annotation)
        if converted is value:
            raise
        try:
            return msgspec.convert(converted, annotation, strict=True)
        except msgspec.ValidationError:
            raise exc from None


def lax_value(value: Any, annotation: Any) -> Any:
    """`value` with its convertible scalars converted toward `annotation` (never raises)."""
    if annotation is bool:
        return _to_bool(value)
    if annotation is int:
        return _to_int(value)
    if annotation is float:
        return _to_float(value)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return _first_change(value, args)
    if origin in _SEQUENCES and isinstance(value, list) and args:
        return [lax_value(item, args[0]) for item in value]
    if origin is tuple and isinstance(value, list) and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return [lax_value(item, args[0]) for item in value]
        if len(args) == len(value):
            return [lax_value(item, arg) for item, arg in zip(value, args, strict=True)]
        return value
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return {key: lax_value(item, args[1]) for key, item in value.items()}
    return value


def _first_change(value: Any, members: tuple[Any, ...]) -> Any:
    """For a union: the value unchanged if a member already takes it, else the first conversion."""
    for member in members:
        if member is type(None):
            if value is None:
                return value
            continue
        if _exactly(value, member):
            return value
    for member in members:
        if member is type(None):
            continue
        converted = lax_value(value, member)
        if converted is not value:
            return converted
    return value


def _exactly(value: Any, annotation: Any) -> bool:
    """Whether a scalar `value` already has the scalar type `annotation`."""
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    return False


def _to_int(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if _INT_TEXT.match(text):
            try:
                return int(text.split(".", 1)[0].replace("_", ""))
            except ValueError:  # more digits than Python converts
                return value
    return value


def _to_float(value: Any) -> Any:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.isascii() and value.strip() and len(value) <= 400:
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _to_bool(value: Any) -> Any:
    if isinstance(value, str):
        word = value.lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    return value
