"""GET /openapi.json: a valid OpenAPI 3.1 document typed from the program, plus plugin paths."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from jacscale_core.context import AppContext
from jacscale_core.plugins import hookimpl
from jacscale_core.testing import TestApp
from jacscale_ext.openapi import NODE_ID_PATTERN, endpoint_paths

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.jac") if p.is_file()) + [
    ROOT / "examples" / "todo" / "app.jac"
]
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]

TYPED_APP = '''
import from enum { Enum }
import from uuid { uuid4 }
import from http { HTTPMethod, UploadFile }

enum Color { RED = "red", GREEN = "green" }

obj Point { has x: int = 0; }

"""Search your notes.

Matches titles and bodies."""
walker search {
    has query: str;
    has limit: int = 10;
    has ratio: float | None = None;
    has tags: list[str] = ["a"];
    has anything: any = 3;
    has color: Color = Color.GREEN;
    has where: Point = Point();
    has meta: dict[str, int] = {};
    has stamp: str = uuid4().hex;

    can run with Root entry { report self.query; }
}

walker :pub open_walker {
    can run with Root entry { report 1; }
}

@restspec(method=HTTPMethod.GET, path="/items/{item_id}")
walker :pub get_item {
    has item_id: int;
    has verbose: bool = False;
    has names: list[str] = [];

    can run with Root entry { report self.item_id; }
}

walker :pub upload {
    has file: UploadFile;
    has folder: str = "docs";

    can run with Root entry { report self.folder; }
}

@restspec(envelope=False)
walker :pub bare {
    can run with Root entry { report 1; }
}

"""Add two numbers."""
def :pub add(a: int, b: int = 2) -> int {
    return a + b;
}

def greet(name: str, excited: bool = False) -> str {
    return name;
}

def :priv hidden() -> int { return 1; }

def :pub make_point() -> Point { return Point(); }

def :pub nothing() -> None { }

@restspec(protocol=APIProtocol.WEBHOOK)
walker hooked {
    has amount: float;
    can run with Root entry { report self.amount; }
}

@restspec(protocol=APIProtocol.WEBSOCKET)
async walker :pub socketed {
    has message: str;
    async can run with Root entry { report self.message; }
}
'''


class ExtraPaths:
    """A plugin documenting (and, with `serve`, answering) its own routes; counts the calls."""

    def __init__(self, paths: Any, serve: bool = False) -> None:
        self.paths = paths
        self.serve = serve
        self.calls = 0

    @hookimpl
    def jacscale_openapi_paths(self, app: AppContext) -> Any:
        self.calls += 1
        return self.paths

    @hookimpl
    def jacscale_routes(self, app: AppContext) -> list[Any]:
        if not self.serve:
            return []
        routes = []
        for path, item in self.paths.items():
            summary = next(iter(item.values()))["summary"]

            async def answer(request: Request, summary: str = summary) -> Response:
                return JSONResponse({"summary": summary})

            routes.append(Route(path, answer, methods=[m.upper() for m in item]))
        return routes


def plugin_op(summary: str, operation_id: str = "") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {"200": {"description": "ok"}}}
    if operation_id:
        op["operationId"] = operation_id
    return op


EXTRA = {
    "/extra/thing": {
        "get": {
            "tags": ["Extras"],
            "summary": "A plugin route",
            "operationId": "walker_search",  # clashes with the walker's: must be renamed
            "responses": {"200": {"description": "ok"}},
            "security": BEARER,
        }
    }
}


@pytest.fixture(scope="module")
def typed_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("typed")
    path = folder / "typed_api.jac"
    path.write_text(TYPED_APP)
    return path


@pytest.fixture(scope="module")
def extra() -> ExtraPaths:
    return ExtraPaths(EXTRA)


@pytest.fixture(scope="module")
def client(
    typed_app: Path, extra: ExtraPaths, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    with TestApp(typed_app, tmp_path_factory.mktemp("data"), plugins=[extra]) as c:
        yield c


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    r = client.get("/openapi.json")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return dict(r.json())


def body_schema(op: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return dict(op["requestBody"]["content"][media]["schema"])


def all_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from all_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_refs(value)


def resolve(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = spec
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield path, method, op


# ---------------------------------------------------------------------------
# Every shipped example produces a valid document
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("app_path", EXAMPLES, ids=lambda p: p.parent.name + "/" + p.name)
def test_every_example_gives_a_valid_openapi_31_document(app_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "app" / app_path.name  # a copy: store("./uploads") creates folders
    copy.parent.mkdir()
    shutil.copy(app_path, copy)
    with TestApp(copy, tmp_path / "data") as c:
        r = c.get("/openapi.json")
        ctx = c.app.state.jacscale  # type: ignore[attr-defined]
        assert r.status_code == 200, r.text
        spec = r.json()
        own, _ = endpoint_paths(ctx)
        if app_path.name == "app.jac":
            validate(spec)  # the whole document, plugin paths included
        else:
            # Plugin paths are the same in every app (validated whole for todo/app.jac):
            # check each example's own part (validation costs ~50 ms per path).
            validate({**spec, "paths": {p: i for p, i in spec["paths"].items() if p in own}})
        assert spec["openapi"] == "3.1.0"
        assert spec["info"]["title"] == app_path.stem
        assert "servers" not in spec
        for endpoint in ctx.program.endpoints.values():
            if endpoint.protocol != "http":
                continue
            method = endpoint.method.lower()
            assert method in spec["paths"][endpoint.route_path], endpoint.name
            if endpoint.kind == "walker":
                assert method in spec["paths"][endpoint.route_path + "/{node_id}"]
        for ref in set(all_refs(spec)):
            resolve(spec, ref)


def test_the_typed_program_validates_and_every_ref_resolves(spec: dict[str, Any]) -> None:
    validate(spec)
    refs = set(all_refs(spec))
    assert "#/components/schemas/Envelope" in refs
    assert "#/components/responses/ValidationError" in refs
    for ref in refs:
        resolve(spec, ref)


# ---------------------------------------------------------------------------
# Request schemas from `has` fields and signatures
# ---------------------------------------------------------------------------


def test_walker_body_is_typed_from_has_fields_with_defaults(spec: dict[str, Any]) -> None:
    schema = body_schema(spec["paths"]["/walker/search"]["post"])
    props = schema["properties"]
    assert schema["type"] == "object"
    assert "additionalProperties" not in schema  # undeclared fields are ignored
    assert schema["required"] == ["query"]
    assert props["query"] == {"type": "string"}
    assert props["limit"] == {"type": "integer", "default": 10}
    assert props["ratio"] == {"anyOf": [{"type": "number"}, {"type": "null"}], "default": None}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}, "default": ["a"]}
    assert props["anything"] == {"default": 3}  # `any`: no type constraint
    assert props["meta"] == {
        "type": "object",
        "additionalProperties": {"type": "integer"},
        "default": {},
    }
    assert props["color"] == {"$ref": "#/components/schemas/Color", "default": "green"}
    assert set(spec["components"]["schemas"]["Color"]["enum"]) == {"red", "green"}
    assert props["where"]["$ref"] == "#/components/schemas/Point"
    assert "default" not in props["where"]  # built by a call: never run to document it
    assert props["stamp"] == {"type": "string"}  # uuid4().hex: not run, not shown
    assert set(props) == {
        "query",
        "limit",
        "ratio",
        "tags",
        "anything",
        "color",
        "where",
        "meta",
        "stamp",
    }


def test_function_body_is_typed_from_its_signature(spec: dict[str, Any]) -> None:
    op = spec["paths"]["/function/add"]["post"]
    schema = body_schema(op)
    assert schema["required"] == ["a"]
    assert schema["properties"] == {
        "a": {"type": "integer"},
        "b": {"type": "integer", "default": 2},
    }
    assert op["requestBody"]["required"] is True
    result = op["responses"]["200"]["content"]["application/json"]["schema"]["allOf"][1]
    assert result["properties"]["data"]["properties"]["result"] == {"type": "integer"}


def test_get_endpoint_takes_query_and_path_parameters(spec: dict[str, Any]) -> None:
    op = spec["paths"]["/items/{item_id}"]["get"]
    assert "requestBody" not in op
    params = {p["name"]: p for p in op["parameters"]}
    assert params["item_id"] == {"name": "item_id", "in": "path", "required": True,
                                 "schema": {"type": "integer"}}  # fmt: skip
    assert params["verbose"] == {"name": "verbose", "in": "query", "required": False,
                                 "schema": {"type": "boolean", "default": False}}  # fmt: skip
    assert params["names"]["schema"] == {
        "type": "array",
        "items": {"type": "string"},
        "default": [],
    }
    node_op = spec["paths"]["/items/{item_id}/{node_id}"]["get"]
    assert [p["name"] for p in node_op["parameters"]] == ["item_id", "node_id", "verbose", "names"]


def test_upload_fields_make_a_multipart_body(spec: dict[str, Any]) -> None:
    op = spec["paths"]["/walker/upload"]["post"]
    assert list(op["requestBody"]["content"]) == ["multipart/form-data"]
    schema = body_schema(op, "multipart/form-data")
    assert schema["properties"]["file"] == {"type": "string", "format": "binary"}
    assert schema["properties"]["folder"] == {"type": "string", "default": "docs"}
    assert schema["required"] == ["file"]
    assert "415" not in op["responses"]


def test_walker_without_fields_has_no_body(spec: dict[str, Any]) -> None:
    op = spec["paths"]["/walker/open_walker"]["post"]
    assert "requestBody" not in op and "parameters" not in op
    assert "413" not in op["responses"]


def test_the_documented_body_matches_what_the_server_accepts(
    client: TestClient, spec: dict[str, Any]
) -> None:
    schema = body_schema(spec["paths"]["/function/add"]["post"])
    body = {
        name: prop["default"] for name, prop in schema["properties"].items() if "default" in prop
    }
    body["a"] = 40
    r = client.post("/function/add", json=body)
    assert r.status_code == 200 and r.json()["data"]["result"] == 42
    r = client.post("/function/add", json={"a": 1, "nope": 2})  # additionalProperties not false
    assert r.status_code == 200 and r.json()["meta"]["ignored_fields"] == ["nope"]


# ---------------------------------------------------------------------------
# Routes, security, responses
# ---------------------------------------------------------------------------


def test_walkers_get_a_node_variant_with_a_node_id_parameter(spec: dict[str, Any]) -> None:
    op = spec["paths"]["/walker/search/{node_id}"]["post"]
    (param,) = op["parameters"]
    assert param["in"] == "path" and param["required"] is True
    pattern = re.compile(param["schema"]["pattern"])
    assert param["schema"]["pattern"] == NODE_ID_PATTERN
    assert pattern.match(uuid.uuid4().hex) and pattern.match(str(uuid.uuid4()))
    assert not pattern.match("../etc") and not pattern.match("zz" * 16)
    assert op["responses"]["404"] == {"$ref": "#/components/responses/NodeNotFound"}
    assert "404" not in spec["paths"]["/walker/search"]["post"]["responses"]
    assert "/function/add/{node_id}" not in spec["paths"]


def test_protected_operations_need_a_bearer_token_and_public_ones_do_not(
    spec: dict[str, Any],
) -> None:
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (
        scheme["type"] == "http"
        and scheme["scheme"] == "bearer"
        and scheme["bearerFormat"] == "JWT"
    )
    assert "security" not in spec  # no global default: every operation says its own
    search = spec["paths"]["/walker/search"]["post"]
    assert search["security"] == BEARER
    assert search["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}
    greet = spec["paths"]["/function/greet"]["post"]
    assert greet["security"] == BEARER and "401" in greet["responses"]
    for path in ("/walker/open_walker", "/walker/open_walker/{node_id}", "/function/add"):
        op = spec["paths"][path]["post"]
        assert op["security"] == [], path
        assert "401" not in op["responses"], path


def test_responses_use_the_shared_envelope_and_error_schemas(spec: dict[str, Any]) -> None:
    op = spec["paths"]["/walker/search"]["post"]
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["allOf"][0] == {"$ref": "#/components/schemas/Envelope"}
    result = ok["allOf"][1]["properties"]["data"]["properties"]["result"]
    assert result["properties"]["_jac_type"] == {"const": "search"}
    assert result["properties"]["limit"] == {"type": "integer"}
    for status in ("403", "409", "413", "415", "422", "500"):
        assert op["responses"][status]["$ref"].startswith("#/components/responses/"), status
    invalid = spec["components"]["responses"]["ValidationError"]
    assert invalid["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorEnvelope"
    }
    error = spec["components"]["schemas"]["ErrorEnvelope"]["properties"]["error"]
    assert error["properties"]["details"]["items"] == {"$ref": "#/components/schemas/ErrorDetail"}
    assert "VALIDATION_ERROR" in error["properties"]["code"]["enum"]


def test_envelope_false_documents_the_bare_reports_list(spec: dict[str, Any]) -> None:
    ok = spec["paths"]["/walker/bare"]["post"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["type"] == "array"


def test_summary_description_tags_and_operation_ids(spec: dict[str, Any]) -> None:
    search = spec["paths"]["/walker/search"]["post"]
    assert search["summary"] == "Search your notes."
    assert search["description"] == "Search your notes.\n\nMatches titles and bodies."
    assert search["tags"] == ["walkers"]
    add = spec["paths"]["/function/add"]["post"]
    assert add["summary"] == "Add two numbers." and "description" not in add
    assert add["tags"] == ["functions"] and add["operationId"] == "function_add"
    nodoc = spec["paths"]["/walker/open_walker"]["post"]
    assert nodoc["summary"] == "Run walker open_walker"  # not the dataclass signature line
    assert "description" not in nodoc
    ids = [op["operationId"] for _, _, op in operations(spec)]
    assert len(ids) == len(set(ids))
    assert spec["paths"]["/walker/search"]["post"]["operationId"] == "walker_search"
    assert (
        spec["paths"]["/walker/search/{node_id}"]["post"]["operationId"] == "walker_search_on_node"
    )
    assert [t["name"] for t in spec["tags"]][:2] == ["walkers", "functions"]


def test_private_webhook_and_websocket_endpoints_are_not_generated_here(client: TestClient) -> None:
    ctx = client.app.state.jacscale  # type: ignore[attr-defined]
    paths, _ = endpoint_paths(ctx)
    assert not any(p.startswith(("/webhook/", "/ws/", "/function/hidden")) for p in paths)
    assert "/walker/hooked" not in paths and "/walker/socketed" not in paths


def test_plugin_paths_are_merged_with_unique_operation_ids(spec: dict[str, Any]) -> None:
    op = spec["paths"]["/extra/thing"]["get"]
    assert op["summary"] == "A plugin route" and op["security"] == BEARER
    assert op["operationId"] == "walker_search_2"  # renamed: the walker keeps its id
    assert {"name": "Extras"} in spec["tags"]
    assert EXTRA["/extra/thing"]["get"]["operationId"] == "walker_search"  # plugin's dict untouched


def test_the_spec_is_built_once_and_served_from_cache(
    client: TestClient, extra: ExtraPaths
) -> None:
    first = client.get("/openapi.json")
    second = client.get("/openapi.json")
    assert first.content == second.content
    assert extra.calls == 1
    etag = first.headers["etag"]
    again = client.get("/openapi.json", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""


def test_a_malformed_plugin_contribution_is_a_clear_error(typed_app: Path, tmp_path: Path) -> None:
    with TestApp(typed_app, tmp_path, plugins=[ExtraPaths({"extra": {}})]) as c:
        r = c.get("/openapi.json")
    assert r.status_code == 500
    assert "must start with '/'" in r.json()["error"]["message"]


def test_title_and_version_come_from_jac_toml_project(tmp_path: Path) -> None:
    app = tmp_path / "titled.jac"
    app.write_text("walker :pub hi { can go with Root entry { report 1; } }\n")
    (tmp_path / "jac.toml").write_text('[project]\nname = "Notes API"\nversion = "2.3.0"\n')
    with TestApp(app, tmp_path / "data") as c:
        info = c.get("/openapi.json").json()["info"]
    assert info == {"title": "Notes API", "version": "2.3.0"}


def test_strict_fields_closes_the_documented_bodies(tmp_path: Path) -> None:
    app = tmp_path / "typed_api.jac"
    app.write_text(TYPED_APP)
    (tmp_path / "jac.toml").write_text("[plugins.scale.api]\nstrict_fields = true\n")
    with TestApp(app, tmp_path / "data") as c:
        spec = c.get("/openapi.json").json()
        refused = c.post("/function/add", json={"a": 1, "nope": 2})
    assert body_schema(spec["paths"]["/walker/search"]["post"])["additionalProperties"] is False
    assert refused.status_code == 422
    assert [d["loc"] for d in refused.json()["error"]["details"]] == [["body", "nope"]]


def test_envelope_off_for_the_whole_app(typed_app: Path, tmp_path: Path) -> None:
    with TestApp(typed_app, tmp_path, env={"JACSCALE_ENVELOPE": "false"}) as c:
        spec = c.get("/openapi.json").json()
    ok = spec["paths"]["/function/add"]["post"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["type"] == "array"


def test_function_results_are_described_only_when_rendered_as_typed(spec: dict[str, Any]) -> None:
    point = spec["paths"]["/function/make_point"]["post"]["responses"]["200"]
    assert point["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Envelope"
    }
    none = spec["paths"]["/function/nothing"]["post"]["responses"]["200"]
    result = none["content"]["application/json"]["schema"]["allOf"][1]
    assert result["properties"]["data"]["properties"]["result"] == {"type": "null"}


def test_the_document_describes_the_route_that_actually_answers(
    typed_app: Path, tmp_path: Path
) -> None:
    first = ExtraPaths(
        {
            "/extra/x": {"get": plugin_op("from first")},
            "/walker/open_walker": {"post": plugin_op("plugin over walker")},
        },
        serve=True,
    )
    second = ExtraPaths({"/extra/x": {"get": plugin_op("from second")}}, serve=True)
    with TestApp(typed_app, tmp_path, plugins=[first, second]) as c:
        spec = c.get("/openapi.json").json()
        answered = c.get("/extra/x").json()["summary"]
        walker = c.post("/walker/open_walker", json={}).json()["summary"]
    assert spec["paths"]["/extra/x"]["get"]["summary"] == answered
    assert walker == "plugin over walker"
    assert spec["paths"]["/walker/open_walker"]["post"]["summary"] == "plugin over walker"
