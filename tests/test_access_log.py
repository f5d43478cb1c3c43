"""Access logs: one structured line per request, never a token, JSON on demand."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from jacscale_core.logs import (
    BatchingStreamHandler,
    EscapeControlsFilter,
    HumanFormatter,
    JsonFormatter,
    sole_batching_handler,
)
from jacscale_core.testing import TestApp, running_server
from jacscale_ext import access_log
from tests.fixtures.servers import TEST_APPS

ALICE = {"X-Test-User": "alice"}
SECRET = "sup3r-s3cret-value"


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Captures the jacscale.access logger."""
    caplog.set_level(logging.INFO, logger="jacscale.access")
    caplog.clear()
    return caplog


def lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The access records captured so far."""
    return [r for r in caplog.records if r.name == "jacscale.access"]


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record as a human line and as JSON (what either format would print)."""
    human = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    machine = JsonFormatter()
    ours = [r for r in caplog.records if not r.name.startswith("httpx")]  # the test client's own
    return "\n".join(human.format(r) + "\n" + machine.format(r) for r in ours)


def test_one_line_per_request_with_the_structured_fields(
    kernel_client: TestClient, access: pytest.LogCaptureFixture
) -> None:
    made = kernel_client.post(
        "/walker/make_item", json={"name": "x"}, headers={"X-Request-Id": "rid-1"}
    )
    assert made.status_code == 200
    access.clear()
    made = kernel_client.post(
        "/walker/make_item", json={"name": "y"}, headers={**ALICE, "X-Request-Id": "rid-1"}
    )
    item = made.json()["data"]["reports"][0][-1]["_jac_id"]
    bumped = kernel_client.post(f"/walker/bump/{item}", headers={**ALICE, "X-Request-Id": "rid-2"})
    assert bumped.status_code == 200
    first, second = lines(access)[:2]
    assert (first.request_id, first.method, first.route, first.status) == (  # type: ignore[attr-defined]
        "rid-1", "POST", "/walker/make_item", 200,
    )  # fmt: skip
    assert first.principal == "alice"  # type: ignore[attr-defined]
    assert second.route == "/walker/bump/{node_id}"  # type: ignore[attr-defined]
    assert second.principal == "alice"  # type: ignore[attr-defined]
    kernel_client.post("/walker/items")
    assert lines(access)[-1].principal is None  # type: ignore[attr-defined]
    assert second.client == "testclient"  # type: ignore[attr-defined]
    assert isinstance(second.duration_ms, float) and second.duration_ms >= 0  # type: ignore[attr-defined]
    assert not hasattr(second, "path")  # matched routes log the template only
    assert item not in everything_logged(access)


def test_human_and_json_formats(
    kernel_client: TestClient, access: pytest.LogCaptureFixture
) -> None:
    kernel_client.post("/walker/mine", headers={**ALICE, "X-Request-Id": "rid-h"})
    [record] = lines(access)
    human = record.getMessage()
    assert re.fullmatch(
        r'testclient "POST /walker/mine" 200 \d+\.\dms user=alice rid=rid-h', human
    ), human
    data = json.loads(JsonFormatter().format(record))
    assert data["logger"] == "jacscale.access" and data["level"] == "info"
    assert {k: data[k] for k in ("request_id", "method", "route", "status", "principal")} == {
        "request_id": "rid-h", "method": "POST", "route": "/walker/mine", "status": 200, "principal": "alice",
    }  # fmt: skip
    assert isinstance(data["duration_ms"], float)


def test_query_strings_and_credentials_never_reach_the_log(
    kernel_client: TestClient, access: pytest.LogCaptureFixture
) -> None:
    kernel_client.get(f"/items/abc?token={SECRET}&limit=1")
    kernel_client.get(f"/nowhere?token={SECRET}")
    kernel_client.post("/walker/mine", headers={"Authorization": f"Bearer {SECRET}"})
    kernel_client.post("/walker/mine", headers={"X-Api-Key": SECRET, "Cookie": f"s={SECRET}"})
    kernel_client.post("/user/login", json={"email": "a@b.c", "password": SECRET})
    assert len(lines(access)) == 5
    assert SECRET not in everything_logged(access)


