"""PostgreSQL on Kubernetes: K8s_POSTGRES=true (or database = "postgres") adds a StatefulSet
with generated credentials; an external DATABASE_URL secret is used as it is."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from jacscale_kubernetes.manifests import secret_values
from k8s_helpers import by_kind, plan_for, preview_docs, validate_all
from test_k8s_manifests import TODO_APP, all_strings, check_golden

from jacscale_core.deploy import DeployError, run_deploy


def test_golden_postgres(app_dir: Path) -> None:
    check_golden("postgres.yaml", plan_for(app_dir / "app.jac", {"K8s_POSTGRES": "true"}).preview)


@pytest.mark.parametrize(
    ("env", "toml"),
    [
        ({"K8s_POSTGRES": "1", "K8s_REPLICAS": "2", "K8s_MAX_REPLICAS": "4"}, ""),
        ({}, '[plugins.scale.kubernetes]\ndatabase = "postgres"\nstorage_class = "fast"\n'),
        (
            {"PG": "postgresql://u:p@db.internal/app"},
            '[plugins.scale.secrets]\nDATABASE_URL = "${PG}"\n[plugins.scale.kubernetes]\nreplicas = 3\n'
            "max_replicas = 3\n",
        ),
    ],
)
def test_postgres_manifests_are_schema_valid(app_dir: Path, env: dict[str, str], toml: str) -> None:
    (app_dir / "jac.toml").write_text(toml)
    plan = plan_for(app_dir / "app.jac", env)
    validate_all(plan.manifests)
    validate_all(preview_docs(plan.preview))


def test_generated_credentials_live_only_in_the_secret(app_dir: Path) -> None:
    (app_dir / "jac.toml").write_text('[plugins.scale.kubernetes]\ndatabase = "postgres"\n')
    plan = plan_for(app_dir / "app.jac", {"K8s_REPLICAS": "2", "K8s_MAX_REPLICAS": "4"})
    values = secret_values(by_kind(plan.manifests, "Secret", "jaseci-postgres-auth"))
    password = values["POSTGRES_PASSWORD"]
    assert len(password) >= 24
    assert values["DATABASE_URL"] == (
        f"postgresql://jacscale:{password}@jaseci-postgres.default.svc:5432/jaseci"
    )
    for text in all_strings([m for m in plan.manifests if m["kind"] != "Secret"]):
        assert password not in text
    assert password not in plan.preview
    assert base64.b64encode(password.encode()).decode() not in plan.preview
    database = by_kind(plan.manifests, "StatefulSet", "jaseci-postgres")["spec"]
    pod = database["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 999
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["PGDATA"]["value"] == "/var/lib/postgresql/data/pgdata"
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "jaseci-postgres-auth"
    assert database["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "1Gi"
    app = by_kind(plan.manifests, "Deployment", "jaseci")["spec"]["template"]["spec"]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in app["containers"][0]["env"]
        if "valueFrom" in e
    }
    assert refs["DATABASE_URL"] == "jaseci-postgres-auth"
    # A shared store: replicas and an autoscaler are allowed.
    assert by_kind(plan.manifests, "HorizontalPodAutoscaler")["spec"]["minReplicas"] == 2


def test_an_external_database_url_adds_no_database(app_dir: Path) -> None:
    (app_dir / "jac.toml").write_text('[plugins.scale.secrets]\nDATABASE_URL = "${PG}"\n')
    plan = plan_for(
        app_dir / "app.jac",
        {"PG": "postgresql://u:pw@db/app", "K8s_REPLICAS": "2", "K8s_MAX_REPLICAS": "2"},
    )
    assert not any(m["kind"] == "StatefulSet" for m in plan.manifests)
    assert secret_values(by_kind(plan.manifests, "Secret", "jaseci-secrets"))["DATABASE_URL"] == (
        "postgresql://u:pw@db/app"
    )
    assert "u:pw@db" not in plan.preview


def test_bad_choices_are_refused_naming_the_setting(app_dir: Path) -> None:
    (app_dir / "jac.toml").write_text('[plugins.scale.kubernetes]\ndatabase = "mysql"\n')
    with pytest.raises(DeployError, match=r"database='mysql': use one of postgres, mongodb"):
        plan_for(app_dir / "app.jac", {})
    (app_dir / "jac.toml").write_text("")
    with pytest.raises(DeployError, match="choose one graph store"):
        plan_for(app_dir / "app.jac", {"K8s_POSTGRES": "1", "K8s_MONGODB": "1"})
    with pytest.raises(DeployError, match="K8s_POSTGRES=true"):
        plan_for(app_dir / "app.jac", {"K8s_REPLICAS": "2", "K8s_MAX_REPLICAS": "2"})


def test_dry_run_shows_the_postgres_statefulset() -> None:
    out, err = io.StringIO(), io.StringIO()
    env = {"APP_NAME": "todo", "K8s_POSTGRES": "true"}
    assert run_deploy(str(TODO_APP), dry_run=True, env=env, out=out, err=err) == 0, err.getvalue()
    docs = preview_docs(out.getvalue())
    validate_all(docs)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {
        ("Secret", "todo-postgres-auth"),
        ("Service", "todo-postgres"),
        ("StatefulSet", "todo-postgres"),
    } <= names
    assert "<generated at first deploy, kept afterwards>" in out.getvalue()
