"""Hostile input gets a 4xx naming the problem, never a 500 (the attack run's findings)."""

from __future__ import annotations

import base64
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from jacscale_core.json_input import MAX_JSON_DEPTH, decode_json, nesting_depth_exceeds
from jacscale_core.testing import TestApp, running_server
from tests.auth.helpers import FAST_ENV, new_user
from tests.fixtures.servers import TEST_APPS

DEEP = 5000


def deep_list(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("hostile-app")
    shutil.copy(TEST_APPS / "hostile_app.jac", directory / "app.jac")
    return directory


@pytest.fixture(scope="module")
def client(app_dir: Path) -> Iterator[TestClient]:
    env = {**FAST_ENV, "JACSCALE_MAX_RESPONSE_BYTES": "20000"}
    with TestApp(app_dir / "app.jac", app_dir / "data", env=env) as c:
        yield c


def error_of(resp: object) -> dict[str, object]:
    body = resp.json()  # type: ignore[attr-defined]
    assert body["ok"] is False
    return dict(body["error"])


# -- deep JSON: 422 on every JSON endpoint -----------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/walker/echo", "/user/login", "/user/register", "/traverse", "/walker/echo/" + "0" * 32],
)
def test_deeply_nested_json_is_422_everywhere(client: TestClient, path: str) -> None:
    body = '{"data": ' + deep_list(DEEP) + ', "email": "a@example.com", "password": "x"}'
    headers = {"Content-Type": "application/json", **new_user(client)["headers"]}
    resp = client.post(path, content=body, headers=headers)
    assert resp.status_code == 422, resp.text
    err = error_of(resp)
    assert err["code"] == "VALIDATION_ERROR"
    if path != "/traverse":  # its typed decoder refuses the unknown field first
        assert f"deeper than {MAX_JSON_DEPTH} levels" in str(err["message"])


def test_nesting_up_to_the_limit_is_accepted(client: TestClient) -> None:
    value = [1]
    for _ in range(MAX_JSON_DEPTH - 2):  # the body object and `data` are two levels
        value = [value]
    resp = client.post("/walker/echo", json={"data": value})
    assert resp.status_code == 200, resp.text
    resp = client.post("/walker/echo", json={"data": [value]})
    assert resp.status_code == 422


def test_depth_is_measured_without_recursion() -> None:
    value: list[object] = []
    for _ in range(100_000):
        value = [value]
    assert nesting_depth_exceeds(value, 64)
    assert not nesting_depth_exceeds({"a": [1, {"b": [2]}]}, 4)
    assert nesting_depth_exceeds({"a": [1, {"b": [2]}]}, 3)
    # Many brackets side by side are not depth.
    assert decode_json(b"[" + b",".join([b"[]"] * 1000) + b"]", 3) == [[]] * 1000


# -- response size and bytes -------------------------------------------------------------


def test_bytes_are_base64_in_responses(client: TestClient) -> None:
    resp = client.post("/walker/blob", json={"size": 2})
    assert resp.status_code == 200
    report = resp.json()["data"]["reports"][0]
    assert base64.b64decode(report) == bytes([0, 255, 7]) * 2


def test_a_response_over_the_cap_is_413_naming_it(client: TestClient) -> None:
    resp = client.post("/walker/blob", json={"size": 10_000})
    assert resp.status_code == 413, resp.text[:300]
    err = error_of(resp)
    assert err["code"] == "RESPONSE_TOO_LARGE"
    assert "20000 bytes" in str(err["message"]) and "max_response_bytes" in str(err["message"])


# -- allow_root / disallow_root and storage paths ------------------------------------------


@pytest.mark.parametrize("revoke", [False, True])
@pytest.mark.parametrize("root_id", ["nope", "", "x" * 5000, "{}"])
def test_a_bad_root_id_is_400_naming_it(client: TestClient, root_id: str, revoke: bool) -> None:
    resp = client.post("/walker/share", json={"target_root_id": root_id, "revoke": revoke})
    assert resp.status_code == 400, resp.text[:300]
    message = str(error_of(resp)["message"])
    assert "not a root id" in message and len(message) < 300


