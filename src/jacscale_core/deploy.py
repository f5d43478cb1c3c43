"""`jacscale deploy` and `jacscale destroy`: the generic half of deployment.

The kernel knows nothing about Kubernetes or Docker Hub. It reads the settings,
asks the plugins for a deploy target (hook `jacscale_deploy_target(name)`) and
an image registry (hook `jacscale_image_registry(name)`), and drives them:

    plan = target.plan(request)              # pure: manifests, image, Dockerfile
    --dry-run   -> print plan.preview, stop
    --build     -> write plan.build.files, build local wheels (-e), registry.build_and_push
    deploy      -> target.deploy(plan, build=..., timeout=..., out=...)
    destroy     -> target.destroy(request, confirm=..., out=...)

Every failure is one line on stderr (`jacscale deploy: <message>`) and exit code 1.
Targets and registries raise `DeployError` with a message that names the object
and the cause; nothing else is caught silently.

A plugin may list the names it answers to on its registered object, as
`JACSCALE_DEPLOY_TARGETS = ("kubernetes",)` and `JACSCALE_IMAGE_REGISTRIES =
("dockerhub",)`, so that an unknown name gets an error listing the valid ones.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import pluggy

from jacscale_core.config import ConfigError, Settings, load_settings
from jacscale_core.plugins import hookimpl, plugin_sections

DEFAULT_TARGET = "kubernetes"
DEFAULT_REGISTRY = "dockerhub"
DEFAULT_TIMEOUT = 300.0
LOCAL_WHEEL_TIMEOUT = 300.0


class DeployError(Exception):
    """A deploy or destroy step failed; the message is one line naming the object and cause."""


@dataclass
class BuildSpec:
    """What `--build` produces: files to write, local projects to wheel, the image to push."""

    context: Path
    dockerfile: Path
    image: str
    files: dict[Path, str] = field(default_factory=dict)
    local_projects: list[Path] = field(default_factory=list)
    wheel_dir: Path | None = None
    ignore_file: Path | None = None
    platform: str | None = None


@dataclass
class DeployRequest:
    """Everything a target needs to plan a deployment."""

    settings: Settings
    env: Mapping[str, str]
    registry: ImageRegistry
    build: bool = False
    experimental: bool = False


@dataclass
class DestroyRequest:
    """Everything a target needs to find and remove what it deployed."""

    settings: Settings
    env: Mapping[str, str]
    keep_data: bool = False


@dataclass
class DeployPlan:
    """A target's plan: what `--dry-run` prints and what `deploy` applies."""

    target: str
    app_name: str
    image: str
    preview: str
    manifests: list[dict[str, Any]] = field(default_factory=list)
    build: BuildSpec | None = None
    notes: list[str] = field(default_factory=list)
    extra: Any = None


class ImageRegistry(Protocol):
    """An image registry plugin (dockerhub, ecr, gcr ...)."""

    name: str

    def repository(self, app_name: str, env: Mapping[str, str]) -> str:
        """The image repository (without tag) for `app_name`, e.g. docker.io/alice/todo."""
        ...

    async def build_and_push(self, spec: BuildSpec, *, env: Mapping[str, str], out: TextIO) -> None:
        """Build `spec.dockerfile` in `spec.context` as `spec.image` and push it."""
        ...


class DeployTarget(Protocol):
    """A deploy target plugin (kubernetes, aws, gcp ...)."""

    name: str

    def plan(self, request: DeployRequest) -> DeployPlan:
        """Compute the plan; reads settings and files only, never the network."""
        ...

    async def deploy(
        self,
        plan: DeployPlan,
        *,
        build: Callable[[], Awaitable[None]] | None,
        rollout_timeout: float,
        out: TextIO,
    ) -> None:
        """Connect, run `build` (if any), apply the plan and wait until it is live."""
        ...

    async def destroy(
        self,
        request: DestroyRequest,
        *,
        confirm: Callable[[list[str]], Awaitable[bool]],
        out: TextIO,
    ) -> int:
        """Remove what `deploy` created after `confirm(descriptions)`; return how many went."""
        ...


# --------------------------------------------------------------------------
# Resolution through the plugin manager
# --------------------------------------------------------------------------


def _advertised(pm: pluggy.PluginManager, attribute: str) -> list[str]:
    names: set[str] = set()
    for plugin in pm.get_plugins():
        names.update(getattr(plugin, attribute, ()) or ())
    return sorted(names)


