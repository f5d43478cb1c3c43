"""API docs pages: GET /openapi.json, /docs (Swagger UI) and /redoc (ReDoc).

The two viewers are served from assets packaged under `jacscale_ext/static/`
(no CDN, no external URL), and the pages reference everything by relative URL,
so the app works mounted under a prefix. The document itself comes from
`jacscale_ext.openapi`. `[plugins.scale.api] docs_enabled = false` (or
JACSCALE_DOCS_ENABLED=false) removes all of these routes: they answer 404.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jacscale_core.context import AppContext
from jacscale_core.errors import not_found
from jacscale_core.plugins import hookimpl
from jacscale_ext.openapi import api_info, openapi_bytes

STATIC_DIR = Path(__file__).parent / "static"

# --------------------------------------------------------------------------
# Pages and packaged assets
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Asset:
    """One packaged file, loaded once: its bytes, a gzipped copy and an ETag."""

    body: bytes
    gzipped: bytes
    etag: str
    media_type: str


JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"
# URL name -> (file under static/, content type). Nothing outside this table is served.
ASSET_FILES: dict[str, tuple[str, str]] = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", JS),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", CSS),
    "swagger-init.js": ("swagger-init.js", JS),
    "redoc.standalone.js": ("redoc/redoc.standalone.js", JS),
}
ASSET_CACHE_CONTROL = "public, max-age=31536000, immutable"
PAGE_CACHE_CONTROL = "no-cache"
# Pages load only their own scripts; ReDoc needs inline styles and a blob: search worker.
# (ReDoc's footer logo would come from its CDN: the CSP blocks it and ReDoc drops the image.)
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

def _load_asset(name: str) -> Asset:
    relative, media_type = ASSET_FILES[name]
    body = (STATIC_DIR / relative).read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:20]
    return Asset(body, gzip.compress(body, 6, mtime=0), f'"{digest}"', media_type)


def _tag_of_files() -> str:
    digest = hashlib.sha256()
    for relative, _ in ASSET_FILES.values():
        digest.update((STATIC_DIR / relative).read_bytes())
    return digest.hexdigest()[:12]


class PackagedAssets:
    """One app's docs assets, each read and compressed in a worker thread the first time."""

    def __init__(self) -> None:
        self._loaded: dict[str, Asset] = {}
        self._tag: str | None = None

    async def get(self, name: str) -> Asset:
        """The packaged asset `name` (a key of ASSET_FILES)."""
        found = self._loaded.get(name)
        if found is None:
            found = await asyncio.to_thread(_load_asset, name)
            self._loaded[name] = found
        return found

    async def tag(self) -> str:
        """A hash of every asset, put in their URLs so a long browser cache stays correct."""
        if self._tag is None:
            self._tag = await asyncio.to_thread(_tag_of_files)
        return self._tag


SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - Swagger UI</title>
<link rel="stylesheet" href="docs/static/swagger-ui.css?v={tag}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="openapi.json"></div>
<script src="docs/static/swagger-ui-bundle.js?v={tag}"></script>
<script src="docs/static/swagger-init.js?v={tag}"></script>
</body>
</html>
"""

REDOC_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - ReDoc</title>
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<redoc spec-url="openapi.json"></redoc>
<script src="docs/static/redoc.standalone.js?v={tag}"></script>
</body>
</html>
"""

_PAGE_HEADERS = {
    "Cache-Control": PAGE_CACHE_CONTROL,
    "Content-Security-Policy": PAGE_CSP,
    "Referrer-Policy": "no-referrer",
}


def _not_modified(request: Request, etag: str) -> bool:
    wanted = request.headers.get("if-none-match", "")
    return any(t.strip() in (etag, "W/" + etag, "*") for t in wanted.split(","))


@hookimpl
def jacscale_routes(app: AppContext) -> list[Any]:
    """/openapi.json, /docs, /redoc and their assets; none of them when docs are disabled."""
    if not app.settings.api.docs_enabled:
        return []
    assets = PackagedAssets()

    async def openapi_json(request: Request) -> Response:
        body, etag = openapi_bytes(app, str(request.scope.get("root_path", "")))
        headers = {"ETag": etag, "Cache-Control": PAGE_CACHE_CONTROL}
        if _not_modified(request, etag):
            return Response(status_code=304, headers=headers)
        return Response(body, headers=headers, media_type="application/json")

    async def page(template: str) -> Response:
        title = html.escape(api_info(app)["title"])
        body = template.format(title=title, tag=await assets.tag())
        return Response(body, headers=_PAGE_HEADERS, media_type="text/html; charset=utf-8")

    async def swagger(request: Request) -> Response:
        return await page(SWAGGER_PAGE)

    async def redoc(request: Request) -> Response:
        return await page(REDOC_PAGE)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSET_FILES:
            raise not_found(f"No docs asset {name}")
        found = await assets.get(name)
        gz = "gzip" in request.headers.get("accept-encoding", "").lower()
        etag = found.etag[:-1] + '-gz"' if gz else found.etag
        headers = {
            "Cache-Control": ASSET_CACHE_CONTROL,
            "ETag": etag,
            "Vary": "Accept-Encoding",
        }
        if _not_modified(request, etag):
            return Response(status_code=304, headers=headers)
        if gz:
            headers["Content-Encoding"] = "gzip"
            return Response(found.gzipped, headers=headers, media_type=found.media_type)
        return Response(found.body, headers=headers, media_type=found.media_type)

    return [
        Route("/openapi.json", openapi_json, methods=["GET"], name="openapi"),
        Route("/docs", swagger, methods=["GET"], name="swagger_ui"),
        Route("/redoc", redoc, methods=["GET"], name="redoc"),
        Route("/docs/static/{name}", static, methods=["GET"], name="docs_static"),
    ]