def test_a_good_root_id_is_shared(client: TestClient) -> None:
    resp = client.post("/walker/share", json={"target_root_id": uuid.uuid4().hex})
    assert resp.status_code == 200, resp.text


def test_a_storage_name_of_256_bytes_is_400(client: TestClient) -> None:
    resp = client.post("/walker/put_file", json={"path": "docs/" + "n" * 256})
    assert resp.status_code == 400, resp.text[:300]
    assert "longer than 255 bytes" in str(error_of(resp)["message"])
    # 255 bytes is a valid name (multi-byte characters count as bytes)
    assert client.post("/walker/put_file", json={"path": "docs/" + "n" * 255}).status_code == 200
    resp = client.post("/walker/put_file", json={"path": "docs/" + "é" * 128})
    assert resp.status_code == 400


def test_downloading_a_folder_is_400(client: TestClient) -> None:
    assert client.post("/walker/put_file", json={"path": "folder/inside.txt"}).status_code == 200
    resp = client.post("/walker/get_file", json={"path": "folder"})
    assert resp.status_code == 400, resp.text
    assert "is a folder, not a file" in str(error_of(resp)["message"])


@pytest.mark.parametrize("walker", ["put_file", "get_file", "file_info"])
def test_a_path_through_a_file_is_400(client: TestClient, walker: str) -> None:
    assert client.post("/walker/put_file", json={"path": "plain.txt"}).status_code == 200
    resp = client.post(f"/walker/{walker}", json={"path": "plain.txt/child"})
    assert resp.status_code == 400, resp.text
    assert "is a file, not a folder" in str(error_of(resp)["message"])


def test_missing_file_is_404(client: TestClient) -> None:
    resp = client.post("/walker/file_info", json={"path": "never/there.txt"})
    assert resp.status_code == 404
    assert client.post("/walker/get_file", json={"path": "never.txt"}).status_code == 404


def test_list_files_hides_uploads_in_progress(client: TestClient, app_dir: Path) -> None:
    assert client.post("/walker/put_file", json={"path": "up/done.txt"}).status_code == 200
    part = app_dir / "uploads" / "up" / f".upload.{uuid.uuid4().hex}.part"
    part.write_bytes(b"half")
    for recursive in (False, True):
        resp = client.post("/walker/files", json={"folder": "up", "recursive": recursive})
        assert resp.status_code == 200, resp.text
        assert [f["path"] for f in resp.json()["data"]["reports"][0]] == ["up/done.txt"]
    part.unlink()


# -- headers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/walker/blob", b"{}"),
        ("GET", "/nowhere", b""),
        ("POST", "/walker/echo", b"{bad"),
        ("POST", "/walker/echo", b"x" * (2 * 1024 * 1024)),
        ("GET", "/openapi.json", b""),
        ("GET", "/healthz", b""),
    ],
)
def test_every_response_says_nosniff(client: TestClient, method: str, path: str, body: bytes) -> None:
    resp = client.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert resp.headers["x-content-type-options"] == "nosniff", (resp.status_code, path)


# -- log injection (a real server, its real log) ---------------------------------------


def raw_request(base: str, target: bytes) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_control_characters_in_a_path_cannot_forge_log_lines(tmp_path: Path, app_dir: Path) -> None:
    forged = b'127.0.0.1 "POST /walker/admin" 200 1.0ms user=admin rid=forged'
    target = b"/no-route%0a" + forged.replace(b" ", b"%20").replace(b'"', b"%22") + b"%1b[31mred%7f"
    data = tmp_path / "data"
    with running_server(app_dir / "app.jac", data, env=FAST_ENV) as base:
        answer = raw_request(base, target)
        assert answer.startswith(b"HTTP/1.1 404")
        time.sleep(0.5)  # access lines are written in batches of 0.1 s
    log = next(data.glob("server-*.log")).read_bytes()
    lines = log.splitlines()
    assert not any(line.startswith(b"127.0.0.1 \"POST /walker/admin\"") for line in lines)
    assert not any(line.lstrip().startswith(forged) for line in lines)
    assert b"\x1b" not in log and b"\x7f" not in log
    logged = [line for line in lines if b"/no-route" in line]
    assert len(logged) == 1 and b"\\x0a" in logged[0] and b"\\x1b[31m" in logged[0]