def test_unmatched_paths_log_the_path_without_query(
    kernel_client: TestClient, access: pytest.LogCaptureFixture
) -> None:
    kernel_client.get("/no/such/place?x=1")
    [record] = lines(access)
    assert record.route == "<unmatched>" and record.status == 404  # type: ignore[attr-defined]
    assert record.path == "/no/such/place"  # type: ignore[attr-defined]
    kernel_client.get("/" + "a" * 5000)
    assert len(lines(access)[-1].path) == 200  # type: ignore[attr-defined]


def test_errors_are_logged_with_their_status(
    kernel_client: TestClient, access: pytest.LogCaptureFixture
) -> None:
    kernel_client.post("/walker/make_item", json={"name": "x", "fail": True})
    kernel_client.post("/walker/typed", json={"count": "no"})
    kernel_client.post("/walker/mine")
    kernel_client.post("/walker/mine", headers={"X-Test-User": "!bad"})
    kernel_client.get("/walker/items")
    assert [r.status for r in lines(access)] == [500, 422, 401, 401, 405]  # type: ignore[attr-defined]


def test_health_probes_are_not_logged_by_default(
    kernel_client: TestClient, access: pytest.LogCaptureFixture
) -> None:
    kernel_client.get("/healthz")
    kernel_client.get("/readyz")
    assert lines(access) == []


def test_route_template_helpers() -> None:
    from starlette.routing import Mount, Route, Router

    from jacscale_ext.access_log import method_label, route_template

    def endpoint(request: Any) -> None:
        return None

    inner = Route("/things/{id}", endpoint)
    router = Router(routes=[Route("/walker/w/{node_id}", endpoint, methods=["POST"])])

    def scope(path: str, method: str = "POST", **extra: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "path": path,
            "root_path": "",
            "method": method,
            "router": router,
            **extra,
        }

    # Recorded by the router (Starlette >= 1.0) or found again by matching.
    assert route_template(scope("/x", route=inner)) == "/things/{id}"
    assert route_template(scope("/walker/w/123")) == "/walker/w/{node_id}"
    assert route_template(scope("/walker/w/123", "GET")) == "/walker/w/{node_id}"  # a 405
    assert route_template(scope("/elsewhere")) == "<unmatched>"
    # Inside a mount the prefix comes back; a bare mount is its prefix plus {path}.
    mounted = scope("/api/things/1", route=inner, root_path="/api")
    assert route_template(mounted, root_path="") == "/api/things/{id}"
    assert (
        route_template(scope("/static/a.css", route=Mount("/static", app=endpoint)))
        == "/static/{path}"
    )
    assert method_label("GET") == "GET" and method_label("BREW") == "OTHER"


def _app(base: Path, toml: str) -> Path:
    base.mkdir(parents=True)
    shutil.copy(TEST_APPS / "kernel_app.jac", base / "app.jac")
    (base / "jac.toml").write_text(toml)
    return base / "app.jac"


def test_configurable(tmp_path: Path, access: pytest.LogCaptureFixture) -> None:
    off = _app(tmp_path / "off", "[plugins.scale.access_log]\nenabled = false\n")
    with TestApp(off, tmp_path / "d1") as client:
        client.post("/walker/items")
    assert lines(access) == []
    some = _app(
        tmp_path / "some", '[plugins.scale.access_log]\nexclude_paths = ["/walker/items"]\n'
    )
    with TestApp(some, tmp_path / "d2") as client:
        client.post("/walker/items")
        client.get("/healthz")
    assert [r.route for r in lines(access)] == ["/healthz"]  # type: ignore[attr-defined]


