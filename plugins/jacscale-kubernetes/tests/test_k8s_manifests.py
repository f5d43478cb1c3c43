"""The generated manifests: golden files, offline schema validation, operator rules."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

import pytest
from jacscale_kubernetes import versions
from jacscale_kubernetes.manifests import secret_values
from k8s_helpers import by_kind, plan_for, pod_specs, preview_docs, validate_all

from jacscale_core.deploy import DeployError, run_deploy

GOLDEN = Path(__file__).parent / "golden"
REPO = Path(__file__).resolve().parents[3]
TODO_APP = REPO / "examples" / "todo" / "app.jac"

FULL_SEED_ENV = {
    "APP_NAME": "todo", "K8s_NAMESPACE": "apps", "K8s_NODE_PORT": "30080",
    "K8s_CPU_REQUEST": "500m", "K8s_CPU_LIMIT": "2", "K8s_MEMORY_REQUEST": "256Mi",
    "K8s_MEMORY_LIMIT": "1Gi", "K8s_READINESS_INITIAL_DELAY": "5",
    "K8s_READINESS_PERIOD": "7", "K8s_LIVENESS_INITIAL_DELAY": "15",
    "K8s_LIVENESS_PERIOD": "30", "K8s_LIVENESS_FAILURE_THRESHOLD": "4",
    "K8s_MONGODB": "true", "K8s_REDIS": "true", "OPENAI_API_KEY": "sk-very-secret",
}
SECRETS_TOML = '[plugins.scale.secrets]\nOPENAI_API_KEY = "${OPENAI_API_KEY}"\nSTATIC = "hard"\n'


def normalise(text: str) -> str:
    """The installed jacscale version is not part of what a golden file pins."""
    return text.replace(f":{versions.installed_version('jacscale')}\n", ":<jacscale-version>\n")


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    text = normalise(text)
    if os.environ.get("JACSCALE_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.is_file(), f"{path} missing: run with JACSCALE_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"{name} changed: review, then JACSCALE_UPDATE_GOLDEN=1"


def test_golden_defaults(app_dir: Path) -> None:
    check_golden("defaults.yaml", plan_for(app_dir / "app.jac", {}).preview)


def test_golden_every_seed_variable(app_dir: Path) -> None:
    (app_dir / "jac.toml").write_text(SECRETS_TOML)
    check_golden("seed_full.yaml", plan_for(app_dir / "app.jac", FULL_SEED_ENV).preview)


CONFIGS: dict[str, tuple[dict[str, str], str]] = {
    "defaults": ({}, ""),
    "seed_full": (FULL_SEED_ENV, SECRETS_TOML),
    "clusterip": ({"K8s_SERVICE_TYPE": "ClusterIP", "K8s_MONGODB": "1",
                   "K8s_REPLICAS": "2", "K8s_MAX_REPLICAS": "6"}, ""),
    "loadbalancer_image": ({"K8s_SERVICE_TYPE": "LoadBalancer",
                            "K8s_IMAGE": "registry.example/acme/todo:1.2.3"}, ""),
    "external_mongo": ({"URI": "mongodb://db"}, '[plugins.scale.secrets]\nMONGODB_URI = "${URI}"\n'
                       '[plugins.scale.kubernetes]\nstorage_class = "fast"\n'),
}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_every_manifest_is_schema_valid(app_dir: Path, config: str) -> None:
    env, toml = CONFIGS[config]
    (app_dir / "jac.toml").write_text(toml)
    plan = plan_for(app_dir / "app.jac", env)
    validate_all(plan.manifests)
    validate_all(preview_docs(plan.preview))  # what --dry-run prints, secrets redacted


def test_built_image_manifests_are_schema_valid(app_dir: Path) -> None:
    plan = plan_for(app_dir / "app.jac", {"DOCKER_USERNAME": "alice", "K8s_MONGODB": "1"},
                    build=True)
    validate_all(plan.manifests)
    deployment = by_kind(plan.manifests, "Deployment", "jaseci")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == plan.image and image.startswith("docker.io/alice/jaseci:")
    assert not any(m["kind"] == "ConfigMap" for m in plan.manifests)  # the app is in the image


def test_schema_validation_catches_a_broken_manifest(app_dir: Path) -> None:
    import jsonschema

    deployment = by_kind(plan_for(app_dir / "app.jac", {}).manifests, "Deployment")
    deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailabel"] = 0
    with pytest.raises(jsonschema.ValidationError, match="maxUnavailabel"):
        validate_all([deployment])


def test_security_context_is_restricted_everywhere(app_dir: Path) -> None:
    plan = plan_for(app_dir / "app.jac", {"K8s_MONGODB": "1", "K8s_REDIS": "1"})
    specs = pod_specs(plan.manifests)
    assert len(specs) == 3  # app, mongodb, redis
    for spec in specs:
        assert spec["automountServiceAccountToken"] is False
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["privileged"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["runAsNonRoot"] is True
            assert "requests" in container["resources"]


def test_app_deployment_probes_rollout_and_command(app_dir: Path) -> None:
    plan = plan_for(app_dir / "app.jac", FULL_SEED_ENV)
    spec = by_kind(plan.manifests, "Deployment", "todo")["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    container = spec["template"]["spec"]["containers"][0]
    assert container["command"] == ["jacscale", "serve", "app.jac", "--host", "0.0.0.0",
                                    "--port", "8000"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    live, ready = container["livenessProbe"], container["readinessProbe"]
    assert (live["initialDelaySeconds"], live["periodSeconds"], live["failureThreshold"]) == (
        15, 30, 4)
    assert (ready["initialDelaySeconds"], ready["periodSeconds"]) == (5, 7)
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "256Mi"},
                                      "limits": {"cpu": "2", "memory": "1Gi"}}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "replicas" not in spec  # the HPA owns the replica count


def test_service_nodeport_and_clusterip(app_dir: Path) -> None:
    service = by_kind(plan_for(app_dir / "app.jac", {"K8s_NODE_PORT": "31234"}).manifests,
                      "Service")
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["nodePort"] == 31234
    service = by_kind(plan_for(app_dir / "app.jac", {"K8s_SERVICE_TYPE": "ClusterIP"}).manifests,
                      "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert "nodePort" not in service["spec"]["ports"][0]


def test_autoscaler_only_with_a_shared_store(app_dir: Path) -> None:
    alone = plan_for(app_dir / "app.jac", {})
    assert not any(m["kind"] == "HorizontalPodAutoscaler" for m in alone.manifests)
    assert by_kind(alone.manifests, "Deployment")["spec"]["replicas"] == 1
    assert any("no shared store" in note for note in alone.notes)
    shared = plan_for(app_dir / "app.jac", {"K8s_MONGODB": "1", "K8s_REPLICAS": "2",
                                            "K8s_MAX_REPLICAS": "5"})
    hpa = by_kind(shared.manifests, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "jaseci"}
    pdb = by_kind(shared.manifests, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1  # a drain can always proceed


def all_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in all_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in all_strings(v)]
    return [value] if isinstance(value, str) else []


def test_database_credentials_are_generated_and_only_in_secrets(app_dir: Path) -> None:
    env = {"K8s_MONGODB": "1", "K8s_REDIS": "1"}
    first = plan_for(app_dir / "app.jac", env)
    second = plan_for(app_dir / "app.jac", env)
    secret_one = secret_values(by_kind(first.manifests, "Secret", "jaseci-mongodb-auth"))
    secret_two = secret_values(by_kind(second.manifests, "Secret", "jaseci-mongodb-auth"))
    password = secret_one["MONGO_INITDB_ROOT_PASSWORD"]
    assert len(password) >= 24 and password != secret_two["MONGO_INITDB_ROOT_PASSWORD"]
    assert password in secret_one["MONGODB_URI"]
    redis_password = secret_values(by_kind(first.manifests, "Secret", "jaseci-redis-auth"))[
        "REDIS_PASSWORD"]
    jwt = secret_values(by_kind(first.manifests, "Secret", "jaseci-auth"))["JWT_SECRET"]
    non_secrets = [m for m in first.manifests if m["kind"] != "Secret"]
    for text in all_strings(non_secrets):
        for value in (password, redis_password, jwt):
            assert value not in text
    for value in (password, redis_password, jwt):
        assert value not in first.preview
        assert base64.b64encode(value.encode()).decode() not in first.preview
    mongo = by_kind(first.manifests, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"] for e in mongo["env"] if "valueFrom" in e} == {
        "MONGO_INITDB_ROOT_USERNAME", "MONGO_INITDB_ROOT_PASSWORD"}
    app = by_kind(first.manifests, "Deployment", "jaseci")["spec"]["template"]["spec"]
    env_refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
                for e in app["containers"][0]["env"] if "valueFrom" in e}
    assert env_refs == {"JWT_SECRET": "jaseci-auth", "MONGODB_URI": "jaseci-mongodb-auth",
                        "REDIS_URL": "jaseci-redis-auth"}


def test_user_secrets_become_a_secret_mounted_by_envfrom(app_dir: Path) -> None:
    (app_dir / "jac.toml").write_text(SECRETS_TOML + 'JWT_SECRET = "mine-${OPENAI_API_KEY}"\n')
    plan = plan_for(app_dir / "app.jac", {"OPENAI_API_KEY": "sk-very-secret"})
    secret = by_kind(plan.manifests, "Secret", "jaseci-secrets")
    assert secret["type"] == "Opaque"
    assert secret_values(secret) == {"OPENAI_API_KEY": "sk-very-secret", "STATIC": "hard",
                                    "JWT_SECRET": "mine-sk-very-secret"}
    container = by_kind(plan.manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "jaseci-secrets"}}]
    # The user's JWT_SECRET wins: no generated one, no env entry shadowing envFrom.
    assert not any(m["metadata"]["name"] == "jaseci-auth" for m in plan.manifests)
    assert "JWT_SECRET" not in {e["name"] for e in container["env"]}
    assert "sk-very-secret" not in plan.preview


def test_source_configmap_mounts_every_app_file(app_dir: Path) -> None:
    (app_dir / "lib").mkdir()
    (app_dir / "lib" / "helpers.jac").write_text("def helper() -> int { return 1; }\n")
    (app_dir / "logo.bin").write_bytes(b"\xff\x00\xfe")
    (app_dir / ".env").write_text("SECRET=1\n")
    (app_dir / ".jac").mkdir()
    (app_dir / ".jac" / "data.db").write_text("x")
    plan = plan_for(app_dir / "app.jac", {})
    cm = by_kind(plan.manifests, "ConfigMap")
    assert set(cm["data"]) == {"app.jac", "jac.toml", "lib__helpers.jac"}
    assert set(cm["binaryData"]) == {"logo.bin"}
    spec = by_kind(plan.manifests, "Deployment")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m.get("subPath") for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["/app/lib/helpers.jac"] == "lib__helpers.jac"
    assert mounts["/app/app.jac"] == "app.jac"
    assert "/app/.env" not in mounts
    annotations = by_kind(plan.manifests, "Deployment")["spec"]["template"]["metadata"][
        "annotations"]
    (app_dir / "app.jac").write_text("walker :pub ping2 { }\n")
    changed = by_kind(plan_for(app_dir / "app.jac", {}).manifests, "Deployment")
    assert changed["spec"]["template"]["metadata"]["annotations"] != annotations  # rolls out


def test_too_big_for_a_configmap_points_at_build(app_dir: Path) -> None:
    (app_dir / "big.txt").write_text("x" * 1_000_000)
    with pytest.raises(DeployError, match="deploy with --build"):
        plan_for(app_dir / "app.jac", {})


def test_dry_run_of_the_todo_example_matches_the_seed_variables() -> None:
    out, err = io.StringIO(), io.StringIO()
    env = {"APP_NAME": "todo", "K8s_NAMESPACE": "prod", "K8s_NODE_PORT": "30099",
           "K8s_MONGODB": "true", "K8s_REDIS": "true", "K8s_MEMORY_LIMIT": "1Gi"}
    assert run_deploy(str(TODO_APP), dry_run=True, env=env, out=out, err=err) == 0, err.getvalue()
    docs = preview_docs(out.getvalue())
    validate_all(docs)
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == {
        ("Secret", "todo-auth"), ("Secret", "todo-mongodb-auth"), ("Secret", "todo-redis-auth"),
        ("ConfigMap", "todo-source"), ("Service", "todo-mongodb"), ("StatefulSet", "todo-mongodb"),
        ("Service", "todo-redis"), ("Deployment", "todo-redis"), ("Deployment", "todo"),
        ("Service", "todo"), ("HorizontalPodAutoscaler", "todo"), ("PodDisruptionBudget", "todo")}
    assert all(d["metadata"]["namespace"] == "prod" for d in docs)
    assert by_kind(docs, "Service", "todo")["spec"]["ports"][0]["nodePort"] == 30099
    app = by_kind(docs, "Deployment", "todo")["spec"]["template"]["spec"]["containers"][0]
    assert app["resources"]["limits"] == {"memory": "1Gi"}
