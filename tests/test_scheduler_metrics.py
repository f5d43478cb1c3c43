"""A failed fire of a scheduled job is counted by the Prometheus plugin (success="false")."""

from __future__ import annotations

from pathlib import Path

from jacscale_core.testing import TestApp
from jacscale_core.testing.header_auth import HeaderAuth
from tests.fixtures.servers import TEST_APPS
from tests.test_metrics import app_with, value
from tests.test_scheduler import wait_for

TOML = """
[plugins.scale.metrics]
enabled = true
public = true
namespace = "kt"
"""


def test_fires_are_counted_failed_ones_apart(tmp_path: Path) -> None:
    app = app_with(tmp_path / "app", TOML, TEST_APPS / "scheduler_app.jac")
    with TestApp(app, tmp_path / "data", plugins=[HeaderAuth()]) as client:
        user = {"X-Test-User": "alice"}
        body = {"walker_or_function": "explode", "trigger": "interval", "interval": 1}
        assert client.post("/jobs", json=body, headers=user).status_code == 201

        def counted() -> tuple[float, float] | None:
            text = client.get("/metrics").text
            failed = value(
                text, "kt_scheduled_job_fires_total", job_name="explode", success="false"
            )
            ok = value(text, "kt_scheduled_job_fires_total", job_name="beat", success="true")
            return (failed, ok) if failed and ok else None

        failed, ok = wait_for(counted, "failed and successful fires in /metrics")
        assert failed >= 1 and ok >= 1
        text = client.get("/metrics").text
        assert (
            value(text, "kt_scheduled_job_fires_total", job_name="explode", success="true") is None
        )
