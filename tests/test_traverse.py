"""POST /traverse: every parameter, its bad values, the bounds and READ access control."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from jacscale_core.testing import TestApp
from jacscale_core.testing.header_auth import HeaderAuth
from tests.fixtures.servers import EXAMPLES

# root -GenericEdge-> a1 -Likes(5)-> b1 -Owns-> a2 -Likes(7)-> a1 (a cycle),
# and b1 <-Likes(9)-> b2 (undirected).
GRAPH_APP = """
node A { has name: str; }
node B { has name: str; }
edge Likes { has w: int = 1; }
edge Owns {}

walker build {
    can go with Root entry {
        a1 = here ++> A(name="a1");
        b1 = a1[0] +>:Likes(w=5):+> B(name="b1");
        a2 = b1[0] +>:Owns():+> A(name="a2");
        a2[0] +>:Likes(w=7):+> a1[0];
        b2 = b1[0] <+:Likes(w=9):+> B(name="b2");
        report {"a1": a1[0], "b1": b1[0], "a2": a2[0], "b2": b2[0]};
    }
}
"""

ALICE = {"X-Test-User": "alice"}
BOB = {"X-Test-User": "bob"}
CAROL = {"X-Test-User": "carol"}


def _app_dir(base: Path, source: str | Path, toml: str = "") -> Path:
    base.mkdir(parents=True, exist_ok=True)
    app = base / "app.jac"
    if isinstance(source, Path):
        shutil.copy(source, app)
    else:
        app.write_text(source)
    if toml:
        (base / "jac.toml").write_text(toml)
    return app


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The cyclic test graph for alice, and the ids of its nodes by name."""
    base = tmp_path_factory.mktemp("traverse-graph")
    app = _app_dir(base / "app", GRAPH_APP)
    with TestApp(app, base / "data", plugins=[HeaderAuth()]) as client:
        built = client.post("/walker/build", headers=ALICE)
        assert built.status_code == 200, built.text
        ids = {k: v["_jac_id"] for k, v in built.json()["data"]["reports"][0].items()}
        yield client, ids


def traverse(client: TestClient, body: Any = None, headers: dict[str, str] = ALICE) -> Any:
    """POST /traverse and return the response."""
    if body is None:
        return client.post("/traverse", headers=headers)
    return client.post("/traverse", json=body, headers=headers)


