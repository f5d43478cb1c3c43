"""POST /traverse: read a piece of the caller's graph as nodes and edges.

Parameters (JSON body, all optional, as the reference document gives them):

- `source`: node or edge id to start from (hex or dashed UUID); the caller's root by default;
- `depth`: how many edges to follow from the source (default 1, 0 = the source alone);
- `detailed`: include each node's and edge's fields (default false: ids and types only);
- `node_types` / `edge_types`: follow only edges of these types into nodes of these types
  (archetype names; `Root` and `GenericEdge` are the built-in ones).

The walk follows outgoing edges (and undirected edges either way), breadth first,
the way `-->` does. The source is always in the answer; every other node and
edge is in it only if the caller may READ it (jaclang's own access check, so
shared nodes appear and private ones do not). A source the caller cannot read
answers 404, exactly like one that does not exist. Depth and result size are
bounded (`[plugins.scale.traverse] max_depth`, `max_results`): past them the
answer is a 422 naming the field, never a truncated graph.

Answer (the walker envelope): `data.result = {"nodes": [...], "edges": [...]}`,
each node `{"_jac_type", "_jac_id", "_jac_archetype", ...fields if detailed}`,
each edge the same plus `"source"` and `"target"` node ids.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from uuid import UUID

import msgspec
from jaclang import JacRuntime as Jac
from jaclang.jac0core.archetype import EdgeAnchor, NodeAnchor
from jaclang.jac0core.constructs import EdgeArchetype, NodeArchetype
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jacscale_core import codec
from jacscale_core.context import AppContext
from jacscale_core.errors import ApiError, unauthorized, validation_error
from jacscale_core.http_endpoints import authenticate, json_response, require_json
from jacscale_core.json_input import MAX_JSON_DEPTH, invalid_json, too_deep_error
from jacscale_core.middleware import request_id_of
from jacscale_core.plugins import hookimpl
from jacscale_core.schema import is_quarantined

SECTION = "plugins.scale.traverse"
PATH = "/traverse"
LOAD_CHUNK = 1000  # edge ids loaded per store round trip


class TraverseConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.traverse]`."""

    enabled: bool = True
    max_depth: int = 10
    max_results: int = 10_000


class TraverseRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The request body."""

    source: str | None = None
    depth: int = 1
    detailed: bool = False
    node_types: list[str] | None = None
    edge_types: list[str] | None = None


# --------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------

_AT = re.compile(r" - at `\$((?:\.\w+|\[\d+\])*)`$")
_UNKNOWN = re.compile(r"unknown field `([^`]*)`")


def _loc_of(message: str) -> tuple[list[str | int], str]:
    """Split msgspec's "... - at `$.a[0]`" into (["body", "a", 0], "...")."""
    loc: list[str | int] = ["body"]
    match = _AT.search(message)
    if match:
        message = message[: match.start()]
        for part in re.findall(r"\.(\w+)|\[(\d+)\]", match.group(1)):
            loc.append(part[0] if part[0] else int(part[1]))
    unknown = _UNKNOWN.search(message)
    if unknown:
        loc.append(unknown.group(1))
    return loc, message


def decode_request(body: bytes) -> TraverseRequest:
    """The body as a TraverseRequest, or a 422 naming the bad field."""
    if not body.strip():
        return TraverseRequest()
    try:
        return msgspec.json.decode(body, type=TraverseRequest)
    except msgspec.ValidationError as exc:
        loc, msg = _loc_of(str(exc))
        raise ApiError(
            "VALIDATION_ERROR",
            f"Invalid value for {'.'.join(str(p) for p in loc)}: {msg}",
            details=[{"loc": loc, "msg": msg, "type": "type_error"}],
        ) from None
    except msgspec.DecodeError as exc:
        raise invalid_json(exc) from None
    except RecursionError:
        raise too_deep_error(MAX_JSON_DEPTH) from None


def parse_id(raw: str) -> UUID:
    """A node or edge id (32 hex digits or a dashed UUID), else 422 naming `source`."""
    try:
        return UUID(raw)
    except ValueError:
        raise validation_error(["body", "source"], "Not a valid node or edge id") from None


def known_types(module: Any) -> tuple[set[str], set[str]]:
    """Node and edge archetype names the program can store (its own and imported ones)."""
    nodes, edges = {"Root"}, {"GenericEdge"}
    for name, value in vars(module).items():
        if isinstance(value, type) and not value.__module__.startswith("jaclang"):
            if issubclass(value, NodeArchetype):
                nodes.add(name)
            elif issubclass(value, EdgeArchetype):
                edges.add(name)
    return nodes, edges


