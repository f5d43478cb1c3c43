"""The reference document's storage example (examples/05_storage.jac) over HTTP, uploads as multipart."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

from jacscale_core.testing import TestApp
from tests.fixtures.servers import EXAMPLES


def reports(response: Any) -> list[Any]:
    assert response.status_code == 200, response.text
    return list(response.json()["data"]["reports"])


def test_upload_list_download_as_the_seed_writes_it(tmp_path: Path) -> None:
    app = tmp_path / "app" / "storage.jac"
    app.parent.mkdir()
    shutil.copy(EXAMPLES / "05_storage.jac", app)
    with TestApp(app, tmp_path / "data") as c:
        r = c.post(
            "/walker/upload_file",
            files={"file": ("notes.txt", b"hello storage", "text/plain")},
            data={"folder": "docs"},
        )
        saved = reports(r)[0]
        assert saved["success"] is True and saved["size"] == 13
        assert saved["storage_path"].startswith("docs/")
        # store(base_path="./uploads") is relative to the app, not the working directory.
        assert (app.parent / "uploads" / saved["storage_path"]).read_bytes() == b"hello storage"

        files = reports(c.post("/walker/list_files", json={"folder": "docs"}))[0]["files"]
        assert [f["path"] for f in files] == [saved["storage_path"]]
        assert files[0]["size"] == 13

        got = reports(c.post("/walker/download_file", json={"path": saved["storage_path"]}))[0]
        # bytes are rendered as base64 (docs/security.md), not as a Python literal
        assert got["size"] == 13 and base64.b64decode(got["content"]) == b"hello storage"
        missing = reports(c.post("/walker/download_file", json={"path": "docs/none.dat"}))[0]
        assert missing == {"error": "File not found"}


def test_paths_outside_the_storage_folder_are_refused(tmp_path: Path) -> None:
    app = tmp_path / "app" / "storage.jac"
    app.parent.mkdir()
    shutil.copy(EXAMPLES / "05_storage.jac", app)
    (tmp_path / "app" / "secret.txt").write_text("top secret")
    with TestApp(app, tmp_path / "data") as c:
        for path in ("../secret.txt", "/etc/passwd", "docs/../../secret.txt"):
            r = c.post("/walker/download_file", json={"path": path})
            assert r.status_code == 400, (path, r.text)
            assert "top secret" not in r.text and "root:" not in r.text


def test_upload_field_must_be_a_file(tmp_path: Path) -> None:
    app = tmp_path / "app" / "storage.jac"
    app.parent.mkdir()
    shutil.copy(EXAMPLES / "05_storage.jac", app)
    with TestApp(app, tmp_path / "data") as c:
        r = c.post("/walker/upload_file", json={"file": "not a file"})
        assert r.status_code == 422
        assert r.json()["error"]["details"][0]["loc"] == ["body", "file"]
        r = c.post("/walker/upload_file", data={"folder": "x"}, files={"other": ("a", b"1")})
        assert r.status_code == 422
        # `other` is not a field of the walker: ignored like any undeclared field
        assert {d["loc"][-1] for d in r.json()["error"]["details"]} == {"file"}