def result(response: Any) -> dict[str, list[dict[str, Any]]]:
    """data.result of a 200 answer."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True and body["data"]["reports"] == []
    assert body["meta"]["request_id"] == response.headers["x-request-id"]
    return body["data"]["result"]


def names(res: dict[str, list[dict[str, Any]]], ids: dict[str, str]) -> set[str]:
    """The test names of the nodes in a result ("root" for the root)."""
    by_id = {v: k for k, v in ids.items()}
    return {by_id.get(n["_jac_id"], n["_jac_type"].lower()) for n in res["nodes"]}


def edge_pairs(
    res: dict[str, list[dict[str, Any]]], ids: dict[str, str]
) -> set[tuple[str, str, str]]:
    """(type, source name, target name) for every edge in a result."""
    by_id = {v: k for k, v in ids.items()}
    return {
        (e["_jac_type"], by_id.get(e["source"], "root"), by_id.get(e["target"], "root"))
        for e in res["edges"]
    }


# --------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------


def test_defaults_start_at_the_callers_root_with_depth_1(graph: Any) -> None:
    client, ids = graph
    for res in (result(traverse(client)), result(traverse(client, {}))):
        assert names(res, ids) == {"root", "a1"}
        assert edge_pairs(res, ids) == {("GenericEdge", "root", "a1")}
        root = res["nodes"][0]
        assert root["_jac_type"] == "Root" and root["_jac_archetype"] == "node"
        assert len(root["_jac_id"]) == 32


def test_depth_counts_edges_and_each_node_and_edge_appears_once(graph: Any) -> None:
    client, ids = graph
    assert names(result(traverse(client, {"depth": 0})), ids) == {"root"}
    assert result(traverse(client, {"depth": 0}))["edges"] == []
    assert names(result(traverse(client, {"depth": 2})), ids) == {"root", "a1", "b1"}
    deep = result(traverse(client, {"depth": 10}))
    assert names(deep, ids) == {"root", "a1", "b1", "a2", "b2"}
    assert edge_pairs(deep, ids) == {
        ("GenericEdge", "root", "a1"),
        ("Likes", "a1", "b1"),
        ("Owns", "b1", "a2"),
        ("Likes", "a2", "a1"),  # closes the cycle: the edge is there, a1 only once
        ("Likes", "b1", "b2"),
    }
    assert len(deep["nodes"]) == 5 and len(deep["edges"]) == 5


def test_ids_are_stable_across_calls(graph: Any) -> None:
    client, _ = graph
    first = result(traverse(client, {"depth": 10}))
    second = result(traverse(client, {"depth": 10}))
    assert {n["_jac_id"] for n in first["nodes"]} == {n["_jac_id"] for n in second["nodes"]}
    assert {e["_jac_id"] for e in first["edges"]} == {e["_jac_id"] for e in second["edges"]}


def test_detailed_adds_the_fields_of_nodes_and_edges(graph: Any) -> None:
    client, ids = graph
    plain = result(traverse(client, {"source": ids["a1"], "depth": 1}))
    assert all(set(n) == {"_jac_type", "_jac_id", "_jac_archetype"} for n in plain["nodes"])
    assert all(
        set(e) == {"_jac_type", "_jac_id", "_jac_archetype", "source", "target"}
        for e in plain["edges"]
    )
    rich = result(traverse(client, {"source": ids["a1"], "depth": 1, "detailed": True}))
    nodes = {n["_jac_id"]: n for n in rich["nodes"]}
    assert nodes[ids["a1"]]["name"] == "a1" and nodes[ids["b1"]]["name"] == "b1"
    [likes] = rich["edges"]
    assert likes["_jac_type"] == "Likes" and likes["w"] == 5
    assert likes["_jac_archetype"] == "archetype"
    assert (likes["source"], likes["target"]) == (ids["a1"], ids["b1"])


def test_source_node_starts_the_walk_there(graph: Any) -> None:
    client, ids = graph
    res = result(traverse(client, {"source": ids["b1"], "depth": 1}))
    assert names(res, ids) == {"b1", "a2", "b2"}
    assert res["nodes"][0]["_jac_id"] == ids["b1"]


def test_source_accepts_a_dashed_uuid(graph: Any) -> None:
    client, ids = graph
    raw = ids["a2"]
    dashed = f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
    assert names(result(traverse(client, {"source": dashed, "depth": 0})), ids) == {"a2"}


def test_undirected_edges_are_followed_from_either_end(graph: Any) -> None:
    client, ids = graph
    res = result(traverse(client, {"source": ids["b2"], "depth": 1}))
    assert names(res, ids) == {"b2", "b1"}
    assert edge_pairs(res, ids) == {("Likes", "b1", "b2")}


def test_source_edge_gives_the_edge_its_ends_and_continues_from_the_target(graph: Any) -> None:
    client, ids = graph
    everything = result(traverse(client, {"depth": 10}))
    owns = next(e for e in everything["edges"] if e["_jac_type"] == "Owns")
    only = result(traverse(client, {"source": owns["_jac_id"], "depth": 1}))
    assert names(only, ids) == {"b1", "a2"}
    assert [e["_jac_id"] for e in only["edges"]] == [owns["_jac_id"]]
    further = result(traverse(client, {"source": owns["_jac_id"], "depth": 2}))
    assert names(further, ids) == {"b1", "a2", "a1"}
    assert ("Likes", "a2", "a1") in edge_pairs(further, ids)


def test_node_types_prunes_the_walk(graph: Any) -> None:
    client, ids = graph
    only_a = result(traverse(client, {"depth": 10, "node_types": ["A"]}))
    # root -> a1 is followed; a1 -> b1 is not (B), so a2 is never reached.
    assert names(only_a, ids) == {"root", "a1"}
    both = result(traverse(client, {"depth": 10, "node_types": ["A", "B"]}))
    assert names(both, ids) == {"root", "a1", "b1", "a2", "b2"}
    none = result(traverse(client, {"depth": 10, "node_types": []}))
    assert names(none, ids) == {"root"}


def test_edge_types_prunes_the_walk(graph: Any) -> None:
    client, ids = graph
    likes = result(traverse(client, {"source": ids["a1"], "depth": 10, "edge_types": ["Likes"]}))
    assert names(likes, ids) == {"a1", "b1", "b2"}
    assert {e["_jac_type"] for e in likes["edges"]} == {"Likes"}
    generic = result(traverse(client, {"depth": 10, "edge_types": ["GenericEdge"]}))
    assert names(generic, ids) == {"root", "a1"}
    mixed = result(
        traverse(client, {"source": ids["a1"], "depth": 10, "edge_types": ["Likes", "Owns"]})
    )
    assert names(mixed, ids) == {"a1", "b1", "a2", "b2"}


def test_filters_combine(graph: Any) -> None:
    client, ids = graph
    res = result(
        traverse(
            client,
            {"source": ids["b1"], "depth": 3, "node_types": ["A"], "edge_types": ["Owns"]},
        )
    )
    assert names(res, ids) == {"b1", "a2"}


# --------------------------------------------------------------------------
# Bad input: a 422 naming the field, for every parameter
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"depth": "2"}, ["body", "depth"]),
        ({"depth": 1.5}, ["body", "depth"]),
        ({"depth": -1}, ["body", "depth"]),
        ({"depth": 11}, ["body", "depth"]),
        ({"detailed": "yes"}, ["body", "detailed"]),
        ({"source": 5}, ["body", "source"]),
        ({"source": "not-an-id"}, ["body", "source"]),
        ({"node_types": "A"}, ["body", "node_types"]),
        ({"node_types": [1]}, ["body", "node_types", 0]),
        ({"node_types": ["Nope"]}, ["body", "node_types"]),
        ({"node_types": ["Likes"]}, ["body", "node_types"]),  # an edge type is not a node type
        ({"edge_types": ["A"]}, ["body", "edge_types"]),
        ({"edge_types": {"x": 1}}, ["body", "edge_types"]),
        ({"limit": 3}, ["body", "limit"]),
    ],
)
def test_bad_parameters_are_422_naming_the_field(graph: Any, body: Any, loc: list[Any]) -> None:
    client, _ = graph
    response = traverse(client, body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"][0]["loc"] == loc
    assert str(loc[1]) in error["message"]


def test_body_must_be_a_json_object(graph: Any) -> None:
    client, _ = graph
    not_json = client.post(
        "/traverse", content=b"{nope", headers={**ALICE, "content-type": "application/json"}
    )
    assert not_json.status_code == 422 and not_json.json()["error"]["details"][0]["loc"] == ["body"]
    array = traverse(client, [1, 2])
    assert array.status_code == 422
    form = client.post(
        "/traverse", content=b"depth=1", headers={**ALICE, "content-type": "text/plain"}
    )
    assert form.status_code == 415


def test_unknown_source_is_404(graph: Any) -> None:
    client, _ = graph
    response = traverse(client, {"source": "0" * 31 + "9"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_only_post(graph: Any) -> None:
    client, _ = graph
    assert client.get("/traverse", headers=ALICE).status_code == 405


# --------------------------------------------------------------------------
# Bounds
# --------------------------------------------------------------------------


def test_result_size_and_depth_are_bounded_with_a_clear_error(tmp_path: Path) -> None:
    toml = "[plugins.scale.traverse]\nmax_depth = 3\nmax_results = 3\n"
    app = _app_dir(tmp_path / "app", GRAPH_APP, toml)
    with TestApp(app, tmp_path / "data", plugins=[HeaderAuth()]) as client:
        assert client.post("/walker/build", headers=ALICE).status_code == 200
        assert len(result(traverse(client, {"depth": 2}))["nodes"]) == 3
        too_big = traverse(client, {"depth": 3})
        assert too_big.status_code == 422
        error = too_big.json()["error"]
        assert "more than 3 nodes" in error["message"]
        assert error["details"][0]["loc"] == ["body", "depth"]
        too_deep = traverse(client, {"depth": 4})
        assert (
            too_deep.status_code == 422 and "between 0 and 3" in too_deep.json()["error"]["message"]
        )
        # A filter keeps a big graph under the bound.
        assert traverse(client, {"depth": 3, "node_types": ["A"]}).status_code == 200


def test_can_be_switched_off(tmp_path: Path) -> None:
    app = _app_dir(tmp_path / "app", GRAPH_APP, "[plugins.scale.traverse]\nenabled = false\n")
    with TestApp(app, tmp_path / "data", plugins=[HeaderAuth()]) as client:
        assert traverse(client, {}).status_code == 404
        assert "/traverse" not in client.get("/openapi.json").json()["paths"]


# --------------------------------------------------------------------------
# Access control (examples/06_permissions.jac)
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def posts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """alice has a private post, a post shared read-only with everyone, and one for carol."""
    base = tmp_path_factory.mktemp("traverse-perm")
    app = _app_dir(base / "app", EXAMPLES / "06_permissions.jac")
    auth = HeaderAuth()
    with TestApp(app, base / "data", plugins=[auth]) as client:
        ids: dict[str, str] = {}
        for text, share in (("private", "none"), ("public", "read")):
            made = client.post(
                "/walker/create_post", json={"text": text, "share": share}, headers=ALICE
            )
            assert made.status_code == 200, made.text
            ids[text] = made.json()["data"]["reports"][0]["_jac_id"]
        bob_post = client.post("/walker/create_post", json={"text": "bobs"}, headers=BOB)
        ids["bobs"] = bob_post.json()["data"]["reports"][0]["_jac_id"]
        traverse(client, {}, CAROL)  # carol gets her root
        ids["alice_root"] = auth.roots["alice"]
        ids["carol_root"] = auth.roots["carol"]
        yield client, ids


def test_requires_authentication(posts: Any) -> None:
    client, _ = posts
    anonymous = client.post("/traverse", json={})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert client.post("/traverse", json={}, headers={"X-Test-User": "!bad"}).status_code == 401


def test_each_user_sees_their_own_graph_from_their_root(posts: Any) -> None:
    client, ids = posts
    mine = result(traverse(client, {"depth": 3}, ALICE))
    assert {n["_jac_id"] for n in mine["nodes"][1:]} == {ids["private"], ids["public"]}
    bobs = result(traverse(client, {"depth": 3}, BOB))
    assert {n["_jac_id"] for n in bobs["nodes"][1:]} == {ids["bobs"]}
    assert bobs["nodes"][0]["_jac_id"] != mine["nodes"][0]["_jac_id"]


def test_another_users_private_node_root_and_edges_are_404(posts: Any) -> None:
    client, ids = posts
    for source in (ids["private"], ids["alice_root"]):
        response = traverse(client, {"source": source}, BOB)
        assert response.status_code == 404, response.text
        assert source not in response.text or "not found" in response.json()["error"]["message"]
    alice_edges = result(traverse(client, {"depth": 1}, ALICE))["edges"]
    for edge in alice_edges:
        assert traverse(client, {"source": edge["_jac_id"]}, BOB).status_code == 404


def test_a_node_shared_read_only_is_readable_but_its_owners_edges_are_not(posts: Any) -> None:
    client, ids = posts
    res = result(traverse(client, {"source": ids["public"], "depth": 2, "detailed": True}, BOB))
    assert [n["_jac_id"] for n in res["nodes"]] == [ids["public"]]
    assert res["nodes"][0]["text"] == "public"
    assert res["edges"] == []


def test_an_explicit_share_opens_exactly_that_node(posts: Any) -> None:
    client, ids = posts
    assert traverse(client, {"source": ids["private"]}, CAROL).status_code == 404
    shared = client.post(
        "/walker/share_with", json={"target_root_id": ids["carol_root"]}, headers=ALICE
    )
    assert shared.status_code == 200, shared.text
    seen = result(traverse(client, {"source": ids["private"], "detailed": True}, CAROL))
    assert [n["text"] for n in seen["nodes"]] == ["private"]
    assert traverse(client, {"source": ids["private"]}, BOB).status_code == 404
    assert traverse(client, {"source": ids["alice_root"]}, CAROL).status_code == 404
    client.post("/walker/unshare", json={"target_root_id": ids["carol_root"]}, headers=ALICE)
    assert traverse(client, {"source": ids["private"]}, CAROL).status_code == 404


def test_traversal_never_writes(posts: Any) -> None:
    client, ids = posts
    before = result(traverse(client, {"depth": 3, "detailed": True}, ALICE))
    for _ in range(3):
        traverse(client, {"depth": 3, "detailed": True}, BOB)
        traverse(client, {"source": ids["public"]}, BOB)
    assert result(traverse(client, {"depth": 3, "detailed": True}, ALICE)) == before


def test_openapi_documents_traverse(posts: Any) -> None:
    client, _ = posts
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/traverse"]["post"]
    props = operation["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert set(props) == {"source", "depth", "detailed", "node_types", "edge_types"}
    assert {"200", "401", "404", "422"} <= set(operation["responses"])


def test_builtins_example_graph(tmp_path: Path) -> None:
    app = _app_dir(tmp_path / "app", EXAMPLES / "09_builtins.jac")
    with TestApp(app, tmp_path / "data", plugins=[HeaderAuth()]) as client:
        assert client.post("/walker/build_graph", headers=ALICE).status_code == 200
        res = result(traverse(client, {"depth": 3, "node_types": ["Person"], "detailed": True}))
        assert sorted(n.get("name", "") for n in res["nodes"]) == ["", "a", "b"]
        assert sorted(e["since"] for e in res["edges"]) == [2021, 2022]