def resolve_target(pm: pluggy.PluginManager, name: str) -> DeployTarget:
    """The deploy target called `name`, or DeployError listing the available ones."""
    target = pm.hook.jacscale_deploy_target(name=name)
    if target is None:
        known = _advertised(pm, "JACSCALE_DEPLOY_TARGETS")
        listing = ", ".join(known) if known else "none (pip install jacscale-kubernetes)"
        raise DeployError(f"unknown deploy target {name!r}; available: {listing}")
    return target  # type: ignore[no-any-return]


def resolve_registry(pm: pluggy.PluginManager, name: str) -> ImageRegistry:
    """The image registry called `name`, or DeployError listing the available ones."""
    registry = pm.hook.jacscale_image_registry(name=name)
    if registry is None:
        known = _advertised(pm, "JACSCALE_IMAGE_REGISTRIES")
        listing = ", ".join(known) if known else "none (pip install jacscale-kubernetes)"
        raise DeployError(f"unknown image registry {name!r}; available: {listing}")
    return registry  # type: ignore[no-any-return]


def _load(app_path: str, pm: pluggy.PluginManager, env: Mapping[str, str], err: TextIO) -> Settings:
    path = Path(app_path)
    if not path.is_file():
        raise DeployError(f"{app_path}: no such file")
    settings = load_settings(path, plugin_sections(pm), env=env)
    for warning in settings.warnings:
        print(f"warning: {warning}", file=err)
    return settings


# --------------------------------------------------------------------------
# Building an image
# --------------------------------------------------------------------------


def write_build_files(spec: BuildSpec) -> None:
    """Write the Dockerfile and its companions into the build context."""
    for path, text in spec.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def build_local_wheels(spec: BuildSpec) -> None:
    """`--experimental`: wheel each local project (no deps) into `spec.wheel_dir`."""
    if not spec.local_projects:
        return
    if spec.wheel_dir is None:
        raise DeployError("--experimental: the target did not say where local wheels go")
    spec.wheel_dir.mkdir(parents=True, exist_ok=True)
    for old in spec.wheel_dir.glob("*.whl"):
        old.unlink()
    for project in spec.local_projects:
        cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
               "--wheel-dir", str(spec.wheel_dir), str(project)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=LOCAL_WHEEL_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            raise DeployError(f"building a wheel of {project} took more than "
                              f"{LOCAL_WHEEL_TIMEOUT:.0f} s") from exc
        if done.returncode != 0:
            # pip's last unindented line that is not a hint or a note says what failed.
            lines = [line.rstrip() for line in done.stderr.splitlines()
                     if line.strip() and not line[0].isspace()
                     and not line.startswith(("hint:", "note:"))]
            reason = (lines or ["(no output)"])[-1]
            raise DeployError(f"building a wheel of {project} failed: {reason}")


def _build_step(
    plan: DeployPlan, registry: ImageRegistry, env: Mapping[str, str], out: TextIO
) -> Callable[[], Awaitable[None]] | None:
    spec = plan.build
    if spec is None:
        return None

    async def build() -> None:
        await asyncio.to_thread(write_build_files, spec)
        print(f"wrote {spec.dockerfile}", file=out)
        if spec.local_projects:
            print(f"building {len(spec.local_projects)} local wheel(s) (--experimental)", file=out)
            await asyncio.to_thread(build_local_wheels, spec)
        await registry.build_and_push(spec, env=env, out=out)

    return build


# --------------------------------------------------------------------------
# Entry points used by the CLI and by `jac start --scale` / `jac destroy`
# --------------------------------------------------------------------------


@dataclass
class _Command:
    """What `deploy` and `destroy` start from: the target and the app's settings."""

    target: DeployTarget
    settings: Settings
    pm: pluggy.PluginManager
    env: Mapping[str, str]
    out: TextIO
    err: TextIO


def _run_command(
    name: str,
    app_path: str,
    target: str,
    env: Mapping[str, str] | None,
    out: TextIO | None,
    err: TextIO | None,
    body: Callable[[_Command], None],
) -> int:
    """Resolve the target and load the app's settings, run `body`; an error is one line, exit 1."""
    from jacscale_core.plugins import make_plugin_manager

    env = os.environ if env is None else env
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        pm = make_plugin_manager(env)
        deploy_target = resolve_target(pm, target)
        body(_Command(deploy_target, _load(app_path, pm, env, err), pm, env, out, err))
    except (DeployError, ConfigError) as exc:
        print(f"jacscale {name}: {exc}", file=err)
        return 1
    return 0


