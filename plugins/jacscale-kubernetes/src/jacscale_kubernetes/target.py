"""Deploy target `kubernetes`: plan, apply and wait, destroy.

plan     settings + app files -> manifests (and a Dockerfile with --build); no I/O
         beyond reading the app's files.
deploy   connect (one-line error without a kubeconfig or a reachable cluster),
         ensure the namespace, build and push (--build), create-or-apply every
         object in order, prune objects a previous deploy made that the plan no
         longer has, wait for the app's rollout.
destroy  list what carries this app's labels, confirm, delete.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import yaml

from jacscale_core.deploy import (
    BuildSpec,
    DeployError,
    DeployPlan,
    DeployRequest,
    DestroyRequest,
)
from jacscale_kubernetes import appsource, dockerfile, manifests, settings, versions
from jacscale_kubernetes.client import KubeClient, describe
from jacscale_kubernetes.rollout import wait_for_rollout

# Kinds a deploy creates, in the order destroy deletes them.
OWNED_KINDS = ("HorizontalPodAutoscaler", "PodDisruptionBudget", "Deployment", "StatefulSet",
               "Service", "ConfigMap", "Secret")
DATA_KINDS = ("PersistentVolumeClaim",)


@dataclass
class KubePlan:
    """The Kubernetes-specific part of a DeployPlan."""

    kube: settings.KubeSettings
    env: Mapping[str, str]
    generated: set[str]
    user_secret: str | None


def _credentials() -> dict[str, str]:
    return {"jwt_secret": secrets.token_urlsafe(48),
            "mongodb_password": secrets.token_urlsafe(24),
            "redis_password": secrets.token_urlsafe(24),
            "postgres_password": secrets.token_urlsafe(24)}


class _Dumper(yaml.SafeDumper):
    """YAML with multi-line strings (app files in the ConfigMap) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(docs: list[dict[str, Any]]) -> str:
    """A YAML stream of `docs`, in the given key order."""
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                         allow_unicode=True)


def _preview(plan_header: list[str], docs: list[dict[str, Any]]) -> str:
    header = "".join(f"# {line}\n" for line in plan_header)
    return header + to_yaml(docs)


