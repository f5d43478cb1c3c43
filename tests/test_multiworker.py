"""Real sockets, several workers (under each installed server) sharing the embedded store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from jacscale_core.launch import installed_servers
from jacscale_core.testing import running_server
from tests.fixtures.servers import EXAMPLES, TEST_APPS


# hypercorn with 4 workers; uvicorn (also under our supervisor) and granian (its own) with 2.
@pytest.mark.parametrize(
    ("server", "workers"),
    [("hypercorn", 4), *((name, 2) for name in installed_servers() if name != "hypercorn")],
)
def test_100_concurrent_increments_over_n_workers_lose_nothing(
    tmp_path: Path, server: str, workers: int
) -> None:
    env = {"JACSCALE_SERVER": server}
    with running_server(EXAMPLES / "todo" / "app.jac", tmp_path, workers=workers, env=env) as base:

        async def hammer() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
                return await asyncio.gather(
                    *(client.post("/walker/increment") for _ in range(100))
                )

        responses = asyncio.run(hammer())
        failed = [r.text for r in responses if r.status_code != 200]
        assert not failed, failed[:3]
        counts = sorted(r.json()["data"]["reports"][0] for r in responses)
        assert counts == list(range(1, 101))
        final = httpx.post(base + "/walker/increment", timeout=10).json()["data"]["reports"][0]
        assert final == 101


def test_a_write_on_one_worker_is_seen_by_the_next_request_anywhere(tmp_path: Path) -> None:
    with running_server(TEST_APPS / "kernel_app.jac", tmp_path, workers=3) as base:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=base, timeout=10, limits=limits) as client:
            names: list[str] = []
            for i in range(25):
                name = f"n{i}"
                assert client.post("/walker/make_item", json={"name": name}).status_code == 200
                names.append(name)
                seen = client.post("/walker/items").json()["data"]["reports"][0]
                assert seen == names


def test_data_survives_a_server_restart(tmp_path: Path) -> None:
    app = TEST_APPS / "kernel_app.jac"
    with running_server(app, tmp_path, workers=2) as base:
        for name in ("a", "b", "c"):
            httpx.post(base + "/walker/make_item", json={"name": name}, timeout=10)
    with running_server(app, tmp_path, workers=1) as base:
        items = httpx.post(base + "/walker/items", timeout=10).json()["data"]["reports"][0]
        assert items == ["a", "b", "c"]
