"""HTTP routes for walkers and functions: the data path of a request, top to bottom.

authenticate -> check access -> read input -> decode -> execute -> encode.
"""

from __future__ import annotations

import inspect
import time
import typing
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from jacscale_core import codec, lax
from jacscale_core.context import AppContext
from jacscale_core.deadlines import cancel_on_disconnect
from jacscale_core.errors import ApiError, unauthorized, validation_error
from jacscale_core.event_stream import STREAM_PARAM, EventStreamResponse, wants_stream
from jacscale_core.json_input import MAX_JSON_DEPTH, decode_json
from jacscale_core.middleware import request_id_of
from jacscale_core.plugins import await_me_maybe
from jacscale_core.principal import Principal
from jacscale_core.program import Endpoint

JSON_TYPES = ("application/json",)
QUERY_METHODS = ("GET", "HEAD", "DELETE")


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response encoded with msgspec."""
    return Response(codec.encode(payload), status, headers=headers, media_type="application/json")


def capped_json_response(payload: Any, max_bytes: int) -> Response:
    """A JSON response, or 413 RESPONSE_TOO_LARGE naming the cap when it encodes larger."""
    body = codec.encode(payload)
    if len(body) > max_bytes:
        raise ApiError(
            "RESPONSE_TOO_LARGE",
            f"The response would be {len(body)} bytes, over the limit of {max_bytes} bytes "
            "([plugins.scale.api] max_response_bytes, JACSCALE_MAX_RESPONSE_BYTES)",
        )
    return Response(body, media_type="application/json")


def error_response(err: ApiError, request_id: str) -> Response:
    """The error envelope as a response."""
    return json_response(codec.error_envelope(err, request_id), err.status, err.headers or None)


PRINCIPAL_STATE_KEY = "principal"


async def authenticate(request: Any, app: AppContext) -> Principal | None:
    """The caller, from the `jacscale_authenticate` hook (None when anonymous).

    Every implementation is called and each answer awaited in pluggy's order; the
    first non-None wins (a `firstresult` hook would stop at the first coroutine, so
    an async authenticator resolving to None would hide the ones after it). The
    principal is kept in the request's scope state for the access log and metrics.
    """
    answers = iter(app.pm.hook.jacscale_authenticate(request=request, app=app))
    principal: Principal | None = None
    try:
        for answer in answers:
            principal = await await_me_maybe(answer)
            if principal is not None:
                break
    finally:
        for later in answers:  # the ones after the winner (or after an error)
            if inspect.iscoroutine(later):
                later.close()  # never started: nothing to undo
    if principal is not None:
        request.scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = principal
    return principal


async def principal_for(request: Any, app: AppContext, endpoint: Endpoint) -> Principal:
    """Who runs this endpoint: the authenticated user, or the guest for `:pub` ones."""
    principal = await authenticate(request, app)
    if endpoint.access == "public":
        return principal or app.executor.guest_principal
    if principal is None or principal.is_guest:
        raise unauthorized(f"{endpoint.name} requires authentication (Authorization: Bearer <token>)")
    return principal


def parse_node_id(raw: str) -> UUID:
    """A node id from a URL (32 hex digits or a dashed UUID), else 422 naming `node_id`."""
    try:
        return UUID(raw)
    except ValueError:
        raise validation_error(["path", "node_id"], "Not a valid node id") from None


def _is_list_type(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    return origin in (list, tuple, set, frozenset)


def _lax(endpoint: Endpoint, raw: dict[str, Any], loc: str) -> dict[str, Any]:
    """Convert string inputs (query, path, form fields) to the field types."""
    out: dict[str, Any] = {}
    details = []
    specs = {f.name: f for f in endpoint.fields}
    for key, value in raw.items():
        spec = specs.get(key)
        if spec is None or not isinstance(value, (str, list)) or spec.annotation is Any:
            out[key] = value
            continue
        try:
            out[key] = lax.convert(value, spec.annotation)
        except (msgspec.ValidationError, TypeError) as exc:
            details.append({"loc": [loc, key], "msg": str(exc), "type": "type_error"})
    if details:
        names = ", ".join(str(d["loc"][-1]) for d in details)
        raise ApiError("VALIDATION_ERROR", f"Invalid input: {names}", details=details)
    return out


async def read_input(
    request: Request, endpoint: Endpoint, max_depth: int = MAX_JSON_DEPTH
) -> dict[str, Any]:
    """The endpoint's raw fields: JSON body, query string or form, plus `{path}` params."""
    data: dict[str, Any]
    if request.method in QUERY_METHODS:
        query: dict[str, Any] = {}
        specs = {f.name: f for f in endpoint.fields}
        for key in request.query_params:
            spec = specs.get(key)
            if spec is None and key == STREAM_PARAM:
                continue  # `?stream=false`: asks for JSON, not a field
            values = request.query_params.getlist(key)
            query[key] = values if spec and _is_list_type(spec.annotation) else values[-1]
        data = _lax(endpoint, query, "query")
    else:
        data = await _read_body(request, endpoint, max_depth)
    params = {k: v for k, v in request.path_params.items() if k != "node_id"}
    if params:
        data.update(_lax(endpoint, params, "path"))
    return data


