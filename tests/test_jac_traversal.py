"""Our `[-->]` (jacscale_core.jaclang_patches.traversal) against jaclang's own, on the same graphs.

Every probe runs twice in one app, once through each implementation, and the
reports must be equal: directions, edge and node filters, undirected edges,
multi-hop and multi-origin paths, nodes of another user (denied and granted),
and edges whose endpoint is gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from jaclang.jac0core.runtime import JacRuntimeInterface
from jaclang.runtimelib import planner

from jacscale_core.jaclang_patches import traversal
from jacscale_core.store import RecordWrite
from jacscale_core.testing import TestApp
from jacscale_core.testing.header_auth import HeaderAuth
from tests.fixtures.servers import TEST_APPS

APP = TEST_APPS / "traversal_app.jac"
ALICE = {"X-Test-User": "alice"}
BOB = {"X-Test-User": "bob"}


def reports(response: Any) -> list[Any]:
    assert response.status_code == 200, response.text
    return list(response.json()["data"]["reports"])


@pytest.fixture
def jaclang_traversal() -> Iterator[Any]:
    """A context manager switching `[-->]` to jaclang's implementation inside it."""
    from contextlib import contextmanager

    @contextmanager
    def use_jaclang() -> Iterator[None]:
        ours = JacRuntimeInterface.edges_to_nodes, planner.execute_path
        JacRuntimeInterface.edges_to_nodes = ours[0].jaclang_original  # type: ignore[attr-defined]
        planner.execute_path = ours[1].jaclang_original  # type: ignore[attr-defined]
        try:
            yield
        finally:
            JacRuntimeInterface.edges_to_nodes, planner.execute_path = ours  # type: ignore[assignment]

    yield use_jaclang


def both(client: Any, use_jaclang: Any, path: str, headers: dict[str, str]) -> tuple[Any, Any]:
    ours = client.post(path, json={}, headers=headers)
    with use_jaclang():
        theirs = client.post(path, json={}, headers=headers)
    return ours, theirs


def test_fast_path_is_installed(tmp_path: Path) -> None:
    with TestApp(APP, tmp_path, plugins=[HeaderAuth()]):
        assert traversal.installed()
        assert JacRuntimeInterface.edges_to_nodes.__module__ == traversal.__name__
        assert planner.execute_path.__module__ == traversal.__name__
        assert traversal._only_default_impls()


def test_every_shape_matches_jaclang(tmp_path: Path, jaclang_traversal: Any) -> None:
    with TestApp(APP, tmp_path, plugins=[HeaderAuth()]) as c:
        a_id, b_id, c_id = reports(c.post("/walker/build", headers=ALICE))[0]
        for path in (
            "/walker/probe",
            f"/walker/probe/{a_id}",
            f"/walker/probe/{b_id}",
            f"/walker/probe/{c_id}",
        ):
            ours, theirs = both(c, jaclang_traversal, path, ALICE)
            assert reports(ours) == reports(theirs), path
        root_view = reports(c.post("/walker/probe", headers=ALICE))
        assert root_view[0] == ["a", "b", "Tag", "c"]  # insertion order
        assert root_view[3] == ["b"]  # ->:Link:weight > 1:->
        assert root_view[4] == ["b"]  # (?done == True)
        assert sorted(reports(c.post(f"/walker/probe/{a_id}", headers=ALICE))[5]) == [
            "Root",
            "Tag",
            "b",
            "c",
        ]


def test_another_users_nodes_match_jaclang(tmp_path: Path, jaclang_traversal: Any) -> None:
    with TestApp(APP, tmp_path, plugins=[HeaderAuth()]) as c:
        a_id, _, _ = reports(c.post("/walker/build", headers=ALICE))[0]
        reports(c.post("/walker/grant", json={"name": "a"}, headers=ALICE))
        # Bob starts on Alice's node a (readable now); what it reaches is Alice's.
        ours, theirs = both(c, jaclang_traversal, f"/walker/probe/{a_id}", BOB)
        assert reports(ours) == reports(theirs)
        assert reports(ours)[0] == []  # b is not Bob's to read
        reports(c.post("/walker/grant", json={"name": "b"}, headers=ALICE))
        ours, theirs = both(c, jaclang_traversal, f"/walker/probe/{a_id}", BOB)
        assert reports(ours) == reports(theirs)
        assert reports(ours)[0] == ["b"]


def test_mutable_fields_are_private_to_a_request(tmp_path: Path) -> None:
    with TestApp(APP, tmp_path, plugins=[HeaderAuth()]) as c:
        reports(c.post("/walker/build", headers=ALICE))
        assert reports(c.post("/walker/tag_c", headers=ALICE)) == [["x", "y"]]
        assert reports(c.post("/walker/tag_c", headers=ALICE)) == [["x", "y", "y"]]


def test_an_edge_to_a_deleted_node_is_skipped_like_jaclang(
    tmp_path: Path, jaclang_traversal: Any
) -> None:
    results = []
    for run, switch in (("ours", None), ("jaclang", jaclang_traversal)):
        with TestApp(APP, tmp_path / run, plugins=[HeaderAuth()]) as c:
            a_id, b_id, _ = reports(c.post("/walker/build", headers=ALICE))[0]
            tier = c.app.state.jacscale.executor.tier
            # b's record vanishes while the edges to it remain (what a crashed
            # non-transactional writer can leave behind).
            tier.apply([RecordWrite(op="delete", id=UUID(b_id), kind="node")])
            if switch is None:
                first = reports(c.post("/walker/probe", headers=ALICE))
            else:
                with switch():
                    first = reports(c.post("/walker/probe", headers=ALICE))
            second = reports(c.post("/walker/probe", headers=ALICE))
            results.append((first, second))
    assert results[0] == results[1]
    first, _ = results[0]
    assert "b" not in first[0]
    assert first[0] == ["a", "Tag", "c"]
