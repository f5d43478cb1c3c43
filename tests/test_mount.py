"""The app is a plain ASGI app: it works mounted under a prefix in FastAPI or Starlette."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from jacscale_core import create_app
from tests.fixtures.servers import TEST_APPS


def test_mounted_in_fastapi_under_a_prefix(tmp_path: Path) -> None:
    jac_app = create_app(TEST_APPS / "kernel_app.jac", data_dir=tmp_path)
    api = FastAPI()

    @api.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    api.mount("/jac", jac_app)
    # FastAPI does not run a mounted app's lifespan: jacscale starts on first use.
    with TestClient(api) as client:
        assert client.get("/hello").json() == {"hello": "world"}
        r = client.post("/jac/walker/typed", json={"count": 2})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["reports"][0]["count"] == 2
        r = client.post("/jac/walker/make_item", json={"name": "m"})
        assert r.status_code == 200
        assert client.post("/jac/walker/items").json()["data"]["reports"] == [["m"]]
        assert client.post("/jac/walker/nope").status_code == 404
        assert client.get("/jac/healthz").json() == {"status": "ok"}


def test_mounted_in_starlette_with_its_lifespan(tmp_path: Path) -> None:
    jac_app = create_app(TEST_APPS / "kernel_app.jac", data_dir=tmp_path)
    outer = Starlette(routes=[Mount("/api/v1", app=jac_app)], lifespan=jac_app.router.lifespan_context)
    with TestClient(outer) as client:
        assert client.post("/api/v1/function/add", json={"a": 1, "b": 1}).json()["data"]["result"] == 2
        assert client.get("/api/v1/readyz").status_code == 200
