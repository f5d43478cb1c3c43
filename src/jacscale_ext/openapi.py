"""The app's OpenAPI 3.1 document, built from its program and its plugins.

The document is generated once per app, on first use, from the program's HTTP
endpoints (typed from `has` fields and function signatures) plus what plugins
contribute through `jacscale_openapi_paths`, and cached in `app.state` with its
encoded bytes and ETag. `jacscale_ext.docs` serves it at GET /openapi.json.
"""

from __future__ import annotations

import builtins
import copy
import enum
import hashlib
import logging
import math
import re
import typing
from typing import Any

import msgspec

from jacscale_core import codec
from jacscale_core.context import AppContext
from jacscale_core.errors import STATUS_BY_CODE
from jacscale_core.program import MISSING, Endpoint, FieldSpec, UploadMarker
from jacscale_core.streaming import streams

log = logging.getLogger("jacscale.docs")

OPENAPI_VERSION = "3.1.0"
SCHEMAS = "#/components/schemas/"
RESPONSES = "#/components/responses/"
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
NODE_ID_PATTERN = r"^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
QUERY_METHODS = ("GET", "HEAD", "DELETE")  # the kernel reads these from the query string
_STATE_SPEC = "docs.openapi"
_STATE_BYTES = "docs.openapi_bytes"

# --------------------------------------------------------------------------
# Shared components: the envelope, errors, security
# --------------------------------------------------------------------------

_STRING = {"type": "string"}
_META = {
    "type": "object",
    "required": ["extra", "request_id"],
    "properties": {
        "extra": {
            "type": "object",
            "properties": {"http_status": {"type": "integer"}},
        },
        "request_id": {"type": "string", "description": "Also sent as the X-Request-ID header"},
        "ignored_fields": {
            "type": "array",
            "items": _STRING,
            "description": "Input fields the walker or function does not declare, ignored",
        },
    },
}

COMPONENT_SCHEMAS: dict[str, Any] = {
    "Envelope": {
        "type": "object",
        "description": "Success envelope of every walker and function call.",
        "required": ["ok", "type", "data", "error", "meta"],
        "properties": {
            "ok": {"const": True},
            "type": {"const": "response"},
            "data": {
                "type": "object",
                "required": ["result", "reports"],
                "properties": {
                    "result": {
                        "description": "The walker after its run (its `has` fields), "
                        "or the function's return value."
                    },
                    "reports": {
                        "type": "array",
                        "items": {},
                        "description": "Every `report` value, in order.",
                    },
                    "warnings": {
                        "type": "array",
                        "items": {"$ref": SCHEMAS + "AccessWarning"},
                        "description": "Writes the access rules refused (nothing was saved for them).",
                    },
                },
            },
            "error": {"type": "null"},
            "meta": {"$ref": SCHEMAS + "Meta"},
        },
    },
    "ErrorEnvelope": {
        "type": "object",
        "description": "Error envelope: every 4xx and 5xx answer.",
        "required": ["ok", "type", "data", "error", "meta"],
        "properties": {
            "ok": {"const": False},
            "type": {"const": "error"},
            "data": {"type": "null"},
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": list(STATUS_BY_CODE)},
                    "message": _STRING,
                    "details": {"type": "array", "items": {"$ref": SCHEMAS + "ErrorDetail"}},
                },
            },
            "meta": {"$ref": SCHEMAS + "Meta"},
        },
    },
    "ErrorDetail": {
        "type": "object",
        "description": 'One bad input: where (`loc`, e.g. ["body", "limit"]), what and why.',
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
            "msg": _STRING,
            "type": _STRING,
        },
    },
    "AccessWarning": {
        "type": "object",
        "required": ["operation", "target_id", "target_type", "message"],
        "properties": {
            "operation": _STRING,
            "target_id": _STRING,
            "target_type": _STRING,
            "required": {"type": ["string", "null"]},
            "actual": {"type": ["string", "null"]},
            "message": _STRING,
        },
    },
    "Meta": _META,
}


def _error_response(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": SCHEMAS + "ErrorEnvelope"}}},
    }
    if headers:
        out["headers"] = headers
    return out


