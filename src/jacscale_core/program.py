"""Load a Jac program with jaclang and describe its walkers and functions as Endpoints.

jaclang compiles and imports the program; we only read what it produced: walker
classes and module functions defined in the program itself (never imported
runtime helpers), their `has` fields and signatures, access modifiers (from the
compiled unitree) and `@restspec` options.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import msgspec

from jacscale_core import lax
from jacscale_core.errors import ApiError

Access = Literal["public", "protected", "private"]
Protocol = Literal["http", "webhook", "websocket", "schedule"]
MISSING: Any = dataclasses.MISSING


class ProgramLoadError(Exception):
    """The program could not be compiled or imported; the message holds jaclang's diagnostics."""


@dataclass(slots=True)
class FieldSpec:
    """One input field of an endpoint: a walker `has` field or a function parameter."""

    name: str
    annotation: Any
    required: bool
    default: Any = MISSING
    default_factory: Callable[[], Any] | None = None


@dataclass(eq=False)
class Endpoint:
    """A walker or function as the server exposes it."""

    name: str
    kind: Literal["walker", "function"]
    target: Any
    fields: list[FieldSpec]
    access: Access = "protected"
    is_async: bool = False
    method: str = "POST"
    path: str | None = None
    protocol: Protocol = "http"
    broadcast: bool = False
    envelope: bool | None = None
    timeout: float | None = None  # @restspec(timeout=...) seconds; None: the configured default
    doc: str = ""
    has_uploads: bool = False
    # jaclang's ScheduleSpec for `@schedule` targets (protocol "schedule": never routed).
    schedule: Any = None

    @property
    def route_path(self) -> str:
        """The URL path the endpoint is served at (custom @restspec path or the default)."""
        if self.path:
            return self.path if self.path.startswith("/") else "/" + self.path
        if self.protocol == "webhook":
            return f"/webhook/{self.name}"
        if self.protocol == "websocket":
            return f"/ws/{self.name}"
        return f"/{self.kind}/{self.name}"

    @property
    def path_params(self) -> list[str]:
        """Names of `{param}` segments in a custom path."""
        return [seg[1:-1] for seg in self.route_path.split("/") if seg.startswith("{")]

    def undeclared(self, data: dict[str, Any]) -> list[str]:
        """The keys of `data` that are not input fields of this endpoint, in order."""
        if not data:
            return []
        known = self.field_names
        return [key for key in data if key not in known]

    @functools.cached_property
    def field_names(self) -> frozenset[str]:
        """The names of the input fields (fixed once the program is loaded)."""
        return frozenset(f.name for f in self.fields)

    def decode(self, data: Any, loc_root: str = "body") -> dict[str, Any]:
        """Validate and convert input into keyword arguments, naming every bad field.

        Raises ApiError(422) with one `details` item per missing, unknown or
        wrongly typed field. Fields with defaults (None included) are optional.
        """
        if not isinstance(data, dict):
            raise ApiError(
                "VALIDATION_ERROR",
                "Request body must be a JSON object",
                details=[{"loc": [loc_root], "msg": "Expected an object", "type": "type_error"}],
            )
        details: list[dict[str, Any]] = [
            {"loc": [loc_root, key], "msg": "Unknown field", "type": "extra_forbidden"}
            for key in self.undeclared(data)
        ]
        out: dict[str, Any] = {}
        for spec in self.fields:
            if spec.name not in data:
                if spec.required:
                    details.append(
                        {"loc": [loc_root, spec.name], "msg": "Field required", "type": "missing"}
                    )
                continue
            value = data[spec.name]
            if spec.annotation is UploadMarker or _is_upload(spec.annotation):
                if not _looks_like_upload(value):
                    details.append(
                        {
                            "loc": [loc_root, spec.name],
                            "msg": "Expected a file upload (multipart/form-data)",
                            "type": "type_error",
                        }
                    )
                    continue
                out[spec.name] = value
                continue
            try:
                out[spec.name] = _convert(value, spec.annotation)
            except msgspec.ValidationError as exc:
                details.append(
                    {"loc": [loc_root, spec.name], "msg": str(exc), "type": "type_error"}
                )
        if details:
            names = ", ".join(str(d["loc"][-1]) for d in details)
            raise ApiError("VALIDATION_ERROR", f"Invalid input: {names}", details=details)
        return out


class UploadMarker:
    """Stands for `UploadFile` annotations (installed into the stdlib `http` module)."""


def _is_upload(annotation: Any) -> bool:
    name = getattr(annotation, "__name__", "")
    return name == "UploadFile"


