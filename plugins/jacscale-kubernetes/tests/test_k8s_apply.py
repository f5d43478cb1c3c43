"""Apply, rollout wait, redeploy and errors, against the protocol-level fake API server."""

from __future__ import annotations

import base64
import io
import socket
from pathlib import Path

import pytest
from k8s_fake_api import FakeKubeApi

from jacscale_core.deploy import run_deploy

APP_ORDER = [
    ("Secret", "jaseci-auth"), ("Secret", "jaseci-mongodb-auth"),
    ("Secret", "jaseci-redis-auth"), ("ConfigMap", "jaseci-source"),
    ("Service", "jaseci-mongodb"), ("StatefulSet", "jaseci-mongodb"),
    ("Service", "jaseci-redis"), ("Deployment", "jaseci-redis"), ("Deployment", "jaseci"),
    ("Service", "jaseci"), ("HorizontalPodAutoscaler", "jaseci"),
    ("PodDisruptionBudget", "jaseci"),
]


def deploy(app_dir: Path, env: dict[str, str], **kwargs: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_deploy(str(app_dir / "app.jac"), env=env, out=out, err=err, **kwargs)  # type: ignore[arg-type]
    return code, out.getvalue(), err.getvalue()


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if not line.startswith(("note:", "warning:"))]


def secret_value(api: FakeKubeApi, name: str, key: str) -> str:
    secret = api.get("secrets", "default", name)
    assert secret is not None
    return base64.b64decode(secret["data"][key]).decode()


