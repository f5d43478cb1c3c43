"""Generators stream as Server-Sent Events over real sockets (tests/apps/stream_app.jac).

Under `jacscale serve` (each server, one worker) and `jac start` (1 and 4 workers): frames, the
end and error events, incremental delivery, disconnects stopping the generator,
what a stream saves, the JSON fallback, WebSocket frames and the time limits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from jacscale_core.config import ConfigError, load_settings
from jacscale_core.testing import TestApp, free_port, running_server
from tests.fixtures.servers import TEST_APPS

APP = TEST_APPS / "stream_app.jac"
SSE_TYPE = "text/event-stream; charset=utf-8"


def sse_events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """(event, decoded data) per SSE message, as a browser's EventSource would see them."""
    event, data = "message", []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line.startswith("event: "):
            event = line[7:]


def stream(base: str, path: str, body: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
    """POST `body` and read the whole stream."""
    with httpx.Client(base_url=base, timeout=30) as http:
        with http.stream("POST", path, json=body or {}) as r:
            assert r.status_code == 200, r.read()
            assert r.headers["content-type"] == SSE_TYPE
            assert r.headers["cache-control"] == "no-cache"
            assert r.headers["x-accel-buffering"] == "no"
            assert "content-length" not in r.headers
            return list(sse_events(r))


def items_of(base: str, tag: str) -> list[str]:
    """The tags of the items saved on the guest root."""
    r = httpx.post(base + "/walker/list_items", json={}, timeout=30)
    assert r.status_code == 200, r.text
    return [t for t in r.json()["data"]["reports"][0] if t.startswith(tag)]


def wait_for_file(path: Path, seconds: float = 30.0) -> str:
    """The file's text once it exists (fails the test if it never appears)."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)
    time.sleep(0.05)
    return path.read_text()


@pytest.fixture(
    scope="module",
    params=[("uvicorn", 1), ("hypercorn", 1), ("granian", 1)],
    ids=["uvicorn", "hypercorn", "granian"],
)
def base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`jacscale serve` of the stream app under each server (workers: tests/test_multiworker.py)."""
    server, workers = request.param
    data = tmp_path_factory.mktemp(f"stream-{server}-{workers}")
    env = {"JACSCALE_SERVER": server}
    with running_server(APP, data, workers=workers, env=env, start_timeout=240) as url:
        yield url


# --------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------


def test_a_generator_function_streams_one_frame_per_item_then_end(base: str) -> None:
    assert stream(base, "/function/numbers", {"count": 3}) == [
        ("message", {"i": 0}), ("message", {"i": 1}), ("message", {"i": 2}), ("end", {}),
    ]  # fmt: skip
    assert stream(base, "/function/numbers", {"count": 0}) == [("end", {})]


def test_an_async_generator_function_streams(base: str) -> None:
    assert stream(base, "/function/anumbers", {"count": 3}) == [
        ("message", 0), ("message", 1), ("message", 2), ("end", {}),
    ]  # fmt: skip


def test_a_walker_reporting_a_generator_streams_its_reports_in_order(base: str) -> None:
    tag = uuid.uuid4().hex
    events = stream(base, "/walker/make_and_stream", {"tag": tag, "count": 2})
    assert events == [
        ("message", "start"), ("message", 0), ("message", 1), ("message", "done"), ("end", {}),
    ]  # fmt: skip
    # One unit of work: the walk's item and the one the generator made at its end.
    assert items_of(base, tag) == [tag, f"{tag}-late"]


def test_an_async_walker_reporting_an_async_generator_streams(base: str) -> None:
    assert stream(base, "/walker/astream", {"count": 2}) == [
        ("message", {"n": 0}), ("message", {"n": 1}), ("end", {}),
    ]  # fmt: skip


def test_an_exception_ends_the_stream_with_an_error_event_and_no_path(base: str) -> None:
    events = stream(base, "/function/boom")
    assert events[0] == ("message", 1)
    assert events[1][0] == "error" and len(events) == 2
    error = events[1][1]
    assert set(error) == {"error_type", "message"}
    assert error["error_type"] == "ValueError"
    assert error["message"].startswith("bad value in ")
    assert str(TEST_APPS) not in error["message"] and "Traceback" not in error["message"]


def test_a_failed_stream_saves_nothing(base: str) -> None:
    tag = uuid.uuid4().hex
    events = stream(base, "/walker/make_and_stream", {"tag": tag, "fail": True})
    assert [e for e, _ in events] == ["message"] * 4 + ["error"]
    assert events[-1][1] == {"error_type": "RuntimeError", "message": "failed after the items"}
    assert items_of(base, tag) == []


# --------------------------------------------------------------------------
# Delivery and disconnects
# --------------------------------------------------------------------------


def test_frames_are_sent_as_they_are_produced(base: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with httpx.Client(base_url=base, timeout=30) as http:
        with http.stream("POST", "/function/gated", json={"gate": str(gate)}) as r:
            events = sse_events(r)
            # The generator cannot make "last" before the gate exists: the first
            # frame must reach us while it waits.
            assert next(events) == ("message", "first")
            assert not gate.exists()
            gate.write_text("open")
            assert list(events) == [("message", "last"), ("end", {})]


@pytest.mark.parametrize("function", ["forever", "aforever"])
def test_a_client_that_disconnects_stops_the_generator(
    base: str, tmp_path: Path, function: str
) -> None:
    marker = tmp_path / "closed"
    with httpx.Client(base_url=base, timeout=30) as http:
        with http.stream("POST", f"/function/{function}", json={"marker": str(marker)}) as r:
            events = sse_events(r)
            assert [next(events) for _ in range(3)] == [
                ("message", 0),
                ("message", 1),
                ("message", 2),
            ]
    # The generator's `finally` ran: it was closed, not left running.
    assert wait_for_file(marker).startswith("closed after ")


def test_a_stream_the_client_abandons_saves_nothing(base: str, tmp_path: Path) -> None:
    tag, marker = uuid.uuid4().hex, tmp_path / "closed"
    with httpx.Client(base_url=base, timeout=30) as http:
        body = {"tag": tag, "marker": str(marker)}
        with http.stream("POST", "/walker/make_and_forever", json=body) as r:
            assert next(sse_events(r)) == ("message", 0)
    wait_for_file(marker)
    assert items_of(base, tag) == []


# --------------------------------------------------------------------------
# The JSON fallback
# --------------------------------------------------------------------------


def test_accept_json_or_stream_false_collects_the_items(base: str) -> None:
    json_only = {"Accept": "application/json"}
    r = httpx.post(base + "/function/numbers", json={"count": 2}, headers=json_only, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json()["data"] == {"result": [{"i": 0}, {"i": 1}], "reports": []}
    r = httpx.post(base + "/function/anumbers?stream=false", json={"count": 2}, timeout=30)
    assert r.json()["data"]["result"] == [0, 1]
    tag = uuid.uuid4().hex
    r = httpx.post(
        base + "/walker/make_and_stream",
        json={"tag": tag, "count": 2},
        headers=json_only,
        timeout=30,
    )
    data = r.json()["data"]
    assert data["reports"] == ["start", 0, 1, "done"]
    assert data["result"]["tag"] == tag and "reports" not in data["result"]
    assert items_of(base, tag) == [tag, f"{tag}-late"]
    # GET endpoints: `stream` is not taken for a field.
    r = httpx.get(base + "/function/gnumbers?count=2&stream=false", timeout=30)
    assert r.status_code == 200 and r.json()["data"]["result"] == [0, 1]
    with httpx.Client(base_url=base, timeout=30) as http:
        with http.stream("GET", "/function/gnumbers?count=2") as streamed:
            assert list(sse_events(streamed)) == [("message", 0), ("message", 1), ("end", {})]
    # Asking for either gets the stream.
    both = {"Accept": "text/event-stream, application/json"}
    r = httpx.post(base + "/function/numbers", json={"count": 1}, headers=both, timeout=30)
    assert r.headers["content-type"] == SSE_TYPE


def test_a_failing_generator_in_json_mode_is_an_error_envelope_and_saves_nothing(base: str) -> None:
    tag = uuid.uuid4().hex
    r = httpx.post(
        base + "/walker/make_and_stream?stream=false", json={"tag": tag, "fail": True}, timeout=30
    )
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "EXECUTION_ERROR"
    assert "failed after the items" in r.json()["error"]["message"]
    assert items_of(base, tag) == []


# --------------------------------------------------------------------------
# WebSocket
# --------------------------------------------------------------------------


def test_a_websocket_walker_reporting_a_generator_sends_a_frame_per_item(base: str) -> None:
    url = base.replace("http://", "ws://")
    with connect(url + "/ws/ws_numbers", open_timeout=10) as ws:
        for _ in range(2):  # the socket stays usable after a stream
            ws.send(json.dumps({"count": 2}))
            frames = [json.loads(ws.recv(timeout=10)) for _ in range(3)]
            assert [(f["ok"], f["type"], f["event"], f["data"]) for f in frames] == [
                (True, "stream", "data", {"i": 0}),
                (True, "stream", "data", {"i": 1}),
                (True, "stream", "end", {}),
            ]
            assert len({f["meta"]["request_id"] for f in frames}) == 1
    with connect(url + "/ws/ws_boom", open_timeout=10) as ws:
        ws.send("{}")
        first, error = (json.loads(ws.recv(timeout=10)) for _ in range(2))
        assert first["event"] == "data" and first["data"] == 1
        assert error["ok"] is False and error["event"] == "error"
        assert error["data"]["error_type"] == "ValueError"
        assert error["error"]["code"] == "EXECUTION_ERROR"
        assert str(TEST_APPS) not in json.dumps(error)


def test_a_broadcast_websocket_walker_broadcasts_each_frame(base: str) -> None:
    url = base.replace("http://", "ws://") + "/ws/ws_room"

    def frames(ws: Any, count: int) -> list[tuple[str, Any]]:
        return [
            (f["event"], f["data"]) for f in (json.loads(ws.recv(timeout=10)) for _ in range(count))
        ]

    with connect(url, open_timeout=10) as a:
        a.send(json.dumps({"count": 1}))  # answered: `a` is in the room
        assert frames(a, 2) == [("data", {"i": 0}), ("end", {})]
        with connect(url, open_timeout=10) as b:
            b.send(json.dumps({"count": 2}))
            for ws in (b, a):
                assert frames(ws, 3) == [("data", {"i": 0}), ("data", {"i": 1}), ("end", {})]


# --------------------------------------------------------------------------
# Limits, OpenAPI, the envelope, `jac start`
# --------------------------------------------------------------------------


def test_idle_and_total_limits_end_the_stream_with_a_timeout_error(tmp_path: Path) -> None:
    app = tmp_path / "app" / "stream_app.jac"
    app.parent.mkdir()
    shutil.copy(APP, app)
    (app.parent / "jac.toml").write_text(
        "[plugins.scale.api]\nstream_idle_seconds = 0.5\nstream_total_seconds = 1.5\n"
    )
    gate, marker = tmp_path / "never", tmp_path / "closed"
    with running_server(app, tmp_path / "data") as url:
        events = stream(url, "/function/gated", {"gate": str(gate)})
        assert events == [
            ("message", "first"),
            ("error", {"error_type": "StreamTimeout",
                       "message": "No item within 0.5s (stream_idle_seconds)"}),
        ]  # fmt: skip
        # Never idle, but endless: the total limit ends it, and the generator is closed.
        events = stream(url, "/function/forever", {"marker": str(marker)})
        assert events[-1] == (
            "error", {"error_type": "StreamTimeout",
                      "message": "The stream ran longer than 1.5s (stream_total_seconds)"},
        )  # fmt: skip
        assert all(event == "message" for event, _ in events[:-1])
        assert wait_for_file(marker).startswith("closed after ")


def test_stream_limits_must_be_positive(tmp_path: Path) -> None:
    app = tmp_path / "stream_app.jac"
    shutil.copy(APP, app)
    for key in ("stream_idle_seconds", "stream_total_seconds"):
        (tmp_path / "jac.toml").write_text(f"[plugins.scale.api]\n{key} = 0\n")
        with pytest.raises(ConfigError, match=key):
            load_settings(app, env={})
    (tmp_path / "jac.toml").unlink()
    api = load_settings(app, env={}).api
    assert (api.stream_idle_seconds, api.stream_total_seconds) == (120.0, 1800.0)


def test_openapi_marks_generator_functions_as_event_streams(tmp_path: Path) -> None:
    with TestApp(APP, tmp_path) as client:
        paths = client.get("/openapi.json").json()["paths"]
    streaming = paths["/function/numbers"]["post"]["responses"]["200"]["content"]
    assert set(streaming) == {"text/event-stream", "application/json"}
    assert "text/event-stream" in paths["/function/anumbers"]["post"]["responses"]["200"]["content"]
    plain = paths["/walker/list_items"]["post"]["responses"]["200"]["content"]
    assert set(plain) == {"application/json"}


@pytest.mark.parametrize("workers", [1, 4])
def test_jac_start_streams(tmp_path: Path, workers: int) -> None:
    shutil.copy(APP, tmp_path / "app.jac")
    port = free_port()
    jac = Path(sys.executable).with_name("jac")
    proc = subprocess.Popen(
        [str(jac), "start", "app.jac", "--port", str(port), "--host", "127.0.0.1",
         "--workers", str(workers)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "JAC_DATA_PATH": str(tmp_path / "data")},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # four workers each load the program
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass  # not listening yet
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "jac start did not become ready"
            time.sleep(0.3)
        assert stream(base, "/function/numbers", {"count": 2}) == [
            ("message", {"i": 0}), ("message", {"i": 1}), ("end", {}),
        ]  # fmt: skip
        assert stream(base, "/walker/astream", {"count": 1}) == [("message", {"n": 0}), ("end", {})]
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_the_readme_streaming_example_works_by_copy_and_paste(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("\n## Streaming\n", 1)[1].split("\n## ", 1)[0]
    program, commands, expected = (block.split("\n", 1)[1] for block in section.split("```")[1::2])
    assert (
        program == (APP.parents[2] / "examples" / "11_streaming.jac").read_text().split("\n", 1)[1]
    )  # the example file is the README's program (plus a comment line)
    (tmp_path / "stream.jac").write_text(program)
    with running_server(tmp_path / "stream.jac", tmp_path / "data") as url:
        outputs = [
            subprocess.run(
                line.replace("localhost:8000", url.removeprefix("http://")),
                shell=True,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout  # fmt: skip
            for line in commands.strip().splitlines()
        ]
    assert "".join(outputs) == expected