def check_types(given: list[str] | None, known: set[str], field: str) -> frozenset[str] | None:
    """The filter as a set, or a 422 naming the unknown type names."""
    if given is None:
        return None
    unknown = sorted({t for t in given if t not in known})
    if unknown:
        kind = "node" if field == "node_types" else "edge"
        raise validation_error(
            ["body", field],
            f"Unknown {kind} type(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}",
        )
    return frozenset(given)


# --------------------------------------------------------------------------
# The walk (runs in a worker thread, inside the caller's jaclang context)
# --------------------------------------------------------------------------


def _type_name(anchor: Any) -> str:
    return type(anchor.archetype).__name__


def _render(anchor: NodeAnchor | EdgeAnchor, detailed: bool) -> dict[str, Any]:
    if detailed:
        out: dict[str, Any] = codec.to_jsonable(anchor.archetype)
    else:
        out = {
            "_jac_type": _type_name(anchor),
            "_jac_id": anchor.id.hex,
            "_jac_archetype": "node" if isinstance(anchor, NodeAnchor) else "archetype",
        }
    if isinstance(anchor, EdgeAnchor):
        out["source"] = anchor.source.id.hex
        out["target"] = anchor.target.id.hex
    return out


class Walk:
    """Breadth-first collection of readable nodes and edges from a source."""

    def __init__(
        self,
        request: TraverseRequest,
        node_types: frozenset[str] | None,
        edge_types: frozenset[str] | None,
        max_results: int,
    ) -> None:
        self.request = request
        self.node_types = node_types
        self.edge_types = edge_types
        self.max_results = max_results
        self.mem = Jac.get_context().mem
        self.nodes: dict[UUID, NodeAnchor] = {}
        self.edges: dict[UUID, EdgeAnchor] = {}

    def _readable(self, anchor: Any, kind: type) -> bool:
        # Quarantined records (their class is gone) are skipped, as by `[-->]`.
        if not isinstance(anchor, kind):
            return False
        found: Any = anchor
        return not is_quarantined(found.archetype) and bool(Jac.check_read_access(found))

    def _add_node(self, anchor: NodeAnchor) -> bool:
        if anchor.id in self.nodes:
            return False
        if len(self.nodes) >= self.max_results:
            raise _too_many("nodes", self.max_results)
        self.nodes[anchor.id] = anchor
        return True

    def _add_edge(self, anchor: EdgeAnchor) -> None:
        if anchor.id not in self.edges:
            if len(self.edges) >= self.max_results:
                raise _too_many("edges", self.max_results)
            self.edges[anchor.id] = anchor

    def start(self) -> list[NodeAnchor]:
        """Resolve the source; return the first frontier."""
        ctx = Jac.get_context()
        if self.request.source is None:
            root = ctx.user_root
            self._add_node(root)
            return [root]
        source_id = parse_id(self.request.source)
        anchor = self.mem.get(source_id)
        if self._readable(anchor, NodeAnchor):
            self._add_node(anchor)
            return [anchor]
        if self._readable(anchor, EdgeAnchor):
            # An edge source: the edge and its two ends; the walk goes on from its target.
            self._add_edge(anchor)
            ends = self.mem.batch_get([anchor.source.id, anchor.target.id])
            source, target = ends.get(anchor.source.id), ends.get(anchor.target.id)
            if self._readable(source, NodeAnchor):
                self._add_node(source)
            if self._readable(target, NodeAnchor):
                self._add_node(target)
                return [target]
            return []
        # The same answer for "missing" and "not yours": ids are not an oracle.
        raise ApiError("NOT_FOUND", f"Node or edge {source_id.hex} not found")

    def _edge_ids(self, frontier: Iterable[NodeAnchor]) -> list[UUID]:
        seen: set[UUID] = set()
        ids = []
        for node in frontier:
            for stub in node.edges:
                if stub.id not in seen and stub.id not in self.edges:
                    seen.add(stub.id)
                    ids.append(stub.id)
        return ids

    def _step(self, frontier: list[NodeAnchor]) -> list[NodeAnchor]:
        ids = self._edge_ids(frontier)
        in_frontier = {n.id for n in frontier}
        following: list[NodeAnchor] = []
        for i in range(0, len(ids), LOAD_CHUNK):
            loaded = self.mem.batch_get(ids[i : i + LOAD_CHUNK])
            hops: list[tuple[EdgeAnchor, UUID]] = []
            for edge in loaded.values():
                if not isinstance(edge, EdgeAnchor) or is_quarantined(edge.archetype):
                    continue
                if self.edge_types is not None and _type_name(edge) not in self.edge_types:
                    continue
                src, dst = edge.source.id, edge.target.id
                if src in in_frontier:
                    hops.append((edge, dst))
                if edge.is_undirected and dst in in_frontier:
                    hops.append((edge, src))
            ends = self.mem.batch_get(list({other for _, other in hops}))
            for edge, other_id in hops:
                other = ends.get(other_id)
                if not self._readable(other, NodeAnchor) or not Jac.check_read_access(edge):
                    continue
                if self.node_types is not None and _type_name(other) not in self.node_types:
                    continue
                self._add_edge(edge)
                if self._add_node(other):
                    following.append(other)
        return following

    def run(self) -> dict[str, list[dict[str, Any]]]:
        """Walk `depth` steps and render what was found."""
        frontier = self.start()
        steps = self.request.depth - (1 if self.edges else 0)
        for _ in range(max(steps, 0)):
            if not frontier:
                break
            frontier = self._step(frontier)
        detailed = self.request.detailed
        return {
            "nodes": [_render(n, detailed) for n in self.nodes.values()],
            "edges": [_render(e, detailed) for e in self.edges.values()],
        }


