"""`jacscale serve --workers 2`: one scrape returns the sum over both workers."""

from __future__ import annotations

from pathlib import Path

import httpx
from jacscale_prometheus.multiproc import base_dir
from prometheus_client.parser import text_string_to_metric_families

from jacscale_core.testing import running_server

APP = """
import os;

walker :pub pid {
    can go with Root entry { report os.getpid(); }
}

walker :pub fail {
    can go with Root entry { x = 1 / 0; }
}
"""

TOML = """
[plugins.scale.metrics]
enabled = true
namespace = "myapp"
walker_metrics = true
"""

MIN_CALLS = 20
MAX_CALLS = 300


def _value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def test_a_scrape_sums_every_worker(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.jac").write_text(APP)
    (app_dir / "jac.toml").write_text(TOML)
    before = {p.name for p in base_dir().iterdir()}
    with running_server(app_dir / "app.jac", tmp_path / "data", workers=2) as base:
        pids: set[int] = set()
        calls = 0
        # A fresh connection per call lets the kernel spread calls over both workers.
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=base, timeout=30, limits=limits) as client:
            while calls < MIN_CALLS or (len(pids) < 2 and calls < MAX_CALLS):
                answer = client.post("/walker/pid")
                assert answer.status_code == 200, answer.text
                pids.add(answer.json()["data"]["reports"][0])
                calls += 1
            for _ in range(2):
                assert client.post("/walker/fail").status_code == 500
            assert len(pids) == 2, f"all calls went to one worker: {pids}"
            # Default access: direct loopback clients may scrape; every scrape, on
            # whichever worker, sees the same totals.
            scrapes = [client.get("/metrics") for _ in range(4)]
        for scrape in scrapes:
            assert scrape.status_code == 200, scrape.text
            text = scrape.text
            assert (
                _value(
                    text,
                    "myapp_http_requests_total",
                    method="POST",
                    path="/walker/pid",
                    status_code="200",
                )
                == calls
            )
            assert (
                _value(
                    text,
                    "myapp_http_requests_total",
                    method="POST",
                    path="/walker/fail",
                    status_code="500",
                )
                == 2
            )
            assert (
                _value(
                    text,
                    "myapp_http_request_duration_seconds_count",
                    method="POST",
                    path="/walker/pid",
                )
                == calls
            )
            assert (
                _value(
                    text, "myapp_walker_duration_seconds_count", walker_name="pid", success="true"
                )
                == calls
            )
            assert (
                _value(
                    text, "myapp_walker_duration_seconds_count", walker_name="fail", success="false"
                )
                == 2
            )
            assert (
                _value(
                    text,
                    "myapp_walker_duration_seconds_bucket",
                    walker_name="pid",
                    success="true",
                    le="+Inf",
                )
                == calls
            )
            assert _value(text, "myapp_http_requests_in_progress") == 0
            assert 'path="/metrics"' not in text
        during = {p.name for p in base_dir().iterdir()} - before
        assert len(during) == 1, during  # the supervisor's directory
    # The supervisor removes its directory when it exits.
    assert not (base_dir() / during.pop()).exists()
