"""GET /graph/data (jac-scale's shape, stable ids, typed labels) and the /graph page's serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from jacscale_core.testing import TestApp
from jacscale_ext.graph import label_of
from tests.auth.helpers import FAST_ENV, bearer, login, register, unique_email, write_app

SOURCE = (Path(__file__).resolve().parents[1] / "examples" / "12_graph_explorer.jac").read_text()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    directory = tmp_path_factory.mktemp("graph")
    app = write_app(directory, SOURCE)
    with TestApp(app, directory / "data", env=FAST_ENV) as c:
        yield c


def seeded_user(client: TestClient) -> str:
    email = unique_email("graph")
    register(client, email)
    token = str(login(client, email)["access_token"])
    assert client.post("/walker/seed", headers=bearer(token)).status_code == 200
    return token


def test_graph_data_shape_and_labels(client: TestClient) -> None:
    token = seeded_user(client)
    resp = client.get("/graph/data", headers=bearer(token))
    assert resp.status_code == 200
    data = resp.json()
    assert data["version"] == "1.0"
    labels = sorted(n["label"] for n in data["nodes"])
    assert labels == sorted([
        "root", "Person(age=36, name='Ada')", "Person(age=41, name='Bob')",
        "Person(age=29, name='Cy')", "City(name='London')",
    ])  # fmt: skip
    assert all(set(n) == {"id", "label"} for n in data["nodes"])
    ids = {n["id"] for n in data["nodes"]}
    assert len(data["edges"]) == 4
    for edge in data["edges"]:
        assert edge["from"] in ids and edge["to"] in ids
    assert sorted(e["label"] for e in data["edges"]) == [
        "Knows(since=2019)", "Knows(since=2021)", "Knows(since=2023)", "LivesIn()",
    ]  # fmt: skip


def test_graph_data_ids_are_stable_and_match_traverse(client: TestClient) -> None:
    token = seeded_user(client)
    first = client.get("/graph/data", headers=bearer(token)).json()
    second = client.get("/graph/data", headers=bearer(token)).json()
    assert first == second
    traversed = client.post("/traverse", headers=bearer(token), json={"depth": 5}).json()
    assert {n["_jac_id"] for n in traversed["data"]["result"]["nodes"]} == {
        n["id"] for n in first["nodes"]
    }
    # each id can be used to spawn a walker on that node
    ada = next(n["id"] for n in first["nodes"] if "Ada" in n["label"])
    spawned = client.post(f"/walker/add_friend/{ada}", headers=bearer(token), json={"name": "Dee"})
    assert spawned.status_code == 200
    after = client.get("/graph/data", headers=bearer(token)).json()
    assert len(after["nodes"]) == len(first["nodes"]) + 1
    assert {n["id"] for n in first["nodes"]} <= {n["id"] for n in after["nodes"]}


def test_graph_data_is_per_user(client: TestClient) -> None:
    seeded_user(client)
    email = unique_email("empty")
    register(client, email)
    data = client.get("/graph/data", headers=bearer(login(client, email)["access_token"])).json()
    assert [n["label"] for n in data["nodes"]] == ["root"] and data["edges"] == []


def test_graph_data_without_token_is_the_guest_graph(client: TestClient) -> None:
    resp = client.get("/graph/data")
    assert resp.status_code == 200
    assert [n["label"] for n in resp.json()["nodes"]] == ["root"]
    assert client.get("/graph/data", headers=bearer("garbage")).status_code == 401


def test_graph_data_is_bounded(tmp_path: Path) -> None:
    app = write_app(tmp_path, SOURCE, "[plugins.scale.traverse]\nmax_results = 3\n")
    with TestApp(app, tmp_path / "data", env=FAST_ENV) as c:
        token = seeded_user(c)
        resp = c.get("/graph/data", headers=bearer(token))
        assert resp.status_code == 422
        assert "more than 3 nodes" in resp.json()["error"]["message"]


def test_page_and_assets(client: TestClient) -> None:
    page = client.get("/graph")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    assert 'data-node-types="[&quot;City&quot;, &quot;Person&quot;, &quot;Root&quot;]"' in page.text
    js = client.get("/graph/static/cytoscape.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    gz = client.get("/graph/static/graph.js", headers={"Accept-Encoding": "gzip"})
    assert gz.status_code == 200
    again = client.get("/graph/static/graph.js", headers={"If-None-Match": gz.headers["etag"],
                                                          "Accept-Encoding": "gzip"})  # fmt: skip
    assert again.status_code == 304
    assert client.get("/graph/static/admin.py").status_code == 404
    assert client.get("/graph/static/..%2Fgraph.py").status_code == 404
    licence = Path(__file__).resolve().parents[1] / "src/jacscale_ext/static/cytoscape/LICENSE"
    assert "Cytoscape Consortium" in licence.read_text()


def test_graph_can_be_switched_off(tmp_path: Path) -> None:
    app = write_app(tmp_path, SOURCE, "[plugins.scale.graph]\nenabled = false\n")
    with TestApp(app, tmp_path / "data", env=FAST_ENV) as c:
        assert c.get("/graph").status_code == 404
        assert c.get("/graph/data").status_code == 404
        assert "/graph/data" not in c.get("/openapi.json").json()["paths"]


def test_label_of_truncates() -> None:
    entity = {"_jac_type": "Note", "_jac_id": "x", "text": "y" * 200}
    label = label_of(entity)
    assert label.startswith("Note(text='yyy") and len(label) == 80 and label.endswith("…")
