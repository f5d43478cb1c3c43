"""Settings: priority order, unknown keys reported, bad values named, limits configurable."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jacscale_core.config import ConfigError, load_settings
from jacscale_core.testing import TestApp, free_port
from tests.fixtures.servers import EXAMPLES


def app_in(tmp_path: Path, toml: str | None = None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    app = tmp_path / "app.jac"
    shutil.copy(EXAMPLES / "todo" / "app.jac", app)
    if toml is not None:
        (tmp_path / "jac.toml").write_text(toml)
    return app


def test_priority_cli_over_env_over_toml_over_default(tmp_path: Path) -> None:
    app = app_in(tmp_path / "with", "[plugins.scale.server]\nport = 7001\nworkers = 3\nhost = '10.0.0.1'\n")
    s = load_settings(app, env={})
    assert (s.server.port, s.server.workers, s.server.host) == (7001, 3, "10.0.0.1")
    s = load_settings(app, env={"JACSCALE_PORT": "7002"})
    assert (s.server.port, s.server.workers) == (7002, 3)
    s = load_settings(app, env={"JACSCALE_PORT": "7002"}, cli={"port": 7003})
    assert s.server.port == 7003
    assert load_settings(app_in(tmp_path / "bare"), env={}).server.port == 8000


def test_unknown_keys_and_sections_are_reported(tmp_path: Path) -> None:
    app = app_in(tmp_path, "[plugins.scale.api]\nenvelop = false\n[plugins.scale.nothing]\nx = 1\n")
    warnings = load_settings(app, env={}).warnings
    assert any("unknown key [plugins.scale.api] envelop" in w for w in warnings)
    assert any("unknown section [plugins.scale.nothing]" in w for w in warnings)


@pytest.mark.parametrize(
    ("toml", "env", "named"),
    [
        ("[plugins.scale.server]\nport = 'eighty'\n", {}, "port"),
        ("", {"JACSCALE_WORKERS": "many"}, "workers"),
        ("[plugins.scale.server]\nworkers = 0\n", {}, "workers"),
        ("[plugins.scale.server]\nrecord_cache_size = 0\n", {}, "record_cache_size"),
        ("", {"JACSCALE_RECORD_CACHE_SIZE": "lots"}, "record_cache_size"),
        ("[plugins.scale.api\n", {}, "jac.toml"),
    ],
)
def test_bad_values_stop_start_up_naming_the_key(
    tmp_path: Path, toml: str, env: dict[str, str], named: str
) -> None:
    app = app_in(tmp_path, toml)
    with pytest.raises(ConfigError, match=named):
        load_settings(app, env=env)


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    app = app_in(tmp_path, "[plugins.scale.server]\nport = 'eighty'\n")
    proc = subprocess.run(
        [sys.executable, "-m", "jacscale_core.cli", "serve", str(app), "--port", str(free_port())],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: configuration:") and "port" in proc.stderr


def test_body_limit_is_configurable(tmp_path: Path) -> None:
    app = app_in(tmp_path)
    with TestApp(app, tmp_path / "data", env={"JACSCALE_MAX_BODY_BYTES": "64"}) as c:
        r = c.post("/walker/ping", content=b'{"x": "' + b"a" * 80 + b'"}',
                   headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
        assert c.post("/walker/ping", json={}).status_code == 200


def test_record_cache_size_bounds_the_worker_cache(tmp_path: Path) -> None:
    app = app_in(tmp_path, "[plugins.scale.server]\nrecord_cache_size = 50\n")
    assert load_settings(app, env={}).server.record_cache_size == 50
    env = {"JACSCALE_RECORD_CACHE_SIZE": "3"}
    assert load_settings(app, env=env).server.record_cache_size == 3
    with TestApp(app, tmp_path / "data", env=env) as c:
        creds = {"email": "cache@example.com", "password": "cache-Password-123"}
        assert c.post("/user/register", json=creds).status_code in (200, 201)
        token = c.post("/user/login", json=creds).json()["data"]["token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert c.post("/walker/bulk_add", json={"count": 10}, headers=auth).status_code == 200
        listed = c.post("/walker/list_todos", json={}, headers=auth).json()["data"]["reports"][0]
        cache = c.app.state.jacscale.executor.tier.cache  # type: ignore[attr-defined]
        assert (cache.capacity, len(listed)) == (3, 10)  # a root and 20 anchors read through it
        assert len(cache) <= 3


def test_docs_can_be_switched_off_and_cors_reflects_only_listed_origins(tmp_path: Path) -> None:
    app = app_in(
        tmp_path,
        "[plugins.scale.api]\ndocs_enabled = false\ncors_allow_origins = ['https://ok.example']\n",
    )
    with TestApp(app, tmp_path / "data") as c:
        assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 404
        ok = c.options("/walker/ping", headers={"Origin": "https://ok.example",
                                                "Access-Control-Request-Method": "POST"})  # fmt: skip
        assert ok.headers.get("access-control-allow-origin") == "https://ok.example"
        evil = c.post("/walker/ping", json={}, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in evil.headers