def run_deploy(
    app_path: str,
    *,
    build: bool = False,
    target: str = DEFAULT_TARGET,
    registry: str = DEFAULT_REGISTRY,
    dry_run: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    experimental: bool = False,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Deploy the program at `app_path` (or print the plan with `dry_run`); return an exit code."""

    def deploy(run: _Command) -> None:
        if timeout <= 0:
            raise DeployError(f"--timeout must be positive, got {timeout}")
        image_registry = resolve_registry(run.pm, registry)
        request = DeployRequest(settings=run.settings, env=run.env, registry=image_registry,
                                build=build, experimental=experimental)
        plan = run.target.plan(request)
        if dry_run:
            _print_notes(plan, run.err)
            run.out.write(plan.preview)
            if plan.build is not None:
                print(f"note: --build would write {plan.build.dockerfile} and push "
                      f"{plan.build.image}", file=run.err)
            return
        step = _build_step(plan, image_registry, run.env, run.out)
        asyncio.run(run.target.deploy(plan, build=step, rollout_timeout=timeout, out=run.out))
        _print_notes(plan, run.err)  # after success, so that a failure stays one line

    return _run_command("deploy", app_path, target, env, out, err, deploy)


def _print_notes(plan: DeployPlan, err: TextIO) -> None:
    for note in plan.notes:
        print(f"note: {note}", file=err)


def _read_answer(prompt: str, out: TextIO) -> str:
    out.write(prompt)
    out.flush()
    if sys.stdin is None or sys.stdin.closed:
        raise EOFError
    line = sys.stdin.readline()
    if line == "":
        raise EOFError
    return line.strip()


def _confirmer(yes: bool, out: TextIO) -> Callable[[list[str]], Awaitable[bool]]:
    async def confirm(descriptions: list[str]) -> bool:
        print(f"This removes {len(descriptions)} object(s):", file=out)
        for line in descriptions:
            print(f"  {line}", file=out)
        if yes:
            return True
        try:
            answer = await asyncio.to_thread(_read_answer, "Remove them? [y/N] ", out)
        except (EOFError, OSError) as exc:
            raise DeployError("no answer on stdin: pass --yes to destroy without asking") from exc
        return answer.lower() in ("y", "yes")

    return confirm


def run_destroy(
    app_path: str,
    *,
    yes: bool = False,
    target: str = DEFAULT_TARGET,
    keep_data: bool = False,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Remove what `run_deploy` created for `app_path`, asking first unless `yes`."""

    def destroy(run: _Command) -> None:
        request = DestroyRequest(settings=run.settings, env=run.env, keep_data=keep_data)
        asyncio.run(run.target.destroy(request, confirm=_confirmer(yes, run.out), out=run.out))

    return _run_command("destroy", app_path, target, env, out, err, destroy)


# --------------------------------------------------------------------------
# argparse
# --------------------------------------------------------------------------


def _deploy_command(args: argparse.Namespace) -> int:
    return run_deploy(args.app, build=args.build, target=args.target, registry=args.registry,
                      dry_run=args.dry_run, timeout=args.timeout, experimental=args.experimental)


def _destroy_command(args: argparse.Namespace) -> int:
    return run_destroy(args.app, yes=args.yes, target=args.target, keep_data=args.keep_data)


def add_deploy_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags `jacscale deploy` takes (shared with `jac start --scale`)."""
    parser.add_argument("--build", "-b", action="store_true",
                        help="build and push an image of the app first")
    parser.add_argument("--target", default=DEFAULT_TARGET,
                        help=f"deployment target (default {DEFAULT_TARGET})")
    parser.add_argument("--registry", default=DEFAULT_REGISTRY,
                        help=f"image registry for --build (default {DEFAULT_REGISTRY})")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the manifests as YAML and change nothing")
    parser.add_argument("--experimental", "-e", action="store_true",
                        help="with --build: install jacscale from the local checkout, not PyPI")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds to wait for the rollout (default {DEFAULT_TIMEOUT:.0f})")


@hookimpl(tryfirst=True)
def jacscale_register_commands(subparsers: Any) -> None:
    """Add the `deploy` and `destroy` sub-commands; each sets `func(args) -> exit code`."""
    deploy = subparsers.add_parser("deploy", help="deploy the app (default: to Kubernetes)")
    deploy.add_argument("app", help="path to the .jac program")
    add_deploy_arguments(deploy)
    deploy.set_defaults(func=_deploy_command)

    destroy = subparsers.add_parser("destroy", help="remove what `deploy` created")
    destroy.add_argument("app", help="path to the .jac program")
    destroy.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    destroy.add_argument("--target", default=DEFAULT_TARGET,
                         help=f"deployment target (default {DEFAULT_TARGET})")
    destroy.add_argument("--keep-data", action="store_true",
                         help="keep database volumes and their credentials")
    destroy.set_defaults(func=_destroy_command)