def _looks_like_upload(value: Any) -> bool:
    return hasattr(value, "file") and hasattr(value, "filename")


_STRICT_SCALARS = (int, float, bool, str)


def _convert(value: Any, annotation: Any) -> Any:
    """Convert a JSON value to the annotated type ("5" is an int, as in jac-scale: see lax)."""
    if annotation in (Any, None, inspect.Parameter.empty, object) or isinstance(annotation, str):
        return value
    try:
        return lax.convert(value, annotation)
    except TypeError:
        # msgspec cannot express this annotation (e.g. an archetype type): accept as is.
        return value


def _safe_hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj)
    except Exception:  # noqa: BLE001 - unresolvable forward refs: fall back to raw strings
        return dict(getattr(obj, "__annotations__", {}))


def _normalise_annotation(annotation: Any) -> Any:
    """Map Jac's `any` and unknown classes to Any so msgspec can validate the rest."""
    if annotation is None or annotation is inspect.Parameter.empty:
        return Any
    if isinstance(annotation, str):
        return Any
    try:
        msgspec.json.Decoder(annotation)
    except TypeError:
        return Any
    return annotation


def walker_fields(cls: type) -> list[FieldSpec]:
    """The `has` fields of a walker class, in declaration order."""
    hints = _safe_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name == "reports" or f.name.startswith("_"):
            continue
        raw = hints.get(f.name, Any)
        annotation = UploadMarker if _is_upload(raw) else _normalise_annotation(raw)
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        factory = f.default_factory if f.default_factory is not MISSING else None
        specs.append(
            FieldSpec(
                name=f.name,
                annotation=annotation,
                required=not has_default,
                default=f.default,
                default_factory=factory,  # type: ignore[arg-type]
            )
        )
    return specs


def function_fields(fn: Callable[..., Any]) -> list[FieldSpec]:
    """The parameters of a module function."""
    hints = _safe_hints(fn)
    specs = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        raw = hints.get(p.name, Any)
        annotation = UploadMarker if _is_upload(raw) else _normalise_annotation(raw)
        required = p.default is inspect.Parameter.empty
        specs.append(
            FieldSpec(
                name=p.name,
                annotation=annotation,
                required=required,
                default=MISSING if required else p.default,
            )
        )
    return specs


@dataclass
class Program:
    """A loaded Jac program and its endpoints (private ones excluded)."""

    path: Path
    module: ModuleType
    endpoints: dict[str, Endpoint]
    private: list[str] = field(default_factory=list)

    def node_types(self) -> dict[str, type]:
        """Node and edge archetype classes defined by the program, by name."""
        from jaclang.jac0core.constructs import EdgeArchetype, NodeArchetype

        out = {}
        for name, value in vars(self.module).items():
            if (
                isinstance(value, type)
                and issubclass(value, (NodeArchetype, EdgeArchetype))
                and value.__module__ == self.module.__name__
            ):
                out[name] = value
        return out


def _access_modifiers(compiled: Any) -> dict[str, Access]:
    """Map top-level walker and function names to their access modifier."""
    import jaclang.jac0core.unitree as uni

    out: dict[str, Access] = {}
    nodes = compiled.get_all_sub_nodes(uni.Archetype) + compiled.get_all_sub_nodes(uni.Ability)
    for node in nodes:
        parent = node.parent
        while parent is not None and not isinstance(parent, (uni.Archetype, uni.Ability)):
            parent = parent.parent
        if parent is not None:
            continue  # nested ability (a walker's `can`), not a module function
        ref = getattr(node, "name_ref", None)
        name = ref.sym_name if ref is not None else node.name.value
        tag = node.access.tag.name if node.access else None
        out[name] = "public" if tag == "KW_PUB" else "private" if tag == "KW_PRIV" else "protected"
    return out


def _restspec_options(target: Any) -> dict[str, Any]:
    spec = getattr(target, "restspec", None)
    if spec is None:
        return {}
    method = getattr(spec, "method", "") or "POST"
    method = str(getattr(method, "value", method)).upper()
    protocol = getattr(spec, "protocol", "http")
    protocol = str(getattr(protocol, "value", protocol)).lower()
    return {
        "method": method,
        "path": getattr(spec, "path", "") or None,
        "protocol": protocol,
        "broadcast": bool(getattr(spec, "broadcast", False)),
        "envelope": getattr(spec, "envelope", None),
        "timeout": _timeout_option(getattr(spec, "timeout", None)),
    }


