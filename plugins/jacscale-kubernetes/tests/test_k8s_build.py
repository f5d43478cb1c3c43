"""`--build`: the Dockerfile, and building/pushing through the container engine.

No container engine runs here: a stand-in `docker` script on PATH records the
commands it is given (and what arrives on its stdin), so the tests check the
exact calls and the error paths, not an image.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from jacscale_kubernetes import dockerfile, versions
from jacscale_kubernetes.settings import BASE_IMAGE
from k8s_fake_api import FakeKubeApi
from k8s_helpers import by_kind, plan_for

from jacscale_core.deploy import DeployError, run_deploy

FAKE_DOCKER = """\
#!/bin/sh
echo "$*" >> "$FAKE_DOCKER_LOG"
if [ "$1" = "login" ]; then cat > "$FAKE_DOCKER_LOG.stdin"; fi
if [ "$1" = "$FAKE_DOCKER_FAIL" ]; then echo "fake $1 failed" >&2; exit 3; fi
if [ "$1" = "$FAKE_DOCKER_HANG" ]; then exec sleep 30; fi
exit 0
"""


@pytest.fixture
def docker_env(tmp_path: Path, kube_env: dict[str, str]) -> dict[str, str]:
    """kube_env plus a stand-in `docker` first on PATH and Docker Hub credentials."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(docker.stat().st_mode | stat.S_IXUSR)
    return {**kube_env, "PATH": f"{bin_dir}{os.pathsep}{kube_env['PATH']}",
            "FAKE_DOCKER_LOG": str(tmp_path / "docker.log"), "DOCKER_USERNAME": "Alice",
            "DOCKER_PASSWORD": "hub-token-123"}


def test_dockerfile_is_pinned_non_root_and_installs_at_build_time(app_dir: Path) -> None:
    plan = plan_for(app_dir / "app.jac", {"DOCKER_USERNAME": "alice", "K8s_REDIS": "1"},
                    build=True)
    assert plan.build is not None
    text = plan.build.files[plan.build.dockerfile]
    assert plan.build.dockerfile == app_dir / ".jac" / "deploy" / "Dockerfile"
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert froms == [f"FROM {BASE_IMAGE} AS wheels", f"FROM {BASE_IMAGE}"]
    assert ":latest" not in text and BASE_IMAGE.count(".") >= 2  # an exact Python release
    assert "pip wheel --wheel-dir /wheels -r /wheels/requirements.txt" in text
    assert "pip install --no-index --find-links=/wheels" in text
    assert "USER 10001:10001" in text
    assert text.rstrip().endswith(
        'CMD ["jacscale", "serve", "app.jac", "--host", "0.0.0.0", "--port", "8000"]')
    requirements = plan.build.files[app_dir / ".jac" / "deploy" / "requirements.txt"]
    assert requirements.splitlines() == [
        f"jacscale=={versions.installed_version('jacscale')}",
        "jacscale-redis" + (f"=={v}" if (v := versions.installed_version("jacscale-redis"))
                            else "")]
    ignore = plan.build.files[app_dir / ".jac" / "deploy" / "Dockerfile.dockerignore"]
    assert "**/.*" in ignore and "!.jac/deploy" in ignore  # .env and local data stay out


def test_the_image_tag_follows_the_content(app_dir: Path) -> None:
    env = {"DOCKER_USERNAME": "alice"}
    first = plan_for(app_dir / "app.jac", env, build=True).image
    assert first == plan_for(app_dir / "app.jac", env, build=True).image
    (app_dir / "app.jac").write_text("walker :pub other { }\n")
    assert plan_for(app_dir / "app.jac", env, build=True).image != first


def test_build_needs_a_docker_hub_user(app_dir: Path) -> None:
    with pytest.raises(DeployError, match="registry dockerhub needs DOCKER_USERNAME"):
        plan_for(app_dir / "app.jac", {}, build=True)


