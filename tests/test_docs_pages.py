"""/docs (Swagger UI) and /redoc (ReDoc): packaged assets, relative URLs, switchable off."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from jacscale_core.app import create_app
from jacscale_core.testing import TestApp
from jacscale_ext.docs import ASSET_FILES, STATIC_DIR

ROOT = Path(__file__).resolve().parents[1]
TODO = ROOT / "examples" / "todo" / "app.jac"
DOC_ROUTES = ("/openapi.json", "/docs", "/redoc", "/docs/static/swagger-ui-bundle.js")
LICENSES = ("swagger-ui/LICENSE", "swagger-ui/NOTICE", "redoc/LICENSE")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestApp(TODO, tmp_path_factory.mktemp("docs")) as c:
        yield c


def references(page: str) -> list[str]:
    """Every URL the page loads: src=, href= and ReDoc's spec-url=."""
    return re.findall(r'(?:src|href|spec-url|data-openapi-url)="([^"]+)"', page)


def without_query(url: str) -> str:
    return urlsplit(url).path


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_pages_load_only_packaged_assets_by_relative_url(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    text = r.text
    assert "http" not in text.lower() and "cdn" not in text.lower() and "//" not in text
    refs = references(text)
    assert "openapi.json" in refs
    assert all(not ref.startswith("/") for ref in refs), refs  # relative: works under a mount
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "<script>" not in text  # no inline script: the CSP forbids it
    for ref in refs:
        asset = client.get(urljoin("http://testserver" + page, ref))
        assert asset.status_code == 200, ref


def test_swagger_page_starts_swagger_ui_on_the_spec(client: TestClient) -> None:
    page = client.get("/docs").text
    refs = [without_query(r) for r in references(page)]
    assert refs == [
        "docs/static/swagger-ui.css",
        "openapi.json",
        "docs/static/swagger-ui-bundle.js",
        "docs/static/swagger-init.js",
    ]
    init = client.get("/docs/static/swagger-init.js").text
    assert (
        "SwaggerUIBundle(" in init and "validatorUrl: null" in init
    )  # no external validator badge
    assert "<title>app - Swagger UI</title>" in page


def test_redoc_page_points_the_standalone_bundle_at_the_spec(client: TestClient) -> None:
    page = client.get("/redoc").text
    assert '<redoc spec-url="openapi.json"></redoc>' in page
    assert [without_query(r) for r in references(page)] == [
        "openapi.json",
        "docs/static/redoc.standalone.js",
    ]


@pytest.mark.parametrize("name", sorted(ASSET_FILES))
def test_assets_are_served_with_type_and_long_cache(client: TestClient, name: str) -> None:
    relative, media_type = ASSET_FILES[name]
    r = client.get(f"/docs/static/{name}", headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200
    assert r.headers["content-type"] == media_type
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "content-encoding" not in r.headers
    assert r.content == (STATIC_DIR / relative).read_bytes()
    zipped = client.get(f"/docs/static/{name}", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == r.content  # httpx decodes it
    assert int(zipped.headers["content-length"]) < len(r.content)
    again = client.get(f"/docs/static/{name}", headers={"If-None-Match": r.headers["etag"],
                                                         "Accept-Encoding": "identity"})  # fmt: skip
    assert again.status_code == 304 and again.content == b""


def test_bundles_are_the_real_viewers_with_their_licenses() -> None:
    assert (STATIC_DIR / "swagger-ui/swagger-ui-bundle.js").stat().st_size > 500_000
    assert (STATIC_DIR / "redoc/redoc.standalone.js").stat().st_size > 500_000
    assert "SwaggerUIBundle" in (STATIC_DIR / "swagger-ui/swagger-ui-bundle.js").read_text()[:5000]
    for name in LICENSES:
        assert (STATIC_DIR / name).stat().st_size > 0, name
    assert "Apache License" in (STATIC_DIR / "swagger-ui/LICENSE").read_text()
    assert "MIT License" in (STATIC_DIR / "redoc/LICENSE").read_text()


@pytest.mark.parametrize(
    "path",
    ["/docs/static/nope.js", "/docs/static/LICENSE", "/docs/static/..%2fdocs.py",
     "/docs/static/%2e%2e%2f%2e%2e%2fdocs.py", "/docs/static/swagger-ui%2fLICENSE"],
)  # fmt: skip
def test_only_listed_assets_are_served(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("how", ["env", "jac.toml"])
def test_docs_disabled_means_no_docs_routes_at_all(tmp_path: Path, how: str) -> None:
    app = tmp_path / "app" / "app.jac"
    app.parent.mkdir()
    shutil.copy(TODO, app)
    env = {}
    if how == "env":
        env["JACSCALE_DOCS_ENABLED"] = "false"
    else:
        (app.parent / "jac.toml").write_text("[plugins.scale.api]\ndocs_enabled = false\n")
    with TestApp(app, tmp_path / "data", env=env) as c:
        for route in DOC_ROUTES:
            r = c.get(route)
            assert r.status_code == 404, route  # jac-scale 0.2.31 answered 500 here
            assert r.json()["error"]["code"] == "NOT_FOUND"
        assert c.post("/walker/ping", json={}).status_code == 200  # the API itself still works


def test_docs_work_when_the_app_is_mounted_under_a_prefix(tmp_path: Path) -> None:
    inner = create_app(TODO, data_dir=tmp_path)
    outer = Starlette(routes=[Mount("/api", app=inner)])
    with TestClient(outer, raise_server_exceptions=False) as c:
        spec = c.get("/api/openapi.json")
        assert spec.status_code == 200
        assert spec.json()["servers"] == [{"url": "/api"}]
        assert "/walker/add_todo" in spec.json()["paths"]
        for page in ("/api/docs", "/api/redoc"):
            r = c.get(page)
            assert r.status_code == 200, page
            for ref in references(r.text):
                url = urljoin("http://testserver" + page, ref)
                assert urlsplit(url).path.startswith("/api/"), url
                assert c.get(url).status_code == 200, url
        assert c.get("/docs").status_code == 404
        assert c.post("/api/walker/ping", json={}).status_code == 200
    # The same app unmounted: the cached document gets no `servers` entry.
    with TestClient(inner, raise_server_exceptions=False) as c:
        assert "servers" not in c.get("/openapi.json").json()