def test_served_with_log_format_json(tmp_path: Path) -> None:
    app = _app(tmp_path / "app", "")
    with running_server(app, tmp_path / "data", extra_args=["--log-format", "json"]) as base:
        answer = httpx.post(
            base + f"/walker/items?token={SECRET}", headers={"X-Request-Id": "srv-1"}, timeout=30
        )
        assert answer.status_code == 200 and answer.headers["x-request-id"] == "srv-1"
        too_big = httpx.post(
            base + "/walker/typed",
            content=b"x" * (2 * 1024 * 1024),
            headers={"content-type": "application/json", "X-Request-Id": "srv-413"},
            timeout=30,
        )
        assert too_big.status_code == 413 and too_big.headers["x-request-id"] == "srv-413"
        assert too_big.json()["meta"]["request_id"] == "srv-413"
    log_text = next((tmp_path / "data").glob("server-*.log")).read_text()
    records: list[dict[str, Any]] = []
    for line in log_text.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    access = [r for r in records if r.get("logger") == "jacscale.access"]
    [served] = [r for r in access if r["request_id"] == "srv-1"]
    assert served["route"] == "/walker/items" and served["status"] == 200
    assert served["client"] == "127.0.0.1"
    assert SECRET not in log_text


def test_requests_refused_for_size_are_logged(
    kernel_client: TestClient, access: pytest.LogCaptureFixture
) -> None:
    body = b"x" * (2 * 1024 * 1024)
    refused = kernel_client.post(
        "/walker/typed",
        content=body,
        headers={"content-type": "application/json", "X-Request-Id": "rid-413"},
    )
    assert refused.status_code == 413
    [record] = lines(access)
    assert (record.status, record.request_id) == (413, "rid-413")  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", ["human", "json"])
def test_the_default_set_up_writes_the_line_a_record_would(fmt: str) -> None:
    """With `configure_logging`'s handler alone, access lines skip the LogRecord: same text."""
    stream = io.StringIO()
    handler = BatchingStreamHandler(stream, interval=3600)
    handler.addFilter(EscapeControlsFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    log = access_log.log
    saved = (log.handlers[:], log.propagate, log.level)
    log.handlers[:], log.propagate = [handler], False
    log.setLevel(logging.INFO)
    scope: dict[str, Any] = {
        "type": "http", "method": "POST", "path": "/walker/x\x1b[31m\nforged", "root_path": "",
        "client": ("10.0.0.7", 5000), "state": {"request_id": "rid-1", "trace_id": "t.1"},
    }  # fmt: skip
    try:
        assert sole_batching_handler(log) is handler
        access_log.write_line(scope, "", 404, 0.01234)  # the fast path
        log.addFilter(lambda record: True)  # anything else: a record, through the handler
        assert sole_batching_handler(log) is None
        access_log.write_line(scope, "", 404, 0.01234)
    finally:
        log.filters.clear()
        log.handlers[:], log.propagate = saved[0], saved[1]
        log.setLevel(saved[2])
        handler.close()
    fast, slow = stream.getvalue().splitlines()
    if fmt == "json":
        fast_data, slow_data = json.loads(fast), json.loads(slow)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", fast_data.pop("ts"))
        slow_data.pop("ts")
        assert fast_data == slow_data
        assert fast_data["path"] == "/walker/x\\x1b[31m\\x0aforged" and fast_data["trace_id"] == "t.1"
    else:
        stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
        assert re.match(stamp, fast) and re.match(stamp, slow)
        assert fast[24:] == slow[24:]
        assert fast[24:] == (
            'INFO jacscale.access: 10.0.0.7 "POST /walker/x\\x1b[31m\\x0aforged" 404 12.3ms '
            "user=- rid=rid-1 trace=t.1"
        )


def test_another_handler_or_formatter_gets_records() -> None:
    log = logging.getLogger("test.access.sole")
    log.propagate = False
    batching = BatchingStreamHandler(io.StringIO(), interval=3600)
    try:
        log.handlers[:] = [batching]
        batching.setFormatter(logging.Formatter("%(message)s"))  # an operator's own format
        assert sole_batching_handler(log) is None
        batching.setFormatter(JsonFormatter())
        assert sole_batching_handler(log) is batching
        log.handlers.append(logging.StreamHandler(io.StringIO()))
        assert sole_batching_handler(log) is None
        log.handlers[:] = [batching]
        batching.setLevel(logging.WARNING)
        assert sole_batching_handler(log) is None
    finally:
        log.handlers.clear()
        batching.close()