def _timeout_option(value: Any) -> float | None:
    """`@restspec(timeout=...)`: seconds (0 turns the deadline off); anything else is an error."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ProgramLoadError(f"@restspec(timeout=...) must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _own_doc(target: Any) -> str:
    """The docstring the program wrote (not the signature dataclasses invent)."""
    raw = target.__doc__ or ""
    if isinstance(target, type) and raw.startswith(target.__name__ + "("):
        return ""
    return inspect.cleandoc(raw)


def _has_async_ability(cls: type) -> bool:
    for fn in [*getattr(cls, "_jac_entry_funcs_", []), *getattr(cls, "_jac_exit_funcs_", [])]:
        if inspect.iscoroutinefunction(getattr(fn, "func", None)):
            return True
    return False


def describe(module: ModuleType, compiled: Any, path: Path) -> Program:
    """Build the Program description from an imported module and its compiled unitree."""
    from jaclang.jac0core.archetype import Archetype
    from jaclang.jac0core.constructs import WalkerArchetype

    from jacscale_core.memory import track_writes

    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, Archetype)
            and not issubclass(value, WalkerArchetype)
            and value.__module__ == module.__name__
        ):
            track_writes(value)
    access = _access_modifiers(compiled)
    endpoints: dict[str, Endpoint] = {}
    private: list[str] = []
    for name, value in vars(module).items():
        is_walker = (
            isinstance(value, type)
            and issubclass(value, WalkerArchetype)
            and value.__module__ == module.__name__
        )
        is_function = inspect.isfunction(value) and value.__module__ == module.__name__
        if not (is_walker or is_function) or name.startswith("_"):
            continue
        level = access.get(name, "protected")
        schedule = getattr(value, "schedule_spec", None)
        if level == "private" and schedule is None:
            private.append(name)
            continue
        if is_walker and not getattr(value, "__jac_async__", False) and _has_async_ability(value):
            # `walker w { async can ... }` (examples/07_async.jac): jaclang's sync spawn
            # would drop the coroutine; the async spawn awaits it.
            value.__jac_async__ = True
        fields = walker_fields(value) if is_walker else function_fields(value)
        options = _restspec_options(value)
        endpoint = Endpoint(
            name=name,
            kind="walker" if is_walker else "function",
            target=value,
            fields=fields,
            access=level,
            is_async=bool(getattr(value, "__jac_async__", False))
            if is_walker
            else inspect.iscoroutinefunction(value),
            doc=_own_doc(value),
            has_uploads=any(f.annotation is UploadMarker for f in fields),
            **options,
        )
        if endpoint.kind == "function" and endpoint.protocol != "http":
            endpoint.protocol = "http"
        if schedule is not None:
            # Scheduled walkers and functions run from the scheduler, never over HTTP.
            endpoint.protocol, endpoint.schedule = "schedule", schedule
        endpoints[name] = endpoint
    return Program(path=path, module=module, endpoints=endpoints, private=private)


def load_program(app_path: str | Path) -> Program:
    """Compile and import a Jac program with jaclang; raise ProgramLoadError with diagnostics."""
    from jaclang import JacRuntime as Jac

    from jacscale_core.jaclang_patches import install_all

    path = Path(app_path).resolve()
    if not path.is_file():
        raise ProgramLoadError(f"{app_path}: no such file")
    if path.suffix != ".jac":
        raise ProgramLoadError(f"{app_path}: not a .jac file")
    install_all()
    base = str(path.parent)
    Jac.set_base_path(base)
    Jac.set_full_target_path(str(path))
    sys.modules.pop(path.stem, None)
    try:
        (module,) = Jac.jac_import(target=path.stem, base_path=base, lng="jac")
    except Exception as exc:  # noqa: BLE001 - turned into a readable load error below
        raise ProgramLoadError(_diagnostics(Jac, path, exc)) from exc
    if module is None:
        raise ProgramLoadError(_diagnostics(Jac, path, None))
    # The unitree is all `describe` reads: no code generation, so the JavaScript and
    # native (llvmlite, ~65 MB resident) back ends are never loaded to serve.
    compiled = Jac.get_program().compile(str(path), no_cgen=True)
    return describe(module, compiled, path)


def _diagnostics(jac: Any, path: Path, exc: BaseException | None) -> str:
    lines = []
    try:
        for err in jac.get_program().errors_had:
            lines.append(err.pretty_print())
    except Exception as inner:  # noqa: BLE001 - diagnostics are best effort; say so
        lines.append(f"(could not read jaclang diagnostics: {inner})")
    if not lines:
        lines.append(f"{path}: {type(exc).__name__}: {exc}" if exc else f"{path}: import failed")
    return "\n".join(lines)
