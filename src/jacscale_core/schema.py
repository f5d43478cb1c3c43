"""Schema evolution: reading records written by an earlier version of the program.

A record stores its archetype's class by reference (module and class name) and
its field values by name. When the program changes, `Schema` turns a stored
payload into one the current classes accept:

- `[plugins.scale.schema]` rules run first: a type renamed (`rename_types`),
  fields renamed (`rename_fields`) or dropped (`drop_fields`) and values for
  fields that are new and required (`defaults`);
- a field the class no longer declares is left out of the loaded object (the
  record keeps it until the object is next written, so reverting the code
  loses nothing);
- a field the record lacks gets the class's default, else the rule's default;
- a value that no longer fits its declared type is converted when the
  conversion loses nothing (`"5"` -> `5`, `2` -> `2.0`, `3.0` -> `3`, `7` -> `"7"`);
- anything else (a class that no longer exists, a value that cannot be
  converted, a new required field with no default) makes the record
  quarantined: it loads as a placeholder (`Quarantined*` below) that traversals
  skip and that is never written back, so the stored data stays as it was.

The fast path is untouched: a payload that unpickles and already fits its class
costs one isinstance check per field, once per record (the result is cached on
the record).
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType, NoneType, UnionType
from typing import Any

from jaclang.jac0core.archetype import (
    EdgeArchetype,
    NodeArchetype,
    ObjectArchetype,
    WalkerArchetype,
)

from jacscale_core.config import SchemaConfig

# --------------------------------------------------------------------------
# Placeholders for records that cannot be loaded
# --------------------------------------------------------------------------

QUARANTINE_KEY = "__jac_quarantine__"


class QuarantinedNode(NodeArchetype):
    """A stored node that the current program cannot load (see `quarantine_reason`)."""


class QuarantinedEdge(EdgeArchetype):
    """A stored edge that the current program cannot load."""


class QuarantinedObject(ObjectArchetype):
    """A stored object that the current program cannot load."""


class QuarantinedWalker(WalkerArchetype):
    """A stored walker that the current program cannot load."""


PLACEHOLDERS: dict[str, type] = {
    "node": QuarantinedNode,
    "edge": QuarantinedEdge,
    "object": QuarantinedObject,
    "walker": QuarantinedWalker,
}
PLACEHOLDER_TYPES = frozenset(PLACEHOLDERS.values())


def is_quarantined(archetype: object) -> bool:
    """True for a placeholder standing in for a record that could not be loaded."""
    return type(archetype) in PLACEHOLDER_TYPES


def quarantine_reason(archetype: object) -> str | None:
    """Why a placeholder could not be loaded (None for a normal archetype)."""
    if not is_quarantined(archetype):
        return None
    return str(archetype.__dict__.get(QUARANTINE_KEY, "unreadable record"))


class _MissingClass:
    """Stands in while unpickling for a class the program no longer has."""


@dataclass(slots=True)
class Decoded:
    """A stored payload read against the current program.

    `payload` is `(cls, fields, root, access, extra)` as stored, with `cls` and
    `fields` fitted to the current class. `quarantine` says why it could not be
    fitted (then `cls` is the stored type's name, not a class). `changed` is
    True when `fields` or `cls` differ from what the record holds.
    """

    cls: Any
    fields: dict[str, Any]
    root: bytes | None
    access: Any
    extra: tuple[Any, ...]
    changed: bool = False
    quarantine: str | None = None
    type_name: str = ""
    missing: list[str] = field(default_factory=list)


class _Unpickler(pickle.Unpickler):
    """Unpickles a payload, resolving renamed or missing classes instead of failing."""

    def __init__(self, data: bytes, schema: Schema) -> None:
        super().__init__(io.BytesIO(data))
        self.schema = schema
        self.missing: list[str] = []
        self.rebound = False

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - pickle's hook
        found = self.schema.resolve_class(module, name)
        if found is None:
            self.missing.append(f"{module}.{name}")
            return _MissingClass
        if (found.__module__, found.__qualname__) != (module, name):
            self.rebound = True
        return found


# Values a field of these declared types may be converted from, losslessly.
def _to_int(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a bool is not an int")
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError(f"{value!r} has a fraction")
    if isinstance(value, str):
        converted = int(value.strip())
        if str(converted) != value.strip():
            raise ValueError(f"{value!r} is not a plain integer")
        return converted
    raise ValueError(f"cannot convert {type(value).__name__}")


def _to_float(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a bool is not a float")
    if isinstance(value, int):
        converted = float(value)
        if int(converted) != value:
            raise ValueError(f"{value} does not fit a float exactly")
        return converted
    if isinstance(value, str):
        converted = float(value)
        if repr(converted) != value.strip() and str(converted) != value.strip():
            raise ValueError(f"{value!r} is not a plain number")
        return converted
    raise ValueError(f"cannot convert {type(value).__name__}")


def _to_str(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"cannot convert {type(value).__name__}")
    return repr(value) if isinstance(value, float) else str(value)


def _to_bool(value: Any) -> Any:
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{value!r} is not a boolean")


_CONVERTERS: dict[type, Callable[[Any], Any]] = {
    int: _to_int,
    float: _to_float,
    str: _to_str,
    bool: _to_bool,
}
_CONTAINERS: dict[Any, type] = {list: list, dict: dict, set: set, tuple: tuple}

Check = tuple[tuple[type, ...], bool, Callable[[Any], Any] | None]


def _check_for(annotation: Any) -> Check | None:
    """(accepted types, None allowed, converter) for a field annotation, None if unchecked."""
    allow_none = False
    options: list[Any] = [annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, UnionType):
        options = list(typing.get_args(annotation))
        allow_none = NoneType in options
        options = [o for o in options if o is not NoneType]
    accepted: list[type] = []
    for option in options:
        base = typing.get_origin(option) or option
        if base in _CONTAINERS:
            accepted.append(_CONTAINERS[base])
        elif base in _CONVERTERS:
            accepted.append(base)
        else:
            return None  # a class, Any, a literal...: not checked
    if not accepted:
        return None
    converter = _CONVERTERS.get(accepted[0]) if len(accepted) == 1 else None
    return (tuple(accepted), allow_none, converter)


def _fits(value: Any, check: Check) -> bool:
    accepted, allow_none, _ = check
    if value is None:
        return allow_none
    if isinstance(value, bool) and bool not in accepted:
        return False  # bool is an int subclass; an int field does not take True
    if isinstance(value, int) and not isinstance(value, bool) and float in accepted:
        return True
    return isinstance(value, accepted)


@dataclass(slots=True)
class _ClassShape:
    names: tuple[str, ...]
    required: frozenset[str]
    defaults: list[tuple[str, Any, Any]]
    checks: dict[str, Check]
    name_set: frozenset[str] = frozenset()
    # (field, the exact value types that fit it) for the common case's quick check
    exact: tuple[tuple[str, frozenset[type]], ...] = ()
    has_rules: bool = False


class Schema:
    """Fits stored payloads to the current program's classes (one per app)."""

    def __init__(
        self, config: SchemaConfig | None = None, modules: tuple[ModuleType, ...] = ()
    ) -> None:
        """Rules from `config`; `modules` are the program's (searched for renamed types)."""
        self.config = config or SchemaConfig()
        self.modules = modules
        self._type_rules = {old: new for old, new in self.config.rename_types.items()}
        # Keyed by id(): jaclang archetype classes hash slowly (~20 us); the class
        # is kept in the value so its id cannot be reused.
        self._shapes: dict[int, tuple[type, _ClassShape]] = {}
        self._classes: dict[tuple[str, str], type | None] = {}

    @property
    def has_type_rules(self) -> bool:
        """True when stored class references may need renaming."""
        return bool(self._type_rules)

    # -- classes ---------------------------------------------------------------
    def resolve_class(self, module: str, name: str) -> type | None:
        """The class a stored reference means now, or None if the program lacks it."""
        key = (module, name)
        if key in self._classes:
            return self._classes[key]
        target = self._type_rules.get(f"{module}.{name}") or self._type_rules.get(name)
        found: type | None = None
        if target is not None:
            new_module, _, new_name = target.rpartition(".")
            found = self._lookup(new_module or module, new_name)
        if found is None:
            found = self._lookup(module, name)
        if found is None and "." not in name:
            # The program module was renamed (app.jac -> main.jac): same class name.
            for mod in self.modules:
                candidate = getattr(mod, name, None)
                if isinstance(candidate, type):
                    found = candidate
                    break
        self._classes[key] = found
        return found

    def _lookup(self, module: str, name: str) -> type | None:
        """`module.name` among loaded modules (nothing is imported on a record's word)."""
        mod: Any = sys.modules.get(module)
        if mod is None:
            mod = next((m for m in self.modules if m.__name__ == module), None)
        obj: Any = mod
        for part in name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj if isinstance(obj, type) else None

    def _shape(self, cls: type) -> _ClassShape:
        cached = self._shapes.get(id(cls))
        if cached is not None:
            return cached[1]
        names: list[str] = []
        required: set[str] = set()
        defaults: list[tuple[str, Any, Any]] = []
        checks: dict[str, Check] = {}
        if dataclasses.is_dataclass(cls):
            try:
                hints = typing.get_type_hints(cls)
            except Exception:  # noqa: BLE001 - an unresolvable annotation is just not checked
                hints = {}
            for f in dataclasses.fields(cls):
                names.append(f.name)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    required.add(f.name)
                else:
                    defaults.append((f.name, f.default, f.default_factory))
                check = _check_for(hints.get(f.name, Any))
                if check is not None:
                    checks[f.name] = check
        exact = tuple(
            (n, frozenset(c[0]) | ({NoneType} if c[1] else set())) for n, c in checks.items()
        )
        name = cls.__qualname__
        has_rules = any(
            name in rules
            for rules in (
                self.config.rename_fields,
                self.config.drop_fields,
                self.config.defaults,
            )
        )
        shape = _ClassShape(
            tuple(names), frozenset(required), defaults, checks,
            frozenset(names), exact, has_rules,
        )  # fmt: skip
        self._shapes[id(cls)] = (cls, shape)
        return shape

    # -- payloads --------------------------------------------------------------
    def unpickle(self, state: bytes, fast: bool = True) -> tuple[tuple[Any, ...], list[str], bool]:
        """(payload, missing class names, renamed) for a stored state."""
        if fast and not self._type_rules:
            try:
                return pickle.loads(state), [], False
            except (AttributeError, ImportError):
                pass
        unpickler = _Unpickler(state, self)
        payload = unpickler.load()
        return payload, unpickler.missing, unpickler.rebound

    def decode(self, state: bytes, kind: str, for_load: bool = True) -> Decoded:
        """Read a stored state and fit it to the current classes.

        `for_load`: the object a request sees (fields the class lacks left out).
        Otherwise (`jacscale db migrate`): what the record should now hold
        (rules applied, values converted, unknown fields kept).
        """
        payload, missing, renamed = self.unpickle(state)
        cls, fields, root, access, extra = payload
        decoded = Decoded(cls, fields, root, access, extra, changed=renamed, missing=missing)
        if cls is _MissingClass:
            decoded.type_name = missing[0] if missing else "?"
            decoded.quarantine = f"type {decoded.type_name} no longer exists in the program"
            decoded.cls = PLACEHOLDERS.get(kind, QuarantinedObject)
            return decoded
        decoded.type_name = f"{cls.__module__}.{cls.__qualname__}"
        if missing:
            decoded.quarantine = (
                f"a field holds a value of type {missing[0]}, which no longer exists"
            )
            decoded.cls = PLACEHOLDERS.get(kind, QuarantinedObject)
            return decoded
        decoded.changed |= self._fit(decoded, for_load)
        if decoded.quarantine is not None:
            decoded.cls = PLACEHOLDERS.get(kind, QuarantinedObject)
        return decoded

    def _fit(self, decoded: Decoded, for_load: bool) -> bool:
        """Apply field rules, defaults and conversions in place; True if anything changed."""
        cls = decoded.cls
        fields = decoded.fields
        shape = self._shape(cls)
        if not shape.has_rules and fields.keys() == shape.name_set:
            # The common case: every field present, no rules; a value of exactly a
            # declared type needs nothing more.
            for field_name, exact in shape.exact:
                if type(fields[field_name]) not in exact:
                    break
            else:
                return False
        name = cls.__qualname__
        changed = False
        for old, new in self.config.rename_fields.get(name, {}).items():
            if old in fields and new not in fields:
                fields[new] = fields.pop(old)
                changed = True
        for gone in self.config.drop_fields.get(name, ()):
            if gone in fields:
                del fields[gone]
                changed = True
        if not shape.names:
            return changed
        if for_load:
            extra = [k for k in fields if k not in shape.names]
            for k in extra:
                del fields[k]
            changed |= bool(extra)
        rule_defaults = self.config.defaults.get(name, {})
        for field_name in shape.names:
            if field_name in fields:
                continue
            if field_name in rule_defaults:
                fields[field_name] = _copy(rule_defaults[field_name])
                changed = True
            elif field_name in shape.required:
                decoded.quarantine = (
                    f"{name}.{field_name} is required but the record has no value; add a"
                    f" default under [plugins.scale.schema.defaults.{name}]"
                )
                return changed
        if for_load:
            for field_name, default, factory in shape.defaults:
                if field_name not in fields:
                    fields[field_name] = (
                        default if default is not dataclasses.MISSING else factory()
                    )
                    changed = True
        for field_name, check in shape.checks.items():
            if field_name not in fields:
                continue
            value = fields[field_name]
            if _fits(value, check):
                continue
            converter = check[2]
            try:
                if converter is None:
                    raise ValueError("no lossless conversion")
                fields[field_name] = converter(value)
            except (ValueError, TypeError, OverflowError) as exc:
                decoded.quarantine = (
                    f"{name}.{field_name} holds {type(value).__name__} {_short(value)},"
                    f" which does not fit its declared type ({exc})"
                )
                return changed
            changed = True
        return changed


def _copy(value: Any) -> Any:
    """A private copy of a rule default (TOML values: scalars, lists, tables)."""
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def pack_state(payload: tuple[Any, ...]) -> bytes:
    """Pickle a `(cls, fields, root, access, extra)` payload as records store it."""
    return pickle.dumps(payload, protocol=5)


def stored_type(state: bytes) -> str:
    """The `module.Class` a stored state references, read without importing anything."""
    import pickletools

    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(state):
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(str(arg))
            elif opcode.name == "STACK_GLOBAL":
                return f"{strings[-2]}.{strings[-1]}" if len(strings) >= 2 else "?"
            elif opcode.name in ("GLOBAL", "INST"):
                return str(arg).replace(" ", ".")
    except ValueError:
        pass  # truncated or not a pickle
    return "?"
