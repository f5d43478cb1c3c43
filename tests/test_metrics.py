"""jacscale-prometheus in one process: config, names, labels, access to /metrics."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jacscale_prometheus import multiproc
from jacscale_prometheus.config import SECTION, MetricsConfig, resolve, sanitize_namespace
from jacscale_prometheus.endpoint import check_access, is_direct_loopback
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from jacscale_core.config import ConfigError, load_settings
from jacscale_core.testing import TestApp, free_port
from jacscale_core.testing.header_auth import HeaderAuth
from tests.fixtures.servers import EXAMPLES, TEST_APPS

ALICE = {"X-Test-User": "alice"}
TOKEN = "s3cret-metrics-token-0123"


def app_with(base: Path, toml: str, source: Path = TEST_APPS / "kernel_app.jac") -> Path:
    """A copy of a test program beside its own jac.toml."""
    base.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, base / "app.jac")
    (base / "jac.toml").write_text(toml)
    return base / "app.jac"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition as {(name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    """One sample's value, or None when absent."""
    return samples(text).get((name, tuple(sorted(labels.items()))))


# --------------------------------------------------------------------------
# Configuration (no app needed)
# --------------------------------------------------------------------------


def settings_for(tmp_path: Path, toml: str) -> Any:
    (tmp_path / "app.jac").write_text("")
    (tmp_path / "jac.toml").write_text(toml)
    return load_settings(tmp_path / "app.jac", {SECTION: MetricsConfig})


def test_seed_defaults(tmp_path: Path) -> None:
    config = resolve(settings_for(tmp_path, ""), {})
    assert config.enabled is False
    assert config.endpoint == "/metrics"
    assert config.namespace == "jac_scale"
    assert config.walker_metrics is False
    assert config.buckets == (
        0.005,
        0.01,
        0.025,
        0.05,
        0.075,
        0.1,
        0.25,
        0.5,
        0.75,
        1.0,
        2.5,
        5.0,
        10.0,
    )
    assert config.token is None and config.access_mode == "loopback"


