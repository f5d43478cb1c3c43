"""Deploy and destroy on a real cluster (`real_k8s`): skipped unless KUBECONFIG is set.

Run on a kind/minikube/k3d cluster whose nodes can pull the image:

    KUBECONFIG=~/.kube/config JACSCALE_TEST_IMAGE=<an image built by --build> \\
        .venv/bin/pytest -m real_k8s plugins/jacscale-kubernetes/tests

It deploys examples/todo into a fresh namespace, waits for the rollout,
redeploys, destroys, and removes the namespace.
"""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from jacscale_kubernetes.client import KubeClient

from jacscale_core.deploy import run_deploy, run_destroy

TODO_APP = Path(__file__).resolve().parents[3] / "examples" / "todo" / "app.jac"


@pytest.fixture
def real_env() -> Iterator[dict[str, str]]:
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("real_k8s: set KUBECONFIG to a real cluster to run this test")
    namespace = f"jacscale-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "K8s_NAMESPACE": namespace, "APP_NAME": "todo",
           "K8s_SERVICE_TYPE": "ClusterIP"}
    if os.environ.get("JACSCALE_TEST_IMAGE"):
        env["K8s_IMAGE"] = os.environ["JACSCALE_TEST_IMAGE"]
    yield env

    async def drop_namespace() -> None:
        client = await KubeClient.connect(env)
        try:
            await client.delete("Namespace", None, namespace)
        finally:
            await client.close()

    asyncio.run(drop_namespace())


@pytest.mark.real_k8s
def test_deploy_redeploy_destroy_on_a_real_cluster(real_env: dict[str, str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_deploy(str(TODO_APP), env=real_env, timeout=300, out=out, err=err) == 0, \
        err.getvalue()
    assert "rolled out" in out.getvalue()
    out = io.StringIO()
    assert run_deploy(str(TODO_APP), env={**real_env, "K8s_CPU_REQUEST": "200m"}, timeout=300,
                      out=out, err=err) == 0, err.getvalue()
    assert "configured Deployment" in out.getvalue()
    out = io.StringIO()
    assert run_destroy(str(TODO_APP), env=real_env, yes=True, out=out, err=err) == 0
    assert "deleted Deployment" in out.getvalue()
