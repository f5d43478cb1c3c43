"""`destroy`: label-selected removal, confirmation, --yes without stdin."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest
from k8s_fake_api import FakeKubeApi

from jacscale_core.deploy import run_deploy, run_destroy

ALL = {"jaseci-auth", "jaseci-mongodb-auth", "jaseci-redis-auth"}


def deployed(app_dir: Path, env: dict[str, str], api: FakeKubeApi) -> None:
    """Deploy with both databases, plus a volume like the StatefulSet controller makes."""
    code = run_deploy(str(app_dir / "app.jac"), env=env, out=io.StringIO(), err=io.StringIO())
    assert code == 0
    labels = {"app.kubernetes.io/part-of": "jaseci", "app.kubernetes.io/managed-by": "jacscale",
              "app.kubernetes.io/name": "mongodb"}
    api.objects[("persistentvolumeclaims", "default", "data-jaseci-mongodb-0")] = {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-jaseci-mongodb-0", "namespace": "default", "labels": labels,
                     "uid": "pvc-1"}}
    # Someone else's objects in the same namespace must survive.
    api.objects[("deployments", "default", "other")] = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "other", "namespace": "default", "uid": "o-1",
                     "labels": {"app.kubernetes.io/part-of": "other",
                                "app.kubernetes.io/managed-by": "jacscale"}}}
    api.objects[("secrets", "default", "unlabelled")] = {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "unlabelled", "namespace": "default", "uid": "u-1"}}


@pytest.fixture
def env_dbs(kube_env: dict[str, str]) -> dict[str, str]:
    return {**kube_env, "K8s_MONGODB": "1", "K8s_REDIS": "1"}


def destroy(app_dir: Path, env: dict[str, str], **kwargs: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_destroy(str(app_dir / "app.jac"), env=env, out=out, err=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def leftovers(api: FakeKubeApi) -> set[tuple[str, str]]:
    return {(plural, name) for (plural, ns, name) in api.objects if ns == "default"}


def test_destroy_yes_removes_everything_labelled_and_nothing_else(
    app_dir: Path, env_dbs: dict[str, str], fake_kube: FakeKubeApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployed(app_dir, env_dbs, fake_kube)
    monkeypatch.setattr(sys, "stdin", None)  # no stdin at all: --yes must not need it
    code, out, err = destroy(app_dir, env_dbs, yes=True)
    assert code == 0, err
    assert "This removes 13 object(s):" in out
    assert "PersistentVolumeClaim default/data-jaseci-mongodb-0 (database data)" in out
    assert "deleted Secret default/jaseci-mongodb-auth" in out
    assert leftovers(fake_kube) == {("deployments", "other"), ("secrets", "unlabelled")}
    deletes = [c for c in fake_kube.calls if c.method == "DELETE"]
    assert all(c.query == {"propagationPolicy": "Background"} for c in deletes)
    # The first thing deleted is the autoscaler, so it cannot scale a dying Deployment.
    assert "/horizontalpodautoscalers/" in deletes[0].path


def test_keep_data_keeps_volumes_and_their_credentials(
    app_dir: Path, env_dbs: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    deployed(app_dir, env_dbs, fake_kube)
    code, out, _ = destroy(app_dir, env_dbs, yes=True, keep_data=True)
    assert code == 0
    assert "kept PersistentVolumeClaim default/data-jaseci-mongodb-0 (--keep-data)" in out
    assert ("persistentvolumeclaims", "data-jaseci-mongodb-0") in leftovers(fake_kube)
    assert ("secrets", "jaseci-mongodb-auth") in leftovers(fake_kube)
    assert ("deployments", "jaseci") not in leftovers(fake_kube)


def test_confirmation_yes(
    app_dir: Path, env_dbs: dict[str, str], fake_kube: FakeKubeApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployed(app_dir, env_dbs, fake_kube)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    code, out, _ = destroy(app_dir, env_dbs)
    assert code == 0
    assert "Remove them? [y/N] " in out
    assert ("deployments", "jaseci") not in leftovers(fake_kube)


@pytest.mark.parametrize("answer", ["n\n", "\n", "whatever\n"])
def test_confirmation_anything_but_yes_removes_nothing(
    app_dir: Path, env_dbs: dict[str, str], fake_kube: FakeKubeApi,
    monkeypatch: pytest.MonkeyPatch, answer: str,
) -> None:
    deployed(app_dir, env_dbs, fake_kube)
    before = leftovers(fake_kube)
    monkeypatch.setattr(sys, "stdin", io.StringIO(answer))
    code, out, _ = destroy(app_dir, env_dbs)
    assert code == 0
    assert "nothing removed" in out
    assert leftovers(fake_kube) == before
    assert fake_kube.count("DELETE") == 0


def test_no_stdin_without_yes_is_an_error_and_removes_nothing(
    app_dir: Path, env_dbs: dict[str, str], fake_kube: FakeKubeApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployed(app_dir, env_dbs, fake_kube)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # closed pipe: EOF at once
    code, _, err = destroy(app_dir, env_dbs)
    assert code == 1
    assert err.strip() == ("jacscale destroy: no answer on stdin: pass --yes to destroy "
                           "without asking")
    assert fake_kube.count("DELETE") == 0


def test_nothing_to_destroy(app_dir: Path, kube_env: dict[str, str], fake_kube: FakeKubeApi) -> None:
    code, out, _ = destroy(app_dir, kube_env, yes=True)
    assert code == 0
    assert "nothing to destroy: no objects of app 'jaseci' in namespace 'default'" in out


def test_destroy_follows_app_name_and_namespace(
    app_dir: Path, kube_env: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    env = {**kube_env, "APP_NAME": "shop", "K8s_NAMESPACE": "prod"}
    assert run_deploy(str(app_dir / "app.jac"), env=env, out=io.StringIO(),
                      err=io.StringIO()) == 0
    assert run_deploy(str(app_dir / "app.jac"), env=kube_env, out=io.StringIO(),
                      err=io.StringIO()) == 0
    code, _, _ = destroy(app_dir, env, yes=True)
    assert code == 0
    assert fake_kube.names("deployments", "prod") == []
    assert fake_kube.names("deployments", "default") == ["jaseci"]  # the other app stays


def test_destroy_without_a_cluster(app_dir: Path, bare_env: dict[str, str]) -> None:
    code, out, err = destroy(app_dir, bare_env, yes=True)
    assert code == 1
    assert out == ""
    assert err.startswith("jacscale destroy: no Kubernetes cluster configured")
    assert err.count("\n") == 1


def test_destroy_api_error_names_the_object(
    app_dir: Path, env_dbs: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    deployed(app_dir, env_dbs, fake_kube)
    fake_kube.fail("DELETE", "statefulsets", 403, 'statefulsets.apps "jaseci-mongodb" is '
                   'forbidden: User "ci" cannot delete resource')
    code, _, err = destroy(app_dir, env_dbs, yes=True)
    assert code == 1
    assert err.strip() == (
        'jacscale destroy: StatefulSet default/jaseci-mongodb: DELETE failed: 403 Forbidden: '
        'statefulsets.apps "jaseci-mongodb" is forbidden: User "ci" cannot delete resource')


def test_destroy_does_not_need_the_secrets_environment(
    app_dir: Path, kube_env: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    (app_dir / "jac.toml").write_text('[plugins.scale.kubernetes]\npoll_interval_seconds = 0.02\n'
                                      '[plugins.scale.secrets]\nKEY = "${API_KEY}"\n')
    assert run_deploy(str(app_dir / "app.jac"), env={**kube_env, "API_KEY": "k"},
                      out=io.StringIO(), err=io.StringIO()) == 0
    code, _, err = destroy(app_dir, kube_env, yes=True)  # API_KEY is gone by now
    assert code == 0, err
    assert fake_kube.names("secrets") == []
