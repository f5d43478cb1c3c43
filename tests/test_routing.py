"""IndexedRouter answers exactly like Starlette's router."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from jacscale_core.routing import IndexedRouter


def named(name: str):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(f"{name} {dict(request.path_params)}")

    return endpoint


ROUTES = [
    Route("/items/{item}", named("dynamic"), methods=["GET"]),
    Route("/items/special", named("shadowed"), methods=["GET", "POST"]),
    Route("/plain", named("plain-get"), methods=["GET"]),
    Route("/plain", named("plain-post"), methods=["POST"]),
    Mount("/mounted", routes=[Route("/x", named("inner"))]),
    Route("/mounted/x", named("after-mount"), methods=["GET"]),
]


def client_for(router_cls: type) -> TestClient:
    app = Starlette()
    app.router = router_cls(routes=ROUTES)
    return TestClient(app)


def test_indexed_router_matches_starlette_everywhere() -> None:
    requests = [
        ("GET", "/items/special"), ("POST", "/items/special"), ("GET", "/items/7"),
        ("GET", "/plain"), ("POST", "/plain"), ("DELETE", "/plain"), ("GET", "/mounted/x"),
        ("GET", "/nope"), ("GET", "/plain/"),
    ]  # fmt: skip
    ours, theirs = client_for(IndexedRouter), client_for(type(Starlette().router))
    for method, path in requests:
        a = ours.request(method, path, follow_redirects=False)
        b = theirs.request(method, path, follow_redirects=False)
        assert (a.status_code, a.text) == (b.status_code, b.text), (method, path)