COMPONENT_RESPONSES: dict[str, Any] = {
    "Unauthorized": _error_response(
        "UNAUTHORIZED: no token, or an invalid or expired one",
        {"WWW-Authenticate": {"schema": _STRING, "description": "Bearer"}},
    ),
    "Forbidden": _error_response("FORBIDDEN: the access rules refuse this operation"),
    "NodeNotFound": _error_response("NOT_FOUND: no such node, or not one you may read"),
    "Conflict": _error_response("CONFLICT: concurrent writes kept conflicting; retry"),
    "PayloadTooLarge": _error_response("PAYLOAD_TOO_LARGE: the body is over the size limit"),
    "UnsupportedMediaType": _error_response("UNSUPPORTED_MEDIA_TYPE: send application/json"),
    "ValidationError": _error_response(
        "VALIDATION_ERROR: `error.details` names every missing, unknown or mistyped field"
    ),
    "ExecutionError": _error_response(
        "EXECUTION_ERROR: the walker or function raised (message only, never a traceback)"
    ),
}

SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "`Authorization: Bearer <token>` with the token from POST /user/login "
        "(or an API key where the server accepts one).",
    }
}

TAGS = {
    "walkers": "Every walker of the program: POST (or its @restspec method) runs it on your root; "
    "the `/{node_id}` variant runs it on one of your nodes.",
    "functions": "Module functions of the program.",
}

# --------------------------------------------------------------------------
# Field schemas
# --------------------------------------------------------------------------

_UPLOAD_SCHEMA = {"type": "string", "format": "binary"}
_SAFE_BUILTINS = frozenset(
    {"list", "dict", "set", "tuple", "frozenset", "str", "int", "float", "bool"}
)
_OUR_NAMES = frozenset(COMPONENT_SCHEMAS)


def _is_upload(spec: FieldSpec) -> bool:
    return spec.annotation is UploadMarker


class _SchemaBook:
    """JSON Schemas for every annotation the program uses, from one msgspec pass.

    One pass keeps component names consistent (two classes called `Item` in
    different modules get distinct names). Program types that would clash with
    the envelope's component names are prefixed with `app.`.
    """

    def __init__(self, annotations: list[Any]) -> None:
        unique: list[Any] = []
        for annotation in annotations:
            if not any(a is annotation or a == annotation for a in unique):
                unique.append(annotation)
        usable = [a for a in unique if self._schemable(a)]
        schemas, components = msgspec.json.schema_components(
            usable, ref_template=SCHEMAS + "{name}"
        )
        if _OUR_NAMES & set(components):
            prefixed = SCHEMAS + "app.{name}"
            schemas, components = msgspec.json.schema_components(usable, ref_template=prefixed)
            components = {f"app.{k}": v for k, v in components.items()}
        self.components: dict[str, Any] = dict(components)
        self._by_annotation = list(zip(usable, schemas, strict=True))

    @staticmethod
    def _schemable(annotation: Any) -> bool:
        if annotation is UploadMarker:
            return False
        try:
            msgspec.json.schema(annotation)
        except (TypeError, ValueError):
            return False
        return True

    def schema(self, annotation: Any) -> dict[str, Any]:
        """The schema of `annotation` (a fresh copy; `{}` for anything msgspec cannot describe)."""
        if annotation is UploadMarker:
            return dict(_UPLOAD_SCHEMA)
        for known, schema in self._by_annotation:
            if known is annotation or known == annotation:
                return copy.deepcopy(schema)
        return {}


def _json_default(spec: FieldSpec) -> tuple[bool, Any]:
    """(True, value) when the field's default is known without running user code and is JSON."""
    if spec.default is not MISSING:
        value = spec.default
    elif spec.default_factory is not None and _is_literal_factory(spec.default_factory):
        try:
            value = spec.default_factory()
        except Exception as exc:  # noqa: BLE001 - a default we cannot show is left out, logged
            log.debug("default of %s not shown: %s", spec.name, exc)
            return False, None
    else:
        return False, None
    try:
        plain = msgspec.to_builtins(value, str_keys=True)
    except (TypeError, ValueError):
        return False, None
    if not _finite(plain):
        return False, None
    return True, plain


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def _is_literal_factory(factory: Any) -> bool:
    """True when a default factory (Jac compiles `= []`, `= Color.RED` to lambdas) only builds
    a literal: constants, plain containers and enum members. Anything else (a call to a
    user function, `uuid4()`, `time.time()`) is never run to document it."""
    code = getattr(factory, "__code__", None)
    if code is None or any(isinstance(c, type(code)) for c in code.co_consts):
        return False
    module_globals = getattr(factory, "__globals__", {})
    for name in code.co_names:
        if name in module_globals:
            value = module_globals[name]
            if not (isinstance(value, type) and issubclass(value, enum.Enum)):
                return False
        elif hasattr(builtins, name) and name not in _SAFE_BUILTINS:
            return False
    return True