def test_deploy_creates_everything_in_order_and_waits_for_the_rollout(
    app_dir: Path, kube_env: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    env = {**kube_env, "K8s_MONGODB": "true", "K8s_REDIS": "true"}
    code, out, err = deploy(app_dir, env)
    assert code == 0, err
    created = [line.split()[1:3] for line in out.splitlines() if line.startswith("created ")]
    assert [(kind, name.split("/")[1]) for kind, name in created] == APP_ORDER
    rollout = [line for line in out.splitlines() if line.startswith("Deployment default/jaseci:")]
    assert rollout[-1] == "Deployment default/jaseci: rolled out"
    assert any("0/1 available" in line for line in rollout)  # progress was shown
    assert "http://<node-address>:30001/" in out
    # Waiting read the Deployment and its ReplicaSets, never an app URL.
    assert fake_kube.count("GET", "replicasets") >= 1
    assert all(c.path.startswith(("/api/", "/apis/", "/version")) for c in fake_kube.calls)
    stored = fake_kube.get("deployments", "default", "jaseci")
    assert stored is not None
    assert stored["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # Creates are POSTs with our field manager; nothing was deleted.
    posts = [c for c in fake_kube.calls if c.method == "POST"]
    assert posts and all(c.query.get("fieldManager") == "jacscale" for c in posts)
    assert fake_kube.count("DELETE") == 0


def test_redeploy_patches_in_place_and_keeps_generated_credentials(
    app_dir: Path, kube_env: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    env = {**kube_env, "K8s_MONGODB": "1"}
    assert deploy(app_dir, env)[0] == 0
    uid = fake_kube.get("deployments", "default", "jaseci")["metadata"]["uid"]  # type: ignore[index]
    password = secret_value(fake_kube, "jaseci-mongodb-auth", "MONGO_INITDB_ROOT_PASSWORD")
    jwt = secret_value(fake_kube, "jaseci-auth", "JWT_SECRET")

    code, out, err = deploy(app_dir, {**env, "K8s_CPU_REQUEST": "300m"})
    assert code == 0, err
    assert "kept Secret default/jaseci-mongodb-auth (generated credentials)" in out
    assert "configured Deployment default/jaseci" in out
    assert "unchanged Service default/jaseci" in out
    deployment = fake_kube.get("deployments", "default", "jaseci")
    assert deployment is not None
    assert deployment["metadata"]["uid"] == uid  # the same object: never deleted
    assert deployment["metadata"]["generation"] == 2
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"][
        "cpu"] == "300m"
    assert fake_kube.count("DELETE", "deployments") == 0
    assert secret_value(fake_kube, "jaseci-mongodb-auth", "MONGO_INITDB_ROOT_PASSWORD") == password
    assert secret_value(fake_kube, "jaseci-auth", "JWT_SECRET") == jwt
    patches = [c for c in fake_kube.calls if c.method == "PATCH"]
    assert patches and all(
        c.content_type == "application/apply-patch+yaml"
        and c.query == {"fieldManager": "jacscale", "force": "true"} for c in patches)


def test_changed_secrets_roll_the_pods(
    app_dir: Path, kube_env: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    (app_dir / "jac.toml").write_text('[plugins.scale.kubernetes]\npoll_interval_seconds = 0.02\n'
                                      '[plugins.scale.secrets]\nAPI_KEY = "${API_KEY}"\n')
    assert deploy(app_dir, {**kube_env, "API_KEY": "key-one-7f3a"})[0] == 0
    assert secret_value(fake_kube, "jaseci-secrets", "API_KEY") == "key-one-7f3a"
    template = fake_kube.get("deployments", "default", "jaseci")["spec"]["template"]  # type: ignore[index]
    version_one = template["metadata"]["annotations"]["jacscale.io/secrets-version"]
    assert template["spec"]["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "jaseci-secrets"}}]

    code, out, err = deploy(app_dir, {**kube_env, "API_KEY": "key-two-9c1d"})
    assert code == 0
    assert secret_value(fake_kube, "jaseci-secrets", "API_KEY") == "key-two-9c1d"
    template = fake_kube.get("deployments", "default", "jaseci")["spec"]["template"]  # type: ignore[index]
    assert template["metadata"]["annotations"]["jacscale.io/secrets-version"] != version_one
    assert "configured Deployment default/jaseci" in out
    assert "key-two" not in out + err and "key-one" not in out + err


def test_a_secret_key_dropped_from_jac_toml_leaves_the_secret(
    app_dir: Path, kube_env: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    fast = '[plugins.scale.kubernetes]\npoll_interval_seconds = 0.02\n'
    (app_dir / "jac.toml").write_text(fast + '[plugins.scale.secrets]\nA = "1"\nB = "2"\n')
    assert deploy(app_dir, kube_env)[0] == 0
    (app_dir / "jac.toml").write_text(fast + '[plugins.scale.secrets]\nA = "1"\n')
    assert deploy(app_dir, kube_env)[0] == 0
    secret = fake_kube.get("secrets", "default", "jaseci-secrets")
    assert secret is not None and set(secret["data"]) == {"A"}
    (app_dir / "jac.toml").write_text(fast)
    code, out, _ = deploy(app_dir, kube_env)
    assert code == 0
    assert "removed Secret default/jaseci-secrets (no longer deployed)" in out
    container = fake_kube.get("deployments", "default", "jaseci")["spec"]["template"]["spec"][  # type: ignore[index]
        "containers"][0]
    assert "envFrom" not in container


def test_redeploy_removes_what_the_plan_no_longer_has(
    app_dir: Path, kube_env: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    assert deploy(app_dir, {**kube_env, "K8s_REDIS": "1", "K8s_MONGODB": "1"})[0] == 0
    code, out, _ = deploy(app_dir, kube_env)
    assert code == 0
    assert "removed Deployment default/jaseci-redis (no longer deployed)" in out
    assert "removed HorizontalPodAutoscaler default/jaseci (no longer deployed)" in out
    assert fake_kube.names("deployments") == ["jaseci"]
    assert fake_kube.names("statefulsets") == []
    # MongoDB's credentials stay with its volume, in case it comes back.
    assert "jaseci-mongodb-auth" in fake_kube.names("secrets")
    assert "jaseci-redis-auth" not in fake_kube.names("secrets")


def test_missing_namespace_is_created(
    app_dir: Path, kube_env: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    code, out, _ = deploy(app_dir, {**kube_env, "K8s_NAMESPACE": "team-a"})
    assert code == 0
    assert "created Namespace team-a" in out
    assert fake_kube.get("namespaces", "", "team-a") is not None
    assert fake_kube.get("deployments", "team-a", "jaseci") is not None


def test_forbidden_namespace_read_still_deploys(
    app_dir: Path, kube_env: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    fake_kube.fail("GET", "namespaces", 403, 'namespaces "default" is forbidden')
    assert deploy(app_dir, kube_env)[0] == 0


def test_no_kubeconfig_is_one_line_and_exit_1(app_dir: Path, bare_env: dict[str, str]) -> None:
    code, out, err = deploy(app_dir, bare_env)
    assert code == 1
    assert out == ""
    (line,) = errors(err)
    assert line.startswith("jacscale deploy: no Kubernetes cluster configured: KUBECONFIG is "
                           "not set")
    assert "never falls back to a local server" in line


def test_kubeconfig_pointing_nowhere(app_dir: Path, bare_env: dict[str, str], tmp_path: Path) -> None:
    code, _, err = deploy(app_dir, {**bare_env, "KUBECONFIG": str(tmp_path / "missing")})
    assert code == 1
    (line,) = errors(err)
    assert f"KUBECONFIG={tmp_path / 'missing'}: no such file" in line


@pytest.mark.parametrize("text", ["clusters: [unclosed", "apiVersion: v1\nkind: Config\n"
                                  "current-context: nowhere\n"])
def test_broken_kubeconfig(app_dir: Path, bare_env: dict[str, str], tmp_path: Path,
                           text: str) -> None:
    kubeconfig = tmp_path / "broken"
    kubeconfig.write_text(text)
    code, _, err = deploy(app_dir, {**bare_env, "KUBECONFIG": str(kubeconfig)})
    assert code == 1
    (line,) = errors(err)
    assert line.startswith(f"jacscale deploy: kubeconfig {kubeconfig}: ")


def test_unreachable_cluster(app_dir: Path, bare_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = FakeKubeApi(url=f"http://127.0.0.1:{port}")
    kubeconfig = api.write_kubeconfig(tmp_path / "kc")
    code, _, err = deploy(app_dir, {**bare_env, "KUBECONFIG": str(kubeconfig)})
    assert code == 1
    (line,) = errors(err)
    assert line.startswith(f"jacscale deploy: cannot reach the Kubernetes API at "
                           f"http://127.0.0.1:{port}")


def test_wrong_credentials(
    app_dir: Path, kube_env: dict[str, str], fake_kube: FakeKubeApi, tmp_path: Path
) -> None:
    kubeconfig = Path(kube_env["KUBECONFIG"])
    kubeconfig.write_text(kubeconfig.read_text().replace("fake-token", "stolen-token"))
    code, _, err = deploy(app_dir, kube_env)
    assert code == 1
    (line,) = errors(err)
    assert line == (f"jacscale deploy: the Kubernetes API at {fake_kube.url}: GET failed: "
                    "401 Unauthorized")
    assert "stolen-token" not in err


def test_api_errors_name_the_object_and_the_message(
    app_dir: Path, kube_env: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    fake_kube.fail("POST", "deployments", 422, 'Deployment.apps "jaseci" is invalid: '
                   'spec.template.spec.containers[0].image: Required value', name=None)
    code, _, err = deploy(app_dir, kube_env)
    assert code == 1
    (line,) = errors(err)
    assert line == ('jacscale deploy: Deployment default/jaseci: POST failed: 422 Unprocessable Entity: '
                    'Deployment.apps "jaseci" is invalid: spec.template.spec.containers[0].image:'
                    ' Required value')


def test_rollout_timeout_reports_the_pods(
    app_dir: Path, kube_env: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    fake_kube.rollout_mode = "stuck"
    code, out, err = deploy(app_dir, kube_env, timeout=0.3)
    assert code == 1
    (line,) = errors(err)
    assert line.startswith("jacscale deploy: Deployment default/jaseci did not roll out within "
                           "0.3 s (1/1 updated, 0/1 available); pod jaseci-")
    assert "ImagePullBackOff" in line
    assert "0/1 available" in out


def test_progress_deadline_fails_at_once(
    app_dir: Path, kube_env: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    fake_kube.rollout_mode = "deadline"
    code, _, err = deploy(app_dir, kube_env, timeout=30)
    assert code == 1
    (line,) = errors(err)
    assert "Deployment default/jaseci: ReplicaSet" in line and "timed out progressing" in line


def test_bad_timeout(app_dir: Path, kube_env: dict[str, str]) -> None:
    code, _, err = deploy(app_dir, kube_env, timeout=0)
    assert code == 1
    assert "--timeout must be positive" in err


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"target": "aws"}, "unknown deploy target 'aws'; available: kubernetes"),
    ({"registry": "ecr"}, "unknown image registry 'ecr'; available: dockerhub"),
])
def test_unknown_target_or_registry_lists_the_known_ones(
    app_dir: Path, kube_env: dict[str, str], kwargs: dict[str, str], needle: str
) -> None:
    code, _, err = deploy(app_dir, kube_env, **kwargs)
    assert code == 1
    assert err.strip() == f"jacscale deploy: {needle}"


def test_missing_app_file(tmp_path: Path, kube_env: dict[str, str]) -> None:
    err = io.StringIO()
    code = run_deploy(str(tmp_path / "nope.jac"), env=kube_env, out=io.StringIO(), err=err)
    assert code == 1
    assert err.getvalue().strip() == f"jacscale deploy: {tmp_path / 'nope.jac'}: no such file"