class KubernetesTarget:
    """The `kubernetes` deploy target."""

    name = "kubernetes"

    # ------------------------------------------------------------------ plan --

    def plan(self, request: DeployRequest) -> DeployPlan:
        """Resolve settings and build every manifest (and the Dockerfile with --build)."""
        kube = settings.resolve(request.settings, request.env)
        app_dir = request.settings.app_dir
        app_file = request.settings.app_path.name
        files = appsource.app_files(app_dir)
        notes: list[str] = []
        build: BuildSpec | None = None
        source: list[appsource.SourceFile] | None = None
        source_digest: str | None = None
        if request.build:
            reqs = versions.requirements(kube)
            local = versions.local_projects(reqs) if request.experimental else []
            text = dockerfile.render(kube.base_image, app_file, reqs, local_wheels=bool(local))
            tag = appsource.digest(files, text, reqs.text())
            if local:
                tag += f"-dev{int(time.time())}"
            image = f"{request.registry.repository(kube.app_name, request.env)}:{tag}"
            deploy_dir = app_dir / dockerfile.DEPLOY_DIR
            path = deploy_dir / "Dockerfile"
            ignore = deploy_dir / "Dockerfile.dockerignore"
            build = BuildSpec(
                context=app_dir, dockerfile=path, image=image,
                files={path: text, ignore: appsource.DOCKERIGNORE,
                       deploy_dir / "requirements.txt": reqs.text()},
                local_projects=local, wheel_dir=deploy_dir / "wheels", ignore_file=ignore,
                platform=kube.platform)
            if kube.image:
                notes.append("K8s_IMAGE is ignored with --build")
        elif request.experimental:
            raise DeployError("--experimental only applies with --build")
        elif kube.image:
            image = kube.image
            if kube.plugin_versions:
                notes.append(f"[{settings.VERSIONS_SECTION}] is not used: K8s_IMAGE names a "
                             "complete image")
        else:
            image = f"{kube.runtime_image}:{versions.runtime_tag(kube)}"
            appsource.check_configmap_size(files)
            source = files
            source_digest = appsource.digest(files)
        if not kube.shared_store:
            notes.append("no shared store (K8s_MONGODB is off and no MONGODB_URI secret): the "
                         "app keeps its data inside its pod, which loses it on restart; one "
                         "replica, no autoscaler")
        bp = manifests.Blueprint(kube=kube, app_file=app_file, image=image, source=source,
                                 source_digest=source_digest, credentials=_credentials())
        objects = manifests.build_all(bp)
        generated = manifests.generated_secret_names(bp)
        header = [f"jacscale deploy --dry-run: app {kube.app_name!r} in namespace "
                  f"{kube.namespace!r}, image {image}",
                  "Secret values are not shown; generated ones are made once, at first deploy."]
        return DeployPlan(
            target=self.name, app_name=kube.app_name, image=image,
            preview=_preview(header, manifests.redact(objects, generated)),
            manifests=objects, build=build, notes=notes,
            extra=KubePlan(kube=kube, env=request.env, generated=generated,
                           user_secret=bp.name("secrets") if kube.secrets else None))

    # ---------------------------------------------------------------- deploy --

    async def deploy(
        self,
        plan: DeployPlan,
        *,
        build: Callable[[], Awaitable[None]] | None,
        rollout_timeout: float,
        out: TextIO,
    ) -> None:
        """Connect, build (optional), apply every object, prune, wait for the rollout."""
        extra: KubePlan = plan.extra
        kube = extra.kube
        ns = kube.namespace
        client = await KubeClient.connect(extra.env, kube.context)
        try:
            print(f"deploying {kube.app_name!r} to {client.host}, namespace {ns!r}",
                  file=out, flush=True)
            if await client.ensure_namespace(ns):
                print(f"created Namespace {ns}", file=out, flush=True)
            if build is not None:
                await build()
            await self._apply_all(client, plan, out)
            await self._prune(client, plan, out)
            await wait_for_rollout(client, ns, kube.app_name, rollout_timeout=rollout_timeout,
                                   poll_interval=kube.poll_interval_seconds, out=out)
            print(_reach(kube), file=out, flush=True)
        finally:
            await client.close()

    async def _apply_all(self, client: KubeClient, plan: DeployPlan, out: TextIO) -> None:
        extra: KubePlan = plan.extra
        secrets_version: str | None = None
        for manifest in plan.manifests:
            kind = manifest["kind"]
            name = manifest["metadata"]["name"]
            ns = manifest["metadata"]["namespace"]
            label = describe(kind, ns, name)
            if kind == "Secret" and name in extra.generated:
                if await client.get(kind, ns, name) is not None:
                    print(f"kept {label} (generated credentials)", file=out, flush=True)
                    continue
                await client.create(manifest)
                print(f"created {label} (generated credentials)", file=out, flush=True)
                continue
            if kind == "Deployment" and name == plan.app_name and secrets_version:
                manifest = _with_template_annotation(
                    manifest, manifests.ANNOTATION_SECRETS, secrets_version)
            action, result = await client.create_or_apply(manifest)
            if kind == "Secret" and name == extra.user_secret:
                secrets_version = result.get("metadata", {}).get("resourceVersion")
            print(f"{action} {label}", file=out, flush=True)

    async def _prune(self, client: KubeClient, plan: DeployPlan, out: TextIO) -> None:
        """Delete objects an earlier deploy made that this plan no longer has."""
        extra: KubePlan = plan.extra
        ns = extra.kube.namespace
        wanted = {(m["kind"], m["metadata"]["name"]) for m in plan.manifests}
        keep = {("Secret", f"{plan.app_name}-{db}-auth")  # matches data in kept volumes
                for db in ("mongodb", "postgres")}
        selector = manifests.ownership_selector(plan.app_name)
        for kind in OWNED_KINDS:
            for obj in await client.list(kind, ns, selector):
                name = obj["metadata"]["name"]
                if (kind, name) in wanted or (kind, name) in keep:
                    continue
                if await client.delete(kind, ns, name):
                    print(f"removed {describe(kind, ns, name)} (no longer deployed)",
                          file=out, flush=True)

    # --------------------------------------------------------------- destroy --

    async def destroy(
        self,
        request: DestroyRequest,
        *,
        confirm: Callable[[list[str]], Awaitable[bool]],
        out: TextIO,
    ) -> int:
        """Delete everything labelled as this app's (volumes too, unless keep_data)."""
        kube = settings.resolve(request.settings, request.env, secrets=False)
        ns = kube.namespace
        app = kube.app_name
        client = await KubeClient.connect(request.env, kube.context)
        try:
            selector = manifests.ownership_selector(app)
            found: list[tuple[str, str]] = []
            kept: list[str] = []
            for kind in OWNED_KINDS + DATA_KINDS:
                for obj in await client.list(kind, ns, selector):
                    name = obj["metadata"]["name"]
                    is_data = kind in DATA_KINDS or (kind, name) in {
                        ("Secret", f"{app}-mongodb-auth"), ("Secret", f"{app}-postgres-auth")}
                    if request.keep_data and is_data:
                        kept.append(describe(kind, ns, name))
                        continue
                    found.append((kind, name))
            if not found:
                print(f"nothing to destroy: no objects of app {app!r} in namespace {ns!r}",
                      file=out, flush=True)
                return 0
            lines = [describe(k, ns, n) + (" (database data)" if k in DATA_KINDS else "")
                     for k, n in found]
            if not await confirm(lines):
                print("nothing removed", file=out, flush=True)
                return 0
            removed = 0
            for kind, name in found:
                if await client.delete(kind, ns, name):
                    removed += 1
                    print(f"deleted {describe(kind, ns, name)}", file=out, flush=True)
            for line in kept:
                print(f"kept {line} (--keep-data)", file=out, flush=True)
            return removed
        finally:
            await client.close()


def _with_template_annotation(manifest: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    template = manifest["spec"]["template"]
    meta = dict(template.get("metadata", {}))
    meta["annotations"] = {**meta.get("annotations", {}), key: value}
    return {**manifest, "spec": {**manifest["spec"], "template": {**template, "metadata": meta}}}


def _reach(kube: settings.KubeSettings) -> str:
    if kube.service_type == "NodePort":
        return (f"{kube.app_name} is live: http://<node-address>:{kube.node_port}/ "
                f"(Service {kube.namespace}/{kube.app_name}, NodePort)")
    if kube.service_type == "LoadBalancer":
        return (f"{kube.app_name} is live: kubectl get service -n {kube.namespace} "
                f"{kube.app_name} shows its external address")
    return (f"{kube.app_name} is live: kubectl port-forward -n {kube.namespace} "
            f"service/{kube.app_name} 8000:8000")
