"""`jacscale serve --server hypercorn|uvicorn|granian`: choosing the server, and what every server does.

Each installed server serves the same program over a real socket: walkers,
request ids, body limits (413 from Content-Length and from a chunked body),
WebSockets, Server-Sent Events. The longer socket tests (shutdown, streaming,
multi-worker, connection hardening) run once per server where the servers differ, in
their own modules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from jacscale_core.config import ConfigError
from jacscale_core.launch import DEFAULT_SERVER, SERVERS, installed_servers, resolve_server
from jacscale_core.testing import running_server
from tests.fixtures.servers import TEST_APPS

APP = TEST_APPS / "stream_app.jac"
INSTALLED = installed_servers()


def test_the_servers_we_ship_are_installed() -> None:
    assert INSTALLED == list(SERVERS)


def test_the_flag_wins_then_the_environment_then_jac_toml_then_the_default(tmp_path: Path) -> None:
    app = tmp_path / "app.jac"
    app.write_text("walker :pub w { can go with Root entry { report 1; } }\n")
    assert resolve_server(str(app), None, env={}) == DEFAULT_SERVER
    (tmp_path / "jac.toml").write_text('[plugins.scale.server]\nserver = "granian"\n')
    assert resolve_server(str(app), None, env={}) == "granian"
    assert resolve_server(str(app), None, env={"JACSCALE_SERVER": "uvicorn"}) == "uvicorn"
    assert resolve_server(str(app), "hypercorn", env={"JACSCALE_SERVER": "uvicorn"}) == "hypercorn"


@pytest.mark.parametrize(
    ("flag", "env", "toml", "named"),
    [
        ("nginx", {}, "", "--server"),
        (None, {"JACSCALE_SERVER": "gunicorn"}, "", "JACSCALE_SERVER"),
        (None, {}, '[plugins.scale.server]\nserver = "daphne"\n', "[plugins.scale.server] server"),
        (None, {}, "[plugins.scale.server]\nserver = 3\n", "[plugins.scale.server] server"),
    ],
)
def test_an_unknown_server_is_refused_naming_where_it_came_from(
    tmp_path: Path, flag: str | None, env: dict[str, str], toml: str, named: str
) -> None:
    app = tmp_path / "app.jac"
    app.write_text("walker :pub w { can go with Root entry { report 1; } }\n")
    if toml:
        (tmp_path / "jac.toml").write_text(toml)
    with pytest.raises(ConfigError) as info:
        resolve_server(str(app), flag, env=env)
    assert named in str(info.value) and "hypercorn, uvicorn, granian" in str(info.value)


def test_jacscale_serve_refuses_an_unknown_server_before_loading_anything(tmp_path: Path) -> None:
    app = tmp_path / "app.jac"
    app.write_text("walker :pub w { can go with Root entry { report 1; } }\n")
    cmd = [
        sys.executable,
        "-m",
        "jacscale_core.cli",
        "serve",
        str(app),
        "--data-dir",
        str(tmp_path / "d"),
    ]
    env = {**os.environ, "JACSCALE_SERVER": "tornado"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert (
        "JACSCALE_SERVER must be one of hypercorn, uvicorn, granian, got 'tornado'" in done.stderr
    )
    assert not (tmp_path / "d").exists()  # nothing was opened or written
    flag = subprocess.run([*cmd, "--server", "tornado"], capture_output=True, text=True, timeout=60)
    assert flag.returncode == 2 and "invalid choice: 'tornado'" in flag.stderr


@pytest.fixture(scope="module", params=INSTALLED)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """The stream test program under each installed server, with a 4 KiB body limit."""
    data = tmp_path_factory.mktemp(f"serve-{request.param}")
    env = {"JACSCALE_SERVER": request.param, "JACSCALE_MAX_BODY_BYTES": "4096"}
    with running_server(APP, data, env=env, start_timeout=120) as base:
        yield request.param, base


def test_each_server_answers_walkers_with_request_ids(served: tuple[str, str]) -> None:
    name, base = served
    r = httpx.post(base + "/function/numbers", json={"count": 2}, headers={"accept": "application/json",
                   "x-request-id": f"rid-{name}"}, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == f"rid-{name}"
    assert r.json()["meta"]["request_id"] == f"rid-{name}"
    assert r.json()["data"]["result"] == [{"i": 0}, {"i": 1}]


def test_each_server_refuses_a_body_over_the_limit(served: tuple[str, str]) -> None:
    _, base = served
    too_big = {"count": 1, "pad": "x" * 5000}
    r = httpx.post(base + "/function/numbers", json=too_big, timeout=30)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield json.dumps(too_big).encode()

    chunked = httpx.post(base + "/function/numbers", content=chunks(),
                         headers={"content-type": "application/json"}, timeout=30)  # fmt: skip
    assert chunked.status_code == 413, chunked.text
    # The server still answers afterwards.
    assert httpx.get(base + "/healthz", timeout=10).status_code == 200


def test_each_server_streams_events(served: tuple[str, str]) -> None:
    _, base = served
    with httpx.stream("POST", base + "/function/numbers", json={"count": 3}, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    assert [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")][:3] == [
        {"i": 0}, {"i": 1}, {"i": 2},
    ]  # fmt: skip


def test_each_server_serves_websocket_walkers(served: tuple[str, str]) -> None:
    _, base = served
    with connect(base.replace("http://", "ws://") + "/ws/ws_numbers", open_timeout=10) as ws:
        ws.send(json.dumps({"count": 2}))
        frames = [json.loads(ws.recv(timeout=10)) for _ in range(3)]
    assert [(f["event"], f["data"]) for f in frames] == [
        ("data", {"i": 0}),
        ("data", {"i": 1}),
        ("end", {}),
    ]
