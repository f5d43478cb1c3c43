"""Settings for Kubernetes deploys: the reference document's variables, jac.toml, and bad values."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from jacscale_kubernetes import versions
from jacscale_kubernetes.plugin import jacscale_config_sections
from jacscale_kubernetes.settings import KubeSettings, resolve, resolve_secrets

from jacscale_core.config import load_settings
from jacscale_core.deploy import DeployError, run_deploy


def kube(app_dir: Path, env: dict[str, str], toml: str | None = None) -> KubeSettings:
    if toml is not None:
        (app_dir / "jac.toml").write_text(toml)
    settings = load_settings(app_dir / "app.jac", jacscale_config_sections(), env=env)
    return resolve(settings, env)


def test_defaults_are_the_seeds(app_dir: Path) -> None:
    k = kube(app_dir, {})
    assert (k.app_name, k.namespace, k.node_port, k.service_type) == (
        "jaseci", "default", 30001, "NodePort")
    assert (k.readiness_initial_delay, k.readiness_period) == (10, 20)
    assert (k.liveness_initial_delay, k.liveness_period, k.liveness_failure_threshold) == (
        10, 20, 80)
    assert (k.mongodb, k.redis, k.cpu_limit, k.memory_limit) == (False, False, None, None)
    # jac-scale leaves requests empty; a scheduler and an HPA need them.
    assert (k.cpu_request, k.memory_request) == ("250m", "512Mi")


SEED_ENV = {
    "APP_NAME": "todo", "K8s_NAMESPACE": "apps", "K8s_NODE_PORT": "30080",
    "K8s_CPU_REQUEST": "500m", "K8s_CPU_LIMIT": "2", "K8s_MEMORY_REQUEST": "256Mi",
    "K8s_MEMORY_LIMIT": "1Gi", "K8s_READINESS_INITIAL_DELAY": "5",
    "K8s_READINESS_PERIOD": "7", "K8s_LIVENESS_INITIAL_DELAY": "15",
    "K8s_LIVENESS_PERIOD": "30", "K8s_LIVENESS_FAILURE_THRESHOLD": "4",
    "K8s_MONGODB": "true", "K8s_REDIS": "True",
}


def test_every_seed_variable_is_read(app_dir: Path) -> None:
    k = kube(app_dir, SEED_ENV)
    assert (k.app_name, k.namespace, k.node_port) == ("todo", "apps", 30080)
    assert (k.cpu_request, k.cpu_limit, k.memory_request, k.memory_limit) == (
        "500m", "2", "256Mi", "1Gi")
    assert (k.readiness_initial_delay, k.readiness_period) == (5, 7)
    assert (k.liveness_initial_delay, k.liveness_period, k.liveness_failure_threshold) == (
        15, 30, 4)
    assert k.mongodb and k.redis


def test_jac_toml_then_environment_wins(app_dir: Path) -> None:
    toml = '[plugins.scale.kubernetes]\napp_name = "fromtoml"\nnode_port = 30500\nredis = true\n'
    k = kube(app_dir, {}, toml)
    assert (k.app_name, k.node_port, k.redis) == ("fromtoml", 30500, True)
    k = kube(app_dir, {"APP_NAME": "fromenv", "K8s_REDIS": "false"}, toml)
    assert (k.app_name, k.node_port, k.redis) == ("fromenv", 30500, False)


def test_uppercase_spelling_and_empty_values(app_dir: Path) -> None:
    k = kube(app_dir, {"K8S_NAMESPACE": "upper", "K8s_NODE_PORT": ""})
    assert k.namespace == "upper"
    assert k.node_port == 30001  # an empty variable counts as unset


@pytest.mark.parametrize(("env", "needle"), [
    ({"APP_NAME": "My_App"}, "APP_NAME='My_App'"),
    ({"APP_NAME": "9lives"}, "APP_NAME='9lives'"),
    ({"APP_NAME": "a" * 41}, "at most 40"),
    ({"K8s_NAMESPACE": "Bad_NS"}, "K8s_NAMESPACE='Bad_NS'"),
    ({"K8s_NODE_PORT": "abc"}, "K8s_NODE_PORT='abc' is not an integer"),
    ({"K8s_NODE_PORT": "8080"}, "K8s_NODE_PORT=8080: a NodePort must be in 30000-32767"),
    ({"K8s_CPU_REQUEST": "lots"}, "K8s_CPU_REQUEST='lots': not a Kubernetes quantity"),
    ({"K8s_MEMORY_LIMIT": "1 GB"}, "K8s_MEMORY_LIMIT='1 GB'"),
    ({"K8s_MONGODB": "maybe"}, "K8s_MONGODB='maybe' is not a boolean"),
    ({"K8s_READINESS_PERIOD": "0"}, "K8s_READINESS_PERIOD: must be at least 1"),
    ({"K8s_LIVENESS_INITIAL_DELAY": "-1"}, "K8s_LIVENESS_INITIAL_DELAY: must be 0 or more"),
    ({"K8s_SERVICE_TYPE": "Ingress"}, "K8s_SERVICE_TYPE='Ingress': use one of NodePort"),
    ({"K8s_REPLICAS": "2"}, "K8s_REPLICAS=2 needs a shared store"),
    ({"K8s_MONGODB": "1", "K8s_REPLICAS": "3", "K8s_MAX_REPLICAS": "2"},
     "K8s_MAX_REPLICAS=2: must be at least the replicas (3)"),
    ({"K8s_IMAGE": "has space:1"}, "K8s_IMAGE='has space:1': not an image reference"),
])
def test_bad_values_name_the_variable(app_dir: Path, env: dict[str, str], needle: str) -> None:
    with pytest.raises(DeployError) as err:
        kube(app_dir, env)
    assert needle in str(err.value)


def test_bad_toml_value_names_the_key(app_dir: Path) -> None:
    with pytest.raises(DeployError, match=r"\[plugins.scale.kubernetes\] node_port=5"):
        kube(app_dir, {}, "[plugins.scale.kubernetes]\nnode_port = 5\n")


def test_clusterip_needs_no_node_port(app_dir: Path) -> None:
    k = kube(app_dir, {"K8s_SERVICE_TYPE": "ClusterIP", "K8s_NODE_PORT": "1"})
    assert k.service_type == "ClusterIP"


def test_bad_value_through_run_deploy_is_one_line_and_exit_1(app_dir: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = run_deploy(str(app_dir / "app.jac"), dry_run=True, env={"K8s_NODE_PORT": "x"},
                      out=out, err=err)
    assert code == 1
    assert out.getvalue() == ""
    assert err.getvalue().strip() == "jacscale deploy: K8s_NODE_PORT='x' is not an integer"


# ------------------------------------------------------------------ secrets --


def test_secrets_resolve_env_references() -> None:
    raw = {"OPENAI_API_KEY": "${OPENAI_API_KEY}", "DATABASE_PASSWORD": "${DB_PASS}",
           "STATIC_VALUE": "hardcoded-value", "MIXED": "user:${DB_PASS}@host"}
    env = {"OPENAI_API_KEY": "sk-123", "DB_PASS": "p4ss"}
    assert resolve_secrets(raw, env) == {
        "OPENAI_API_KEY": "sk-123", "DATABASE_PASSWORD": "p4ss",
        "STATIC_VALUE": "hardcoded-value", "MIXED": "user:p4ss@host"}


@pytest.mark.parametrize(("raw", "needle"), [
    ({"KEY": "${MISSING}"}, "[plugins.scale.secrets] KEY needs ${MISSING}, which is not set"),
    ({"KEY": 5}, "[plugins.scale.secrets] KEY: must be a string"),
    ({"bad-key": "x"}, "[plugins.scale.secrets] bad-key: not a valid environment variable"),
    ({"KEY": "${not valid}"}, "is not a valid variable reference"),
])
def test_bad_secrets_are_named(raw: dict[str, object], needle: str) -> None:
    with pytest.raises(DeployError) as err:
        resolve_secrets(raw, {})
    assert needle in str(err.value)


def test_secrets_from_jac_toml(app_dir: Path) -> None:
    toml = '[plugins.scale.secrets]\nOPENAI_API_KEY = "${OPENAI_API_KEY}"\nSTATIC = "v"\n'
    k = kube(app_dir, {"OPENAI_API_KEY": "sk-x"}, toml)
    assert k.secrets == {"OPENAI_API_KEY": "sk-x", "STATIC": "v"}
    assert not k.shared_store
    k = kube(app_dir, {"M": "mongodb://x"}, '[plugins.scale.secrets]\nMONGODB_URI = "${M}"\n')
    assert k.shared_store  # an external MongoDB counts


def test_missing_secret_env_fails_the_dry_run_without_leaking(app_dir: Path) -> None:
    (app_dir / "jac.toml").write_text('[plugins.scale.secrets]\nA = "${NOPE}"\nB = "s3cr3t"\n')
    err = io.StringIO()
    code = run_deploy(str(app_dir / "app.jac"), dry_run=True, env={}, out=io.StringIO(), err=err)
    assert code == 1
    assert "needs ${NOPE}" in err.getvalue()
    assert "s3cr3t" not in err.getvalue()


# ---------------------------------------------------------- plugin_versions --


def versions_of(app_dir: Path, table: str, env: dict[str, str] | None = None) -> KubeSettings:
    return kube(app_dir, env or {}, "[plugins.scale.kubernetes.plugin_versions]\n" + table)


def test_plugin_versions_pin_skip_and_latest(app_dir: Path) -> None:
    k = versions_of(app_dir, 'jaclang = "0.16.7"\njac_client = "0.1.0"\njac_byllm = "none"\n'
                             'jac_scale = "latest"\nextra = ">=1.2,<2"\n', {"K8s_REDIS": "1"})
    lines = versions.requirements(k).lines()
    assert lines[0] == "jacscale"  # jac-scale's key means us; "latest" leaves it unpinned
    assert "jaclang==0.16.7" in lines and "jac-client==0.1.0" in lines
    assert "extra>=1.2,<2" in lines
    assert not any(line.startswith("jac-byllm") for line in lines)
    assert any(line.startswith("jacscale-redis") for line in lines)


def test_default_requirements_pin_the_installed_jacscale(app_dir: Path) -> None:
    k = kube(app_dir, {})
    installed = versions.installed_version("jacscale")
    assert versions.requirements(k).lines() == [f"jacscale=={installed}"]


@pytest.mark.parametrize(("table", "needle"), [
    ('jaclang = "banana"\n', "jaclang='banana': not a version"),
    ('jaclang = 1\n', "jaclang: must be a string"),
    ('"bad name!" = "1.0"\n', "not a valid package name"),
])
def test_bad_plugin_versions(app_dir: Path, table: str, needle: str) -> None:
    with pytest.raises(DeployError) as err:
        versions_of(app_dir, table)
    assert needle in str(err.value)


def test_jacscale_cannot_be_none(app_dir: Path) -> None:
    k = versions_of(app_dir, 'jacscale = "none"\n')
    with pytest.raises(DeployError, match="jacscale cannot be \"none\""):
        versions.requirements(k)


def test_runtime_tag_follows_the_jacscale_pin(app_dir: Path) -> None:
    assert versions.runtime_tag(versions_of(app_dir, 'jac_scale = "0.2.0"\n')) == "0.2.0"
    assert versions.runtime_tag(versions_of(app_dir, 'jacscale = "latest"\n')) == "latest"
    assert versions.runtime_tag(versions_of(app_dir, 'jac_byllm = "none"\n')) == \
        versions.installed_version("jacscale")
    with pytest.raises(DeployError, match="deploy with --build"):
        versions.runtime_tag(versions_of(app_dir, 'jac_client = "0.1.0"\n'))
    with pytest.raises(DeployError, match="needs an exact version"):
        versions.runtime_tag(versions_of(app_dir, 'jacscale = ">=0.1"\n'))


# ------------------------------------------------------- start-up warnings --


def warnings_for(app_dir: Path, toml: str) -> list[str]:
    (app_dir / "jac.toml").write_text(toml)
    return load_settings(app_dir / "app.jac", jacscale_config_sections(), env={}).warnings


def test_plugin_versions_and_unknown_keys_at_start_up(app_dir: Path) -> None:
    toml = ('[plugins.scale.kubernetes]\napp_name = "x"\nbogus = 1\n'
            '[plugins.scale.kubernetes.plugin_versions]\njaclang = "0.16.7"\n')
    warnings = warnings_for(app_dir, toml)
    assert len(warnings) == 1 and "unknown key [plugins.scale.kubernetes] bogus" in warnings[0]


def test_secrets_keys_are_not_reported_as_unknown(app_dir: Path) -> None:
    assert warnings_for(app_dir, '[plugins.scale.secrets]\nOPENAI_API_KEY = "${K}"\n') == []