def require_json(request: Request) -> None:
    """415 naming the header unless the body is JSON (or the type is not given)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype and not (ctype in JSON_TYPES or ctype.endswith("+json")):
        raise ApiError(
            "UNSUPPORTED_MEDIA_TYPE",
            f"Content-Type must be application/json, got {ctype}",
            details=[{"loc": ["header", "content-type"], "msg": "Unsupported media type",
                      "type": "media_type"}],
        )  # fmt: skip


def decode_json_object(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """A JSON object from raw bytes ({} for an empty body); 422 naming `body` otherwise."""
    if not body.strip():
        return {}
    decoded = decode_json(body, max_depth)
    if not isinstance(decoded, dict):
        raise ApiError(
            "VALIDATION_ERROR",
            "Request body must be a JSON object",
            details=[{"loc": ["body"], "msg": "Expected an object", "type": "type_error"}],
        )
    return decoded


async def _read_body(request: Request, endpoint: Endpoint, max_depth: int) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data" or ctype == "application/x-www-form-urlencoded":
        form = await request.form()
        raw: dict[str, Any] = {}
        for key in form:
            values = form.getlist(key)
            raw[key] = values if len(values) > 1 else values[0]
        return _lax(endpoint, raw, "body")
    body = await request.body()
    if not body.strip():
        return {}
    require_json(request)
    return decode_json_object(body, max_depth)


def drop_undeclared(app: AppContext, endpoint: Endpoint, raw: dict[str, Any]) -> list[str]:
    """Remove and return the inputs `endpoint` does not declare, as jac-scale ignores them.

    With `[plugins.scale.api] strict_fields = true` nothing is removed, so they
    reach `Endpoint.decode` and are refused with a 422 naming each one.
    """
    if app.settings.api.strict_fields:
        return []
    ignored = endpoint.undeclared(raw)
    for key in ignored:
        del raw[key]
    return ignored


def make_handler(app: AppContext, endpoint: Endpoint, with_node: bool) -> Any:
    """The Starlette endpoint function serving one walker or function."""

    async def handle(request: Request) -> Response:
        request_id = request_id_of(request.scope)
        principal = await principal_for(request, app, endpoint)
        node_id = parse_node_id(request.path_params["node_id"]) if with_node else None
        raw = await read_input(request, endpoint, app.settings.api.max_json_depth)
        ignored = drop_undeclared(app, endpoint, raw)
        args = endpoint.decode(raw, "query" if request.method in QUERY_METHODS else "body")
        started = time.perf_counter()
        success = False
        try:
            # A client that goes away cancels its walker (and its writes).
            run = await cancel_on_disconnect(
                request.receive,
                app.executor.run(endpoint, args, principal, node_id, stream=wants_stream(request)),
            )
            success = True
        finally:
            app.pm.hook.jacscale_walker_finished(
                app=app,
                endpoint=endpoint,
                principal=principal,
                duration=time.perf_counter() - started,
                success=success,
            )
        if run.stream is not None:
            api = app.settings.api
            return EventStreamResponse(run.stream, api.stream_idle_seconds, api.stream_total_seconds)
        envelope = endpoint.envelope if endpoint.envelope is not None else app.settings.api.envelope
        cap = app.settings.api.max_response_bytes
        if not envelope:
            return capped_json_response(codec.to_jsonable(run.reports), cap)
        body = codec.ok_envelope(
            run.result, run.reports, request_id, warnings=run.warnings, ignored_fields=ignored
        )
        return capped_json_response(body, cap)

    handle.__name__ = f"{endpoint.kind}_{endpoint.name}"
    return handle


class EndpointApp:
    """The ASGI app of one walker/function route: its handler, with its ApiErrors answered here.

    A plain ASGI app rather than a Starlette endpoint function: Starlette would wrap
    every call in its exception-handling layer (a `send` wrapper and a handler
    lookup) only to answer the ApiErrors answered here directly. Anything else
    reaches the kernel layer, which answers it with the error envelope.
    """

    def __init__(self, handle: Callable[[Request], Awaitable[Response]]) -> None:
        self.handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request."""
        try:
            response = await self.handle(Request(scope, receive, send))
        except ApiError as err:
            response = error_response(err, request_id_of(scope))
        await response(scope, receive, send)


def endpoint_routes(app: AppContext) -> list[Route]:
    """One route per HTTP walker/function, plus `/{node_id}` variants for walkers."""
    routes: list[Route] = []
    for endpoint in app.program.endpoints.values():
        if endpoint.protocol != "http":
            continue
        methods = [endpoint.method]
        path = endpoint.route_path
        for route_path, with_node in ((path, False), (path.rstrip("/") + "/{node_id}", True)):
            if with_node and endpoint.kind != "walker":
                continue
            handle = make_handler(app, endpoint, with_node)
            routes.append(
                Route(route_path, EndpointApp(handle), methods=methods, name=handle.__name__)
            )
    return routes