def _too_many(what: str, limit: int) -> ApiError:
    return ApiError(
        "VALIDATION_ERROR",
        f"The traversal reaches more than {limit} {what}; use a smaller depth, "
        "a source further down, or node_types/edge_types filters",
        details=[
            {"loc": ["body", "depth"], "msg": f"more than {limit} {what}", "type": "too_large"}
        ],
    )


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


def make_handler(app: AppContext) -> Any:
    """The Starlette endpoint for POST /traverse."""
    config: TraverseConfig = app.config_section(SECTION)
    node_names, edge_names = known_types(app.program.module)

    async def traverse(request: Request) -> Response:
        principal = await authenticate(request, app)
        if principal is None or principal.is_guest:
            raise unauthorized("/traverse requires authentication (Authorization: Bearer <token>)")
        require_json(request)
        body = decode_request(await request.body())
        if not 0 <= body.depth <= config.max_depth:
            raise validation_error(
                ["body", "depth"], f"Must be between 0 and {config.max_depth}", "range_error"
            )
        if body.source is not None:
            parse_id(body.source)
        node_types = check_types(body.node_types, node_names, "node_types")
        edge_types = check_types(body.edge_types, edge_names, "edge_types")

        def walk() -> dict[str, list[dict[str, Any]]]:
            return Walk(body, node_types, edge_types, config.max_results).run()

        result = await app.executor.call(principal, walk)
        return json_response(codec.ok_envelope(result, [], request_id_of(request.scope)))

    return traverse


@hookimpl
def jacscale_config_sections() -> dict[str, type]:
    """[plugins.scale.traverse]."""
    return {SECTION: TraverseConfig}


@hookimpl
def jacscale_routes(app: AppContext) -> list[Any]:
    """POST /traverse (unless `[plugins.scale.traverse] enabled = false`)."""
    config: TraverseConfig = app.config_section(SECTION)
    if not config.enabled:
        return []
    return [Route(PATH, make_handler(app), methods=["POST"], name="traverse")]


_ENTITY_FIELDS = ["_jac_type", "_jac_id", "_jac_archetype"]


def _entity_schema(*extra: str) -> dict[str, Any]:
    names = [*_ENTITY_FIELDS, *extra]
    return {
        "type": "object",
        "required": names,
        "properties": {name: {"type": "string"} for name in names},
        "additionalProperties": True,
    }


@hookimpl
def jacscale_openapi_paths(app: AppContext) -> dict[str, Any]:
    """The OpenAPI entry of POST /traverse."""
    config: TraverseConfig = app.config_section(SECTION)
    if not config.enabled:
        return {}
    body_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "source": {"type": "string", "description": "Node or edge id; default: your root"},
            "depth": {"type": "integer", "minimum": 0, "maximum": config.max_depth, "default": 1},
            "detailed": {"type": "boolean", "default": False},
            "node_types": {"type": "array", "items": {"type": "string"}},
            "edge_types": {"type": "array", "items": {"type": "string"}},
        },
    }
    result_schema = {
        "type": "object",
        "properties": {
            "nodes": {"type": "array", "items": _entity_schema()},
            "edges": {"type": "array", "items": _entity_schema("source", "target")},
        },
    }
    return {
        PATH: {
            "post": {
                "tags": ["Graph"],
                "summary": "Read your graph as nodes and edges",
                "operationId": "traverse",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": body_schema}},
                },
                "responses": {
                    "200": {
                        "description": "Envelope with data.result = {nodes, edges}",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "data": {
                                            "type": "object",
                                            "properties": {"result": result_schema},
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "401": {"description": "Not authenticated"},
                    "404": {"description": "Source not found or not readable"},
                    "422": {"description": "Bad parameter, or the result exceeds the bounds"},
                },
                "security": [{"bearerAuth": []}],
            }
        }
    }
