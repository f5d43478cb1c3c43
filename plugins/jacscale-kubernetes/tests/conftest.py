"""Fixtures for the Kubernetes deploy tests: a sample app and the fake Kubernetes API."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from k8s_fake_api import FakeKubeApi  # noqa: E402

APP_JAC = """\
walker :pub ping {
    can pong with Root entry {
        report "pong";
    }
}
"""
FAST_POLL = """\
[plugins.scale.kubernetes]
poll_interval_seconds = 0.02
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A one-walker app in tmp_path/app, with a jac.toml that makes rollout polling fast."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.jac").write_text(APP_JAC)
    (app / "jac.toml").write_text(FAST_POLL)
    return app


@pytest.fixture
def fake_kube() -> Iterator[FakeKubeApi]:
    """A protocol-level test double of the Kubernetes API on a free 127.0.0.1 port."""
    api = FakeKubeApi()
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def kube_env(tmp_path: Path, fake_kube: FakeKubeApi) -> dict[str, str]:
    """A minimal environment whose KUBECONFIG points at the fake API."""
    home = tmp_path / "home"
    home.mkdir()
    kubeconfig = fake_kube.write_kubeconfig(tmp_path / "kubeconfig")
    return {"KUBECONFIG": str(kubeconfig), "HOME": str(home), "PATH": os.environ.get("PATH", "")}


@pytest.fixture
def bare_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no kubeconfig at all."""
    home = tmp_path / "nohome"
    home.mkdir()
    return {"HOME": str(home), "PATH": os.environ.get("PATH", "")}
