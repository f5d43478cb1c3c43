"""The executor: isolation, persistence, ordering, denied writes, concurrency in-process."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from jacscale_core.memory import LazyEdges, RequestMemory
from jacscale_core.testing import TestApp
from jacscale_core.testing.header_auth import HeaderAuth
from tests.fixtures.servers import EXAMPLES, TEST_APPS

TODO = EXAMPLES / "todo" / "app.jac"
PERMS = EXAMPLES / "06_permissions.jac"
ALICE = {"X-Test-User": "alice"}
BOB = {"X-Test-User": "bob"}


def reports(response: Any) -> list[Any]:
    assert response.status_code == 200, response.text
    return list(response.json()["data"]["reports"])


def test_data_survives_a_restart_in_insertion_order(tmp_path: Path) -> None:
    auth = HeaderAuth()
    titles = [f"t{i}" for i in range(12)]
    with TestApp(TODO, tmp_path, plugins=[auth]) as c:
        for t in titles:
            c.post("/walker/add_todo", json={"title": t}, headers=ALICE)
        first = [t["title"] for t in reports(c.post("/walker/list_todos", headers=ALICE))[0]]
    assert first == titles
    with TestApp(TODO, tmp_path, plugins=[auth]) as c:
        again = [t["title"] for t in reports(c.post("/walker/list_todos", headers=ALICE))[0]]
        assert again == titles
        # Deleting from the middle keeps the order of the rest.
        todo_ids = [t["_jac_id"] for t in reports(c.post("/walker/list_todos", headers=ALICE))[0]]
        c.post(f"/walker/toggle_todo/{todo_ids[3]}", headers=ALICE)
        assert reports(c.post("/walker/clear_done", headers=ALICE)) == [1]
        after = [t["title"] for t in reports(c.post("/walker/list_todos", headers=ALICE))[0]]
        assert after == titles[:3] + titles[4:]


def test_failed_request_leaves_nothing_behind(tmp_path: Path) -> None:
    with TestApp(TEST_APPS / "kernel_app.jac", tmp_path) as c:
        assert c.post("/walker/make_item", json={"name": "a", "fail": True}).status_code == 500
        assert reports(c.post("/walker/items")) == [[]]
        c.post("/walker/make_item", json={"name": "b"})
        assert reports(c.post("/walker/items")) == [["b"]]


def test_five_sleeping_walkers_run_concurrently(tmp_path: Path) -> None:
    with TestApp(TEST_APPS / "kernel_app.jac", tmp_path) as c:
        for path in ("/walker/sleepy", "/walker/async_sleepy"):
            started = time.perf_counter()
            with ThreadPoolExecutor(5) as pool:
                results = list(pool.map(lambda p: c.post(p, json={"seconds": 1.0}), [path] * 5))
            elapsed = time.perf_counter() - started
            assert all(reports(r) == ["slept"] for r in results)
            assert elapsed < 2.5, f"{path}: five 1 s walkers took {elapsed:.2f} s"


def test_concurrent_increments_in_one_process_lose_nothing(tmp_path: Path) -> None:
    with TestApp(TODO, tmp_path) as c:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda _: c.post("/walker/increment"), range(60)))
        assert all(r.status_code == 200 for r in results), [r.text for r in results if r.status_code != 200]
        counts = sorted(reports(r)[0] for r in results)
        assert counts == list(range(1, 61))


def test_denied_write_is_reported_not_silently_ok(tmp_path: Path) -> None:
    auth = HeaderAuth()
    with TestApp(PERMS, tmp_path, plugins=[auth]) as c:
        post = reports(c.post("/walker/create_post", json={"text": "hi", "share": "read"}, headers=ALICE))[0]
        r = c.post(f"/walker/like_post/{post['_jac_id']}", headers=BOB)
        assert r.status_code == 200
        warnings = r.json()["data"]["warnings"]
        assert warnings and warnings[0]["target_id"].replace("-", "") == post["_jac_id"]
        assert warnings[0]["operation"] and warnings[0]["required"] and "actual" in warnings[0]
        # Nothing was saved: alice still sees 0 likes.
        r = c.post(f"/walker/like_post/{post['_jac_id']}", headers=ALICE)
        assert reports(r) == [1]


def test_strict_permissions_turn_denials_into_403(tmp_path: Path) -> None:
    auth = HeaderAuth()
    with TestApp(PERMS, tmp_path, plugins=[auth], env={"JAC_STRICT_PERMISSIONS": "1"}) as c:
        post = reports(c.post("/walker/create_post", json={"text": "hi", "share": "read"}, headers=ALICE))[0]
        r = c.post(f"/walker/like_post/{post['_jac_id']}", headers=BOB)
        assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    with TestApp(PERMS, tmp_path, plugins=[auth], env={"JAC_STRICT_PERMISSIONS": "0"}) as c:
        r = c.post(f"/walker/like_post/{post['_jac_id']}", headers=ALICE)
        assert reports(r) == [1]


def test_write_grant_lets_another_user_write(tmp_path: Path) -> None:
    auth = HeaderAuth()
    with TestApp(PERMS, tmp_path, plugins=[auth]) as c:
        post = reports(c.post("/walker/create_post", json={"text": "w", "share": "write"}, headers=ALICE))[0]
        assert reports(c.post(f"/walker/like_post/{post['_jac_id']}", headers=BOB)) == [1]
        assert reports(c.post(f"/walker/like_post/{post['_jac_id']}", headers=ALICE)) == [2]


def test_a_walker_touching_nothing_does_not_decode_the_roots_edges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestApp(TODO, tmp_path, plugins=[HeaderAuth()]) as c:
        assert reports(c.post("/walker/bulk_add", json={"count": 300}, headers=ALICE)) == [300]
        # (pending, appended while pending) of every loaded edge list, at commit time
        # (the request's teardown empties the lists afterwards).
        edge_lists: list[tuple[bool, int]] = []
        original = RequestMemory.flush

        def spying_flush(self: RequestMemory, read_versions: Any) -> int:
            edge_lists.extend(
                (e.pending, len(e.appended()))
                for e in (a.__dict__.get("edges") for a in self.__mem__.values())
                if isinstance(e, LazyEdges)
            )
            return original(self, read_versions)

        monkeypatch.setattr(RequestMemory, "flush", spying_flush)
        assert reports(c.post("/walker/ping", headers=ALICE)) == ["pong"]
        # The user's root (300 edges) was loaded, but no edge stub was built.
        assert edge_lists and all(pending for pending, _ in edge_lists)
        # Adding a child appends without building the other 300 stubs...
        edge_lists.clear()
        assert reports(c.post("/walker/add_todo", json={"title": "new"}, headers=ALICE))
        assert (True, 1) in edge_lists
        # ...and the append landed after the others, in order.
        edge_lists.clear()
        todos = reports(c.post("/walker/list_todos", headers=ALICE))[0]
        assert len(todos) == 301 and todos[-1]["title"] == "new"
        assert any(not pending for pending, _ in edge_lists)


def test_creating_many_children_in_one_walker_is_one_batch(tmp_path: Path) -> None:
    with TestApp(TODO, tmp_path, plugins=[HeaderAuth()]) as c:
        store = c.app.state.jacscale.store
        calls: list[int] = []
        original = store.apply

        def counting(writes: Any) -> Any:
            calls.append(len(writes))
            return original(writes)

        store.apply = counting
        try:
            assert reports(c.post("/walker/bulk_add", json={"count": 1000}, headers=ALICE)) == [1000]
        finally:
            store.apply = original
        # 1000 nodes + 1000 edges + the root's edge list, in one atomic batch
        # (the first call created alice's root).
        assert calls[-1] == 2001 and len(calls) <= 2
        titles = reports(c.post("/walker/list_todos", headers=ALICE))[0]
        assert [t["title"] for t in titles[:3]] == ["item-0", "item-1", "item-2"]
        assert len(titles) == 1000


@pytest.mark.parametrize("path", ["/walker/increment"])
def test_conflicts_replay_instead_of_losing_updates(tmp_path: Path, path: str) -> None:
    with TestApp(TODO, tmp_path) as c:
        executor = c.app.state.jacscale.executor
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: c.post(path), range(40)))
        assert sorted(reports(r)[0] for r in results) == list(range(1, 41))
        assert executor.max_replays >= 1


def test_requests_leave_no_graph_for_the_garbage_collector(tmp_path: Path) -> None:
    """Anchors and archetypes are freed when a request ends, not by a later GC pause."""
    import gc

    from jaclang.jac0core.archetype import Anchor, Archetype

    with TestApp(TODO, tmp_path, plugins=[HeaderAuth()]) as c:
        assert reports(c.post("/walker/bulk_add", json={"count": 20}, headers=ALICE)) == [20]
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(5):
                assert len(reports(c.post("/walker/list_todos", headers=ALICE))[0]) >= 20
                assert reports(c.post("/walker/add_todo", json={"title": "t"}, headers=ALICE))
                assert reports(c.post("/walker/ping", headers=ALICE)) == ["pong"]
            gc.collect()
            leaked = [o for o in gc.garbage if isinstance(o, (Anchor, Archetype))]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert leaked == []


def test_async_walkers_commit_their_writes_and_concurrent_ones_lose_nothing(
    tmp_path: Path,
) -> None:
    app = TEST_APPS / "async_writes.jac"
    with TestApp(app, tmp_path) as c:
        counter = reports(c.post("/walker/async_add", json={"name": "a"}))[0]["_jac_id"]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: c.post(f"/walker/async_bump/{counter}"), range(20)))
        assert [a.status_code for a in answers] == [200] * 20
        assert sorted(reports(a)[0] for a in answers) == list(range(1, 21))
        assert reports(c.post("/walker/async_read")) == [[20]]
    with TestApp(app, tmp_path) as c:  # the commits are in the store
        assert reports(c.post("/walker/async_read")) == [[20]]