def test_namespace_falls_back_to_the_sanitised_kubernetes_namespace(tmp_path: Path) -> None:
    toml = '[plugins.scale.kubernetes]\nnamespace = "team-a.prod"\n'
    assert resolve(settings_for(tmp_path, toml), {}).namespace == "team_a_prod"
    assert resolve(settings_for(tmp_path, ""), {"K8s_NAMESPACE": "9-lives"}).namespace == "_9_lives"
    explicit = '[plugins.scale.metrics]\nnamespace = "mine"\n' + toml
    assert resolve(settings_for(tmp_path, explicit), {"K8s_NAMESPACE": "x"}).namespace == "mine"
    assert sanitize_namespace("---") == "jac_scale"


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('namespace = "my-app"', "namespace"),
        ("histogram_buckets = []", "histogram_buckets"),
        ("histogram_buckets = [1.0, 0.5]", "histogram_buckets"),
        ('endpoint = "metrics"', "endpoint"),
        ('bind = "9100"', "bind"),
        ('bind = "127.0.0.1:99999"', "bind"),
        ('token = "short"', "token"),
        ('enabled = "yes"', "enabled"),
    ],
)
def test_bad_settings_stop_start_up_naming_the_key(tmp_path: Path, toml: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        resolve(settings_for(tmp_path, f"[plugins.scale.metrics]\n{toml}\n"), {})


def test_token_comes_from_the_environment_first(tmp_path: Path) -> None:
    toml = f'[plugins.scale.metrics]\ntoken = "{TOKEN}"\n'
    assert resolve(settings_for(tmp_path, toml), {}).token == TOKEN
    env_token = "from-the-environment-123"
    assert resolve(settings_for(tmp_path, toml), {"METRICS_TOKEN": env_token}).token == env_token
    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        resolve(settings_for(tmp_path, ""), {"METRICS_TOKEN": "short"})


def test_loopback_rule() -> None:
    assert is_direct_loopback({"client": ("127.0.0.1", 5), "headers": []})
    assert is_direct_loopback({"client": ("::1", 5), "headers": []})
    assert not is_direct_loopback({"client": ("10.1.2.3", 5), "headers": []})
    assert not is_direct_loopback({"client": ("testclient", 5), "headers": []})
    assert not is_direct_loopback({"client": None, "headers": []})
    proxied = {"client": ("127.0.0.1", 5), "headers": [(b"x-forwarded-for", b"1.2.3.4")]}
    assert not is_direct_loopback(proxied)


def test_bearer_check(tmp_path: Path) -> None:
    config = resolve(settings_for(tmp_path, f'[plugins.scale.metrics]\ntoken = "{TOKEN}"\n'), {})
    local = {"client": ("127.0.0.1", 1)}
    assert check_access({**local, "headers": []}, config) is not None  # even locally
    wrong = [(b"authorization", b"Bearer " + b"x" * len(TOKEN))]
    assert check_access({**local, "headers": wrong}, config) is not None
    right = [(b"authorization", f"Bearer {TOKEN}".encode())]
    assert check_access({**local, "headers": right}, config) is None


# --------------------------------------------------------------------------
# The multiprocess directory
# --------------------------------------------------------------------------


def test_single_worker_uses_no_directory() -> None:
    env: dict[str, str] = {}
    assert multiproc.choose_dir(1, env) is None
    assert env == {}


def test_an_operators_directory_is_used_as_is(tmp_path: Path) -> None:
    (tmp_path / "keep.db").write_text("x")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    assert multiproc.choose_dir(1, env) == tmp_path
    assert (tmp_path / "keep.db").exists()
    with pytest.raises(ConfigError):
        multiproc.choose_dir(2, {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing")})


def test_the_supervisor_owns_a_fresh_directory_and_removes_dead_ones() -> None:
    base = multiproc.base_dir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)
    stale = base / str(gone.pid)
    stale.mkdir(exist_ok=True)
    mine = base / str(os.getpid())
    mine.mkdir(exist_ok=True)
    (mine / "counter_1.db").write_text("old")
    env: dict[str, str] = {}
    try:
        chosen = multiproc.choose_dir(2, env)
        assert chosen == mine and chosen.is_dir()
        assert list(chosen.iterdir()) == []  # wiped: a new server starts from zero
        assert not stale.exists()
        assert env == {
            "PROMETHEUS_MULTIPROC_DIR": str(mine),
            "JACSCALE_METRICS_OWNER": str(os.getpid()),
        }
        assert oct(base.stat().st_mode & 0o777) == "0o700"
    finally:
        shutil.rmtree(mine, ignore_errors=True)


def test_live_gauges_of_dead_workers_are_dropped(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)
    (tmp_path / f"gauge_livesum_{gone.pid}.db").write_bytes(b"")
    (tmp_path / f"gauge_livesum_{os.getpid()}.db").write_bytes(b"")
    (tmp_path / f"counter_{gone.pid}.db").write_bytes(b"")
    assert multiproc.mark_dead_workers(tmp_path) == [gone.pid]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([f"gauge_livesum_{os.getpid()}.db", f"counter_{gone.pid}.db"])


# --------------------------------------------------------------------------
# Served
# --------------------------------------------------------------------------


def test_disabled_by_default_no_route_and_no_counting(tmp_path: Path) -> None:
    app = app_with(tmp_path / "app", "", EXAMPLES / "todo" / "app.jac")
    with TestApp(app, tmp_path / "data", plugins=[HeaderAuth()]) as client:
        assert client.get("/metrics").status_code == 404
        assert "prometheus.metrics" not in client.app.state.jacscale.state  # type: ignore[attr-defined]


PUBLIC_TOML = """
[plugins.scale.metrics]
enabled = true
public = true
namespace = "kt"
walker_metrics = true
histogram_buckets = [0.1, 0.3, 5.0]
"""


@pytest.fixture(scope="module")
def public_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    base = tmp_path_factory.mktemp("metrics-public")
    app = app_with(base / "app", PUBLIC_TOML)
    with TestApp(app, base / "data", plugins=[HeaderAuth()]) as client:
        yield client


def test_metric_names_labels_and_route_templates(public_app: TestClient) -> None:
    client = public_app
    made = client.post("/walker/make_item", json={"name": "x"})
    item = made.json()["data"]["reports"][0][0]["_jac_id"]
    for _ in range(2):
        assert client.post(f"/walker/bump/{item}", json={"by": 1}).status_code == 200
    assert client.get("/items/abc?limit=2").status_code == 200
    assert client.get("/items/def").status_code == 200
    assert client.post("/walker/make_item", json={"name": 5}).status_code == 422
    for path in ("/nope", "/nope/again", "/walker/missing"):
        assert client.post(path).status_code == 404
    text = client.get("/metrics").text
    assert (
        value(
            text,
            "kt_http_requests_total",
            method="POST",
            path="/walker/make_item",
            status_code="200",
        )
        == 1
    )
    assert (
        value(
            text,
            "kt_http_requests_total",
            method="POST",
            path="/walker/make_item",
            status_code="422",
        )
        == 1
    )
    bump = {"method": "POST", "path": "/walker/bump/{node_id}"}
    assert value(text, "kt_http_requests_total", status_code="200", **bump) == 2
    assert (
        value(text, "kt_http_requests_total", method="GET", path="/items/{name}", status_code="200")
        == 2
    )
    assert (
        value(text, "kt_http_requests_total", method="POST", path="<unmatched>", status_code="404")
        == 3
    )
    assert value(text, "kt_http_request_duration_seconds_count", **bump) == 2
    assert value(text, "kt_http_request_duration_seconds_bucket", le="0.3", **bump) is not None
    assert value(text, "kt_http_requests_in_progress") == 0
    # No raw URL ever becomes a label value.
    assert item not in text and "abc" not in text and "/nope" not in text


def test_metrics_endpoint_is_not_counted(public_app: TestClient) -> None:
    client = public_app
    for _ in range(3):
        client.get("/metrics")
    text = client.get("/metrics").text
    assert 'path="/metrics"' not in text


def test_walker_histogram_by_name_and_outcome(public_app: TestClient) -> None:
    client = public_app
    assert client.post("/walker/make_item", json={"name": "ok"}).status_code == 200
    assert client.post("/walker/make_item", json={"name": "bad", "fail": True}).status_code == 500
    text = client.get("/metrics").text
    ok = value(text, "kt_walker_duration_seconds_count", walker_name="make_item", success="true")
    failed = value(
        text, "kt_walker_duration_seconds_count", walker_name="make_item", success="false"
    )
    assert ok is not None and ok >= 1
    assert failed == 1
    assert (
        value(
            text,
            "kt_walker_duration_seconds_bucket",
            walker_name="make_item",
            success="false",
            le="5.0",
        )
        == 1
    )
    assert (
        value(
            text,
            "kt_http_requests_total",
            method="POST",
            path="/walker/make_item",
            status_code="500",
        )
        == 1
    )


def test_in_progress_counts_running_requests(public_app: TestClient) -> None:
    import threading

    client = public_app
    slow = threading.Thread(target=lambda: client.post("/walker/sleepy", json={"seconds": 1.5}))
    slow.start()
    try:
        seen = 0.0
        for _ in range(50):
            seen = value(client.get("/metrics").text, "kt_http_requests_in_progress") or 0.0
            if seen:
                break
            threading.Event().wait(0.05)
        assert seen == 1
    finally:
        slow.join(timeout=30)
    assert value(client.get("/metrics").text, "kt_http_requests_in_progress") == 0


def test_openapi_lists_metrics_under_monitoring(public_app: TestClient) -> None:
    spec = public_app.get("/openapi.json").json()
    assert spec["paths"]["/metrics"]["get"]["tags"] == ["Monitoring"]


def test_default_access_is_local_only_and_walker_metrics_off(tmp_path: Path) -> None:
    toml = '[plugins.scale.metrics]\nenabled = true\nendpoint = "/internal/metrics"\n'
    app = app_with(tmp_path / "app", toml)
    with TestApp(app, tmp_path / "data") as client:
        assert client.post("/walker/items").status_code == 200
        denied = client.get("/internal/metrics")  # TestClient is not a loopback client
        assert denied.status_code == 403
        assert "token" in denied.json()["error"]["message"]
        assert denied.json()["meta"]["request_id"] == denied.headers["x-request-id"]
        assert client.get("/metrics").status_code == 404
        local = TestClient(client.app, client=("127.0.0.1", 4000))
        text = local.get("/internal/metrics").text
        assert (
            value(
                text,
                "jac_scale_http_requests_total",
                method="POST",
                path="/walker/items",
                status_code="200",
            )
            == 1
        )
        assert "walker_duration_seconds" not in text
        proxied = local.get("/internal/metrics", headers={"X-Forwarded-For": "8.8.8.8"})
        assert proxied.status_code == 403


def test_bearer_token_protects_the_endpoint(tmp_path: Path) -> None:
    app = app_with(tmp_path / "app", "[plugins.scale.metrics]\nenabled = true\n")
    with TestApp(app, tmp_path / "data", env={"METRICS_TOKEN": TOKEN}) as client:
        missing = client.get("/metrics")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert TOKEN not in missing.text
        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")
        assert "jac_scale_http_requests_total" in ok.text


def test_separate_bind_serves_metrics_on_its_own_port(tmp_path: Path) -> None:
    port = free_port()
    toml = f'[plugins.scale.metrics]\nenabled = true\nbind = "127.0.0.1:{port}"\n'
    app = app_with(tmp_path / "app", toml)
    with TestApp(app, tmp_path / "data") as client:
        assert client.get("/metrics").status_code == 404  # not on the main port
        assert client.post("/walker/items").status_code == 200
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert (
            value(
                text,
                "jac_scale_http_requests_total",
                method="POST",
                path="/walker/items",
                status_code="200",
            )
            == 1
        )
        assert (
            value(
                text,
                "jac_scale_http_requests_total",
                method="GET",
                path="<unmatched>",
                status_code="404",
            )
            == 1
        )
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
