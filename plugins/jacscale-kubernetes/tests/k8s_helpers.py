"""Helpers shared by the Kubernetes deploy tests."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from jacscale_kubernetes.plugin import jacscale_config_sections
from jacscale_kubernetes.registry import DockerHubRegistry
from jacscale_kubernetes.target import KubernetesTarget
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

from jacscale_core.config import load_settings
from jacscale_core.deploy import DeployPlan, DeployRequest

# Oldest and newest Kubernetes minor versions whose schemas we check against.
SCHEMA_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())


def plan_for(app_path: Path | str, env: Mapping[str, str], *, build: bool = False,
             experimental: bool = False) -> DeployPlan:
    """The kubernetes target's plan for `app_path` under `env` (what --dry-run prints)."""
    settings = load_settings(app_path, jacscale_config_sections(), env=env)
    request = DeployRequest(settings=settings, env=env, registry=DockerHubRegistry(),
                            build=build, experimental=experimental)
    return KubernetesTarget().plan(request)


@functools.cache
def _validator(version: str, kind: str, api_version: str) -> jsonschema.Validator:
    """kubernetes_validate.validate(strict=True)'s validator, built once per kind and version.

    (kubernetes_validate re-reads its 20 MB of definitions on every call.)
    """
    minor = kubernetes_validate.utils.major_minor(version)
    schema_dir = f"v{minor}.0-local-strict"
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = schema_contents(f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{api}.json",
                             version)
    definitions = schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json",
                                  version)
    registry: Registry = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def validate_all(manifests: list[dict[str, Any]]) -> None:
    """Validate every manifest strictly against the Kubernetes OpenAPI schemas (offline)."""
    for manifest in manifests:
        for version in SCHEMA_VERSIONS:
            _validator(version, manifest["kind"], manifest["apiVersion"]).validate(manifest)


def preview_docs(text: str) -> list[dict[str, Any]]:
    """Parse a --dry-run YAML stream."""
    return [d for d in yaml.safe_load_all(text) if d is not None]


def by_kind(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one manifest of `kind` (and `name`)."""
    found = [m for m in manifests if m["kind"] == kind
             and (name is None or m["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def pod_specs(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pod template spec in `manifests`."""
    return [m["spec"]["template"]["spec"] for m in manifests
            if m["kind"] in ("Deployment", "StatefulSet")]