def field_schema(book: _SchemaBook, spec: FieldSpec) -> dict[str, Any]:
    """The schema of one input field, with its default when it can be shown."""
    schema = book.schema(spec.annotation)
    if not spec.required:
        known, value = _json_default(spec)
        if known:
            schema["default"] = value
    return schema


def object_schema(
    book: _SchemaBook, fields: list[FieldSpec], closed: bool = True
) -> dict[str, Any]:
    """An object schema for a request body built from `fields`; `closed` refuses others.

    Undeclared fields are ignored unless `[plugins.scale.api] strict_fields` is on,
    so walker and function bodies are closed only then.
    """
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: field_schema(book, f) for f in fields},
    }
    if closed:
        schema["additionalProperties"] = False
    required = [f.name for f in fields if f.required]
    if required:
        schema["required"] = required
    return schema


def _has_ref(schema: Any) -> bool:
    if isinstance(schema, dict):
        return "$ref" in schema or any(_has_ref(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_ref(v) for v in schema)
    return False


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema for output values: types whose rendering differs from their input ($ref) -> {}."""
    return {} if _has_ref(schema) else schema


# --------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------


def _openapi_path(path: str) -> str:
    """`/items/{id:int}` (Starlette convertor) -> `/items/{id}`."""
    return re.sub(r"\{(\w+)(?::\w+)?\}", r"{\1}", path)


def _result_schema(book: _SchemaBook, endpoint: Endpoint) -> dict[str, Any]:
    if endpoint.kind == "walker":
        props: dict[str, Any] = {
            "_jac_type": {"const": endpoint.name},
            "_jac_id": {"type": "string"},
            "_jac_archetype": {"const": "walker"},
        }
        for spec in endpoint.fields:
            props[spec.name] = {} if _is_upload(spec) else _plain(book.schema(spec.annotation))
        props["reports"] = {"type": "array", "items": {}}
        return {"type": "object", "properties": props}
    returns = _return_annotation(endpoint)
    if returns is None or returns is type(None):
        return {"type": "null"}
    return _plain(book.schema(returns))


def _return_annotation(endpoint: Endpoint) -> Any:
    """A function's return type when its JSON rendering is what msgspec describes, else Any.

    Types with their own component (objects, nodes, enums) render differently in a
    result (`_jac_type` ...), so they are left undescribed rather than wrongly described.
    """
    try:
        returns = typing.get_type_hints(endpoint.target).get("return", Any)
    except Exception:  # noqa: BLE001 - unresolvable annotation: the result is undescribed
        return Any
    if returns is None or returns is type(None):
        return None
    try:
        schema = msgspec.json.schema(returns)
    except (TypeError, ValueError):
        return Any
    return Any if _has_ref(schema) else returns


def _ok_response(book: _SchemaBook, endpoint: Endpoint, envelope: bool) -> dict[str, Any]:
    response = _json_ok_response(book, endpoint, envelope)
    if endpoint.kind == "function" and streams(endpoint.target):
        _add_event_stream(response)
    return response


def _json_ok_response(book: _SchemaBook, endpoint: Endpoint, envelope: bool) -> dict[str, Any]:
    if not envelope:
        schema: dict[str, Any] = {
            "type": "array",
            "items": {},
            "description": "The reports, without the envelope (envelope=false).",
        }
        return {
            "description": "The walker's reports",
            "content": {"application/json": {"schema": schema}},
        }
    result = _result_schema(book, endpoint)
    schema = {"$ref": SCHEMAS + "Envelope"}
    if result:
        schema = {
            "allOf": [
                schema,
                {
                    "type": "object",
                    "properties": {"data": {"type": "object", "properties": {"result": result}}},
                },
            ]
        }
    return {"description": "Ran; `data.result` and `data.reports` hold the outcome",
            "content": {"application/json": {"schema": schema}}}  # fmt: skip


def _add_event_stream(response: dict[str, Any]) -> None:
    """Mark a generator endpoint: it answers Server-Sent Events unless JSON is asked for."""
    response["description"] = (
        "A stream of Server-Sent Events: one `data: <json>` frame per item, then "
        "`event: end` (or `event: error` with `error_type` and `message`). With "
        "`Accept: application/json` or `?stream=false`, the envelope with the items "
        "in `data.result` instead."
    )
    response["content"] = {
        "text/event-stream": {"schema": {"type": "string", "description": "SSE frames"}},
        **response["content"],
    }


def _doc(endpoint: Endpoint) -> str:
    """The endpoint's docstring, minus the `name(field: 'type', ...)` line that
    dataclasses put on classes that have none."""
    doc = endpoint.doc.strip()
    if (
        endpoint.kind == "walker"
        and "\n" not in doc
        and re.fullmatch(rf"{re.escape(endpoint.name)}\(.*\)", doc)
    ):
        return ""
    return doc


def _summary(endpoint: Endpoint) -> tuple[str, str]:
    doc = _doc(endpoint)
    if doc:
        first = doc.splitlines()[0].strip()
        return first, doc if doc != first else ""
    noun = "Run walker" if endpoint.kind == "walker" else "Call function"
    return f"{noun} {endpoint.name}", ""


def endpoint_operation(
    book: _SchemaBook, app: AppContext, endpoint: Endpoint, path: str, on_node: bool
) -> dict[str, Any]:
    """The OpenAPI operation for one walker or function route."""
    summary, description = _summary(endpoint)
    if on_node:
        summary = f"{summary} (on a node)"
        description = (description + "\n\n" if description else "") + (
            "Runs the walker on the node `node_id` instead of your root: a node of your "
            "graph or one shared with you."
        )
    op: dict[str, Any] = {
        "tags": [f"{endpoint.kind}s"],
        "summary": summary,
        "operationId": f"{endpoint.kind}_{endpoint.name}" + ("_on_node" if on_node else ""),
    }
    if description:
        op["description"] = description
    in_path = set(re.findall(r"\{(\w+)\}", path))
    specs = {f.name: f for f in endpoint.fields}
    parameters: list[dict[str, Any]] = []
    for name in re.findall(r"\{(\w+)\}", path):
        if name == "node_id" and on_node:
            parameters.append({
                "name": "node_id", "in": "path", "required": True,
                "description": "Id of the node to run on (`_jac_id`: 32 hex digits)",
                "schema": {"type": "string", "pattern": NODE_ID_PATTERN},
            })  # fmt: skip
            continue
        spec = specs.get(name)
        schema = book.schema(spec.annotation) if spec else dict(_STRING)
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    rest = [f for f in endpoint.fields if f.name not in in_path]
    responses: dict[str, Any] = {}
    if endpoint.method.upper() in QUERY_METHODS:
        for spec in rest:
            param: dict[str, Any] = {
                "name": spec.name,
                "in": "query",
                "required": spec.required,
                "schema": field_schema(book, spec),
            }
            parameters.append(param)
    elif rest:
        schema = object_schema(book, rest, closed=app.settings.api.strict_fields)
        media = "multipart/form-data" if endpoint.has_uploads else "application/json"
        op["requestBody"] = {
            "required": any(f.required for f in rest),
            "content": {media: {"schema": schema}},
        }
    if parameters:
        op["parameters"] = parameters
    envelope = endpoint.envelope if endpoint.envelope is not None else app.settings.api.envelope
    responses["200"] = _ok_response(book, endpoint, envelope)
    if endpoint.access != "public":
        responses["401"] = {"$ref": RESPONSES + "Unauthorized"}
    responses["403"] = {"$ref": RESPONSES + "Forbidden"}
    if on_node:
        responses["404"] = {"$ref": RESPONSES + "NodeNotFound"}
    responses["409"] = {"$ref": RESPONSES + "Conflict"}
    if "requestBody" in op:
        responses["413"] = {"$ref": RESPONSES + "PayloadTooLarge"}
        if not endpoint.has_uploads:
            responses["415"] = {"$ref": RESPONSES + "UnsupportedMediaType"}
    responses["422"] = {"$ref": RESPONSES + "ValidationError"}
    responses["500"] = {"$ref": RESPONSES + "ExecutionError"}
    op["responses"] = responses
    op["security"] = [] if endpoint.access == "public" else BEARER
    return op


def endpoint_paths(app: AppContext) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Path items for every HTTP walker and function, and the schemas they reference."""
    endpoints = [e for e in app.program.endpoints.values() if e.protocol == "http"]
    annotations: list[Any] = []
    for endpoint in endpoints:
        annotations.extend(f.annotation for f in endpoint.fields)
        if endpoint.kind == "function":
            annotations.append(_return_annotation(endpoint))
    book = _SchemaBook(annotations)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        method = endpoint.method.lower()
        base = _openapi_path(endpoint.route_path)
        variants = [(base, False)]
        if endpoint.kind == "walker":
            variants.append((base.rstrip("/") + "/{node_id}", True))
        for path, on_node in variants:
            paths.setdefault(path, {})[method] = endpoint_operation(
                book, app, endpoint, path, on_node
            )
    return paths, book.components


# --------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------


def _check_contribution(contribution: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(contribution, dict):
        raise TypeError(
            f"jacscale_openapi_paths must return {{path: {{method: operation}}}}, "
            f"got {type(contribution).__name__}"
        )
    for path, item in contribution.items():
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"jacscale_openapi_paths: path {path!r} must start with '/'")
        if not isinstance(item, dict):
            raise TypeError(f"jacscale_openapi_paths: {path} must map methods to operations")
        for method, operation in item.items():
            if method in HTTP_METHODS and not isinstance(operation, dict):
                raise TypeError(f"jacscale_openapi_paths: {method.upper()} {path} is not an object")
    return contribution


def _unique_operation_ids(paths: dict[str, dict[str, Any]]) -> None:
    seen: set[str] = set()
    for item in paths.values():
        for method in HTTP_METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            base = str(op.get("operationId") or "")
            if not base:
                continue
            candidate, n = base, 2
            while candidate in seen:
                candidate, n = f"{base}_{n}", n + 1
            op["operationId"] = candidate
            seen.add(candidate)


def api_info(app: AppContext) -> dict[str, Any]:
    """The document's `info`: title, version and description from jac.toml or the program."""
    project = app.settings.toml.get("project")
    project = project if isinstance(project, dict) else {}
    title = str(project.get("name") or app.settings.app_path.stem)
    version = str(project.get("version") or "0.1.0")
    info: dict[str, Any] = {"title": title, "version": version}
    doc = (app.program.module.__doc__ or "").strip()
    description = str(project.get("description") or doc)
    if description:
        info["description"] = description
    return info


def _tags(item: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for method in HTTP_METHODS:
        op = item.get(method)
        if isinstance(op, dict):
            out.extend(str(t) for t in op.get("tags", []))
    return out


def build_openapi(app: AppContext) -> dict[str, Any]:
    """Generate the OpenAPI 3.1 document for `app` (uncached; see `openapi_spec`)."""
    paths, program_schemas = endpoint_paths(app)
    # Routes match in the order create_app adds them: plugin routes (in hook order)
    # before walker routes. The document describes the route that actually answers.
    from_plugins: set[tuple[str, str]] = set()
    for contribution in app.pm.hook.jacscale_openapi_paths(app=app):
        if contribution is None:
            continue
        for path, item in _check_contribution(contribution).items():
            target = paths.setdefault(path, {})
            for method, operation in copy.deepcopy(item).items():
                if (path, method) in from_plugins:
                    log.warning("openapi: %s %s documented by two plugins; keeping the first",
                                method.upper(), path)  # fmt: skip
                    continue
                if method in target:
                    log.warning("openapi: a plugin route %s %s shadows a walker or function",
                                method.upper(), path)  # fmt: skip
                target[method] = operation
                from_plugins.add((path, method))
    _unique_operation_ids(paths)
    used_tags: list[str] = [t for t in TAGS if any(t in _tags(item) for item in paths.values())]
    for item in paths.values():
        for tag in _tags(item):
            if tag not in used_tags:
                used_tags.append(tag)
    tags = [{"name": t, "description": TAGS[t]} if t in TAGS else {"name": t} for t in used_tags]
    return {
        "openapi": OPENAPI_VERSION,
        "info": api_info(app),
        "tags": tags,
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {**COMPONENT_SCHEMAS, **program_schemas},
            "responses": copy.deepcopy(COMPONENT_RESPONSES),
            "securitySchemes": copy.deepcopy(SECURITY_SCHEMES),
        },
    }


def openapi_spec(app: AppContext) -> dict[str, Any]:
    """The app's OpenAPI document, built on first use and cached in `app.state`."""
    spec = app.state.get(_STATE_SPEC)
    if spec is None:
        spec = build_openapi(app)
        app.state[_STATE_SPEC] = spec
    return typing.cast(dict[str, Any], spec)


def openapi_bytes(app: AppContext, root_path: str = "") -> tuple[bytes, str]:
    """The encoded document and its ETag; under a mount prefix `servers` names the prefix."""
    cache: dict[str, tuple[bytes, str]] = app.state.setdefault(_STATE_BYTES, {})
    found = cache.get(root_path)
    if found is None:
        spec = openapi_spec(app)
        if root_path:
            spec = {**spec, "servers": [{"url": root_path}]}
        body = codec.encode(spec)
        found = body, '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        if len(cache) < 16:  # root paths come from the server config, not from clients
            cache[root_path] = found
    return found
