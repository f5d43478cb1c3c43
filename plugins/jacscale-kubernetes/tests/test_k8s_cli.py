"""The commands a user types: `jacscale deploy|destroy`, `jac start --scale`, `jac destroy`."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from k8s_fake_api import FakeKubeApi
from k8s_helpers import preview_docs, validate_all

from jacscale_core.deploy import jacscale_register_commands as register_commands

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
TODO_APP = REPO / "examples" / "todo" / "app.jac"


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, check=False)


def test_register_commands_defaults_and_flags() -> None:
    parser = argparse.ArgumentParser()
    register_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["deploy", "app.jac"])
    assert (args.app, args.build, args.target, args.registry, args.dry_run, args.experimental,
            args.timeout) == ("app.jac", False, "kubernetes", "dockerhub", False, False, 300.0)
    args = parser.parse_args(["deploy", "a.jac", "-b", "-e", "--dry-run", "--target", "gcp",
                              "--registry", "gcr", "--timeout", "12.5"])
    assert (args.build, args.experimental, args.dry_run, args.target, args.registry,
            args.timeout) == (True, True, True, "gcp", "gcr", 12.5)
    assert callable(args.func)
    args = parser.parse_args(["destroy", "a.jac", "--yes", "--keep-data"])
    assert (args.app, args.yes, args.keep_data, args.target) == ("a.jac", True, True, "kubernetes")
    assert callable(args.func)


def test_jacscale_deploy_dry_run_of_the_todo_example(kube_env: dict[str, str]) -> None:
    env = {**kube_env, "APP_NAME": "todo", "K8s_NODE_PORT": "30123"}
    done = run([str(BIN / "jacscale"), "deploy", str(TODO_APP), "--dry-run"], env)
    assert done.returncode == 0, done.stderr
    docs = preview_docs(done.stdout)
    validate_all(docs)
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "todo")
    assert service["spec"]["ports"][0]["nodePort"] == 30123


def test_jac_start_scale_deploys_and_jacscale_destroy_needs_no_stdin(
    app_dir: Path, kube_env: dict[str, str], fake_kube: FakeKubeApi
) -> None:
    app = str(app_dir / "app.jac")
    done = run([str(BIN / "jac"), "start", app, "--scale"], kube_env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Deployment default/jaseci: rolled out" in done.stdout
    assert fake_kube.names("deployments") == ["jaseci"]
    done = run([str(BIN / "jacscale"), "destroy", app, "--yes"], kube_env)  # stdin: /dev/null
    assert done.returncode == 0, done.stderr
    assert "deleted Deployment default/jaseci" in done.stdout
    assert fake_kube.names("deployments") == []


def test_scale_without_a_cluster_never_serves_locally(app_dir: Path, bare_env: dict[str, str]) -> None:
    done = run([str(BIN / "jac"), "start", str(app_dir / "app.jac"), "--scale"], bare_env,
               timeout=120)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().startswith("jacscale deploy: no Kubernetes cluster configured")
    assert done.stderr.count("\n") == 1
