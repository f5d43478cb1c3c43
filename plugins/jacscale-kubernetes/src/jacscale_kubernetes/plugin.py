"""jacscale hooks of the Kubernetes distribution: config sections, target, registry.

Every `jacscale serve` loads this module (entry point), so the Kubernetes client
and YAML libraries are imported only when a deploy asks for the target.
"""

from __future__ import annotations

from typing import Any

from jacscale_core.plugins import hookimpl
from jacscale_kubernetes.settings import SECRETS_SECTION, SECTION, KubernetesConfig

# Names this plugin answers to, listed in "unknown target/registry" errors.
JACSCALE_DEPLOY_TARGETS = ("kubernetes",)
JACSCALE_IMAGE_REGISTRIES = ("dockerhub",)


@hookimpl
def jacscale_config_sections() -> dict[str, type]:
    """`[plugins.scale.kubernetes]` (typed) and `[plugins.scale.secrets]` (free-form).

    `[plugins.scale.kubernetes.plugin_versions]` is a table nested in the first one,
    so it is known without a declaration; deploy reads both free-form tables raw
    from `settings.toml` and checks every key itself (settings.resolve).
    """
    return {SECTION: KubernetesConfig, SECRETS_SECTION: dict[str, str]}  # type: ignore[dict-item]


@hookimpl
def jacscale_deploy_target(name: str) -> Any:
    """The `kubernetes` target."""
    if name != "kubernetes":
        return None
    from jacscale_kubernetes.target import KubernetesTarget

    return KubernetesTarget()


@hookimpl
def jacscale_image_registry(name: str) -> Any:
    """The `dockerhub` registry."""
    if name != "dockerhub":
        return None
    from jacscale_kubernetes.registry import DockerHubRegistry

    return DockerHubRegistry()
