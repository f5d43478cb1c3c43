"""The example plugin works end to end, configured through jac.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from jacscale_core.testing import TestApp

TODO = Path(__file__).resolve().parents[3] / "examples" / "todo" / "app.jac"


def test_hello_route_follows_jac_toml(tmp_path: Path) -> None:
    app = tmp_path / "app.jac"
    shutil.copy(TODO, app)
    with TestApp(app, tmp_path / "data") as client:
        assert client.get("/hello").status_code == 404
    (tmp_path / "jac.toml").write_text('[plugins.scale.hello]\nenabled = true\ngreeting = "hi there"\n')
    with TestApp(app, tmp_path / "data") as client:
        assert client.get("/hello").json() == {"greeting": "hi there"}
        checks = client.get("/readyz").json()["checks"]
        assert checks["hello"] == {"ok": True, "detail": "enabled"}