def test_build_logs_in_builds_pushes_then_deploys_that_image(
    app_dir: Path, docker_env: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = run_deploy(str(app_dir / "app.jac"), build=True, env=docker_env, out=out, err=err)
    assert code == 0, err.getvalue()
    log = Path(docker_env["FAKE_DOCKER_LOG"]).read_text().splitlines()
    assert log[0] == "login docker.io --username Alice --password-stdin"
    assert Path(docker_env["FAKE_DOCKER_LOG"] + ".stdin").read_text() == "hub-token-123"
    assert "hub-token-123" not in "".join(log) + out.getvalue() + err.getvalue()
    dockerfile_path = app_dir / ".jac" / "deploy" / "Dockerfile"
    assert dockerfile_path.is_file()
    assert log[1].startswith(f"build --file {dockerfile_path} --tag docker.io/alice/jaseci:")
    assert log[1].endswith(str(app_dir))
    image = log[1].split("--tag ")[1].split()[0]
    assert log[2] == f"push {image}"
    deployed = fake_kube.get("deployments", "default", "jaseci")
    assert deployed is not None
    assert deployed["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert fake_kube.get("configmaps", "default", "jaseci-source") is None
    assert (app_dir / ".jac" / "deploy" / "requirements.txt").is_file()


def test_without_a_container_engine_the_error_gives_the_dockerfile(
    app_dir: Path, kube_env: dict[str, str], tmp_path: Path, fake_kube: FakeKubeApi
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {**kube_env, "PATH": str(empty), "DOCKER_USERNAME": "alice"}
    err = io.StringIO()
    code = run_deploy(str(app_dir / "app.jac"), build=True, env=env, out=io.StringIO(), err=err)
    assert code == 1
    dockerfile_path = app_dir / ".jac" / "deploy" / "Dockerfile"
    errors = [line for line in err.getvalue().splitlines() if not line.startswith("note:")]
    assert len(errors) == 1
    message = errors[0]
    assert "no container engine found" in message and str(dockerfile_path) in message
    assert dockerfile_path.is_file()
    assert fake_kube.get("deployments", "default", "jaseci") is None  # nothing applied


def test_a_failed_build_stops_the_deploy(
    app_dir: Path, docker_env: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    err = io.StringIO()
    env = {**docker_env, "FAKE_DOCKER_FAIL": "build"}
    code = run_deploy(str(app_dir / "app.jac"), build=True, env=env, out=io.StringIO(), err=err)
    assert code == 1
    assert "building docker.io/alice/jaseci:" in err.getvalue()
    assert "failed (docker exited with 3" in err.getvalue()
    assert fake_kube.get("deployments", "default", "jaseci") is None


def test_a_hanging_build_is_stopped_at_its_time_limit(
    app_dir: Path, docker_env: dict[str, str], fake_kube: FakeKubeApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jacscale_kubernetes import engine

    monkeypatch.setattr(engine, "BUILD_TIMEOUT", 0.5)
    err = io.StringIO()
    env = {**docker_env, "FAKE_DOCKER_HANG": "build"}
    code = run_deploy(str(app_dir / "app.jac"), build=True, env=env, out=io.StringIO(), err=err)
    assert code == 1
    assert "took more than 0.5 s and was stopped" in err.getvalue()
    assert fake_kube.get("deployments", "default", "jaseci") is None


def test_without_build_the_pod_runs_the_published_image(app_dir: Path) -> None:
    plan = plan_for(app_dir / "app.jac", {})
    assert plan.build is None
    assert plan.image == f"docker.io/jacscale/jacscale:{versions.installed_version('jacscale')}"
    (app_dir / "jac.toml").write_text('[plugins.scale.kubernetes.plugin_versions]\n'
                                      'jac_scale = "0.3.1"\n')
    plan = plan_for(app_dir / "app.jac", {})
    assert plan.image == "docker.io/jacscale/jacscale:0.3.1"
    container = by_kind(plan.manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "docker.io/jacscale/jacscale:0.3.1"
    assert container["imagePullPolicy"] == "IfNotPresent"


def test_other_pins_need_build(app_dir: Path) -> None:
    (app_dir / "jac.toml").write_text('[plugins.scale.kubernetes.plugin_versions]\n'
                                      'jac_client = "0.1.0"\n')
    err = io.StringIO()
    assert run_deploy(str(app_dir / "app.jac"), dry_run=True, env={}, out=io.StringIO(),
                      err=err) == 1
    assert "deploy with --build" in err.getvalue()


def test_experimental_needs_build(app_dir: Path) -> None:
    with pytest.raises(DeployError, match="--experimental only applies with --build"):
        plan_for(app_dir / "app.jac", {}, experimental=True)


def test_experimental_wheels_the_local_checkout(app_dir: Path) -> None:
    plan = plan_for(app_dir / "app.jac", {"DOCKER_USERNAME": "alice"}, build=True,
                    experimental=True)
    assert plan.build is not None
    # jacscale is installed editable from this repository in the test venv.
    assert versions.local_project("jacscale") in plan.build.local_projects
    text = plan.build.files[plan.build.dockerfile]
    assert "COPY .jac/deploy/wheels/ /build/local-wheels/" in text
    assert "/build/local-wheels/*.whl" in text


def test_serve_command_matches_the_dockerfile() -> None:
    assert dockerfile.serve_command("main.jac") == [
        "jacscale", "serve", "main.jac", "--host", "0.0.0.0", "--port", "8000"]


def test_a_local_wheel_that_does_not_build_is_a_clear_error(tmp_path: Path) -> None:
    from jacscale_core.deploy import BuildSpec, build_local_wheels

    project = tmp_path / "broken"
    project.mkdir()
    (project / "pyproject.toml").write_text("[[[ not toml")
    spec = BuildSpec(context=tmp_path, dockerfile=tmp_path / "Dockerfile", image="x:1",
                     local_projects=[project], wheel_dir=tmp_path / "wheels")
    with pytest.raises(DeployError, match=f"building a wheel of {project} failed: .*TOML"):
        build_local_wheels(spec)
