"""The graph explorer: GET /graph (a page), GET /graph/data (jac-scale's JSON shape).

The page (static/pages/graph.js, drawn with the vendored cytoscape.js) signs in,
reads the caller's graph through `POST /traverse` and spawns walkers through
`POST /walker/{name}/{node_id}`; it holds no server logic of its own.

`GET /graph/data` answers jac-scale 0.2.31's
`{"version": "1.0", "nodes": [{"id", "label"}], "edges": [{"from", "to", "label"?}]}`
for the caller's whole reachable graph (the guest graph without a token), with
the anchors' ids (stable, unlike jac-scale's per-request `id()` values) and
typed labels (`Person(name='a')`). It is bounded by `[plugins.scale.traverse]
max_results` (422 past it, never a silently cut graph).

`[plugins.scale.graph] enabled = false` removes both routes.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jacscale_core.context import AppContext
from jacscale_core.http_endpoints import authenticate, json_response
from jacscale_core.plugins import hookimpl
from jacscale_ext.pages import asset_response, page_response
from jacscale_ext.traverse import SECTION as TRAVERSE_SECTION
from jacscale_ext.traverse import TraverseConfig, TraverseRequest, Walk, known_types

SECTION = "plugins.scale.graph"
LABEL_CHARS = 80
ASSETS = frozenset({"cytoscape.min.js", "graph.js", "pages.js", "pages.css"})


class GraphConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.graph]`."""

    enabled: bool = True


def label_of(entity: dict[str, Any]) -> str:
    """`Type(field=value, ...)` from a detailed /traverse entity, at most LABEL_CHARS long."""
    kind = str(entity.get("_jac_type", "?"))
    if kind == "Root":
        return "root"
    fields = [
        f"{k}={v!r}"
        for k, v in entity.items()
        if not k.startswith("_jac_") and k not in ("source", "target")
    ]
    label = f"{kind}({', '.join(fields)})"
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def graph_data(found: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """jac-scale's /graph/data shape from a detailed traversal."""
    nodes = [{"id": n["_jac_id"], "label": label_of(n)} for n in found["nodes"]]
    edges = []
    for e in found["edges"]:
        edge = {"from": e["source"], "to": e["target"]}
        if e.get("_jac_type") != "GenericEdge":
            edge["label"] = label_of(e)
        edges.append(edge)
    return {"version": "1.0", "nodes": nodes, "edges": edges}


GRAPH_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - graph explorer</title>
<link rel="stylesheet" href="graph/static/pages.css">
</head>
<body data-node-types="{node_types}" data-edge-types="{edge_types}" data-max-depth="{max_depth}">
<header>
  <strong>{title}</strong> <span class="muted">graph explorer</span>
  <span id="who" class="muted"></span>
  <button id="signout" hidden>Sign out</button>
</header>
<section id="signin" class="card">
  <h2>Sign in</h2>
  <form id="signin-form">
    <label>Email or username <input id="identity" autocomplete="username" required></label>
    <label>Password <input id="password" type="password" autocomplete="current-password" required></label>
    <button type="submit" id="signin-button">Sign in</button>
  </form>
  <details><summary>or paste a token</summary>
    <form id="token-form"><input id="token" placeholder="eyJ..."><button type="submit">Use token</button></form>
  </details>
  <p id="signin-error" class="error" role="alert"></p>
</section>
<main id="explorer" hidden>
  <nav class="toolbar">
    <label>Depth <input id="depth" type="number" min="0" value="1"></label>
    <label>Node types <select id="node-types" multiple size="3"></select></label>
    <label>Edge types <select id="edge-types" multiple size="3"></select></label>
    <button id="reload">Reload from root</button>
    <button id="more" hidden>Draw more</button>
    <span id="status" class="muted" role="status"></span>
  </nav>
  <div class="split">
    <div id="cy" aria-label="graph"></div>
    <aside id="panel">
      <h3 id="node-title">Select a node</h3>
      <pre id="node-fields"></pre>
      <button id="expand" disabled>Expand neighbours</button>
      <h3>Spawn a walker here</h3>
      <select id="walker"></select>
      <form id="walker-form"></form>
      <button id="spawn" disabled>Spawn</button>
      <pre id="walker-result"></pre>
    </aside>
  </div>
</main>
<script src="graph/static/cytoscape.min.js"></script>
<script src="graph/static/pages.js"></script>
<script src="graph/static/graph.js"></script>
</body>
</html>
"""


@hookimpl
def jacscale_config_sections() -> dict[str, type]:
    """[plugins.scale.graph]."""
    return {SECTION: GraphConfig}


@hookimpl
def jacscale_routes(app: AppContext) -> list[Any]:
    """GET /graph, /graph/data and /graph/static/{name} (none when disabled)."""
    config: GraphConfig = app.config_section(SECTION)
    if not config.enabled:
        return []
    traverse: TraverseConfig = app.config_section(TRAVERSE_SECTION)
    node_names, edge_names = known_types(app.program.module)
    title = app.settings.app_path.stem

    async def page(request: Request) -> Response:
        return page_response(
            GRAPH_PAGE,
            title=title,
            node_types=json.dumps(sorted(node_names)),
            edge_types=json.dumps(sorted(edge_names)),
            max_depth=traverse.max_depth,
        )

    async def data(request: Request) -> Response:
        principal = await authenticate(request, app) or app.executor.guest_principal
        body = TraverseRequest(depth=1_000_000, detailed=True)

        def walk() -> dict[str, list[dict[str, Any]]]:
            return Walk(body, None, None, traverse.max_results).run()

        found = await app.executor.call(principal, walk)
        return json_response(graph_data(found), headers={"Cache-Control": "no-store"})

    async def static(request: Request) -> Response:
        return await asset_response(app, request, ASSETS)

    return [
        Route("/graph", page, methods=["GET"], name="graph_page"),
        Route("/graph/data", data, methods=["GET"], name="graph_data"),
        Route("/graph/static/{name}", static, methods=["GET"], name="graph_static"),
    ]


@hookimpl
def jacscale_openapi_paths(app: AppContext) -> dict[str, Any]:
    """GET /graph/data (the page and its assets are not API)."""
    config: GraphConfig = app.config_section(SECTION)
    if not config.enabled:
        return {}
    schema = {
        "type": "object",
        "required": ["version", "nodes", "edges"],
        "properties": {
            "version": {"type": "string"},
            "nodes": {"type": "array", "items": {
                "type": "object", "required": ["id", "label"],
                "properties": {"id": {"type": "string"}, "label": {"type": "string"}}}},
            "edges": {"type": "array", "items": {
                "type": "object", "required": ["from", "to"],
                "properties": {"from": {"type": "string"}, "to": {"type": "string"},
                               "label": {"type": "string"}}}},
        },
    }  # fmt: skip
    err = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    }
    return {
        "/graph/data": {
            "get": {
                "tags": ["Graph"],
                "summary": "Your whole graph as nodes and edges (jac-scale's shape, stable ids)",
                "operationId": "graph_data",
                "security": [{"bearerAuth": []}, {}],
                "responses": {
                    "200": {
                        "description": "The graph",
                        "content": {"application/json": {"schema": schema}},
                    },
                    "401": {"description": "Invalid token", **err},
                    "422": {
                        "description": "More nodes than [plugins.scale.traverse] max_results",
                        **err,
                    },
                },
            }  # fmt: skip
        }
    }
