"""Which packages, at which versions, the app's image contains.

Defaults: `jacscale` at the version installed here, plus `jacscale-redis` /
`jacscale-mongo` when K8s_REDIS / K8s_MONGODB are on, and `jacscale-postgres` with
K8s_POSTGRES or a DATABASE_URL secret. `[plugins.scale.kubernetes.
plugin_versions]` adds or overrides entries: a version pins it, "latest" leaves it
unpinned, "none" leaves it out. jac-scale's key `jac_scale` means `jacscale`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from jacscale_core.deploy import DeployError
from jacscale_kubernetes.settings import VERSIONS_SECTION, KubeSettings

ALIASES = {"jac-scale": "jacscale"}
CORE = "jacscale"


def normalize(name: str) -> str:
    """PEP 503 name normalisation, with jac-scale's names mapped to ours."""
    canonical = re.sub(r"[-_.]+", "-", name).lower()
    return ALIASES.get(canonical, canonical)


def installed_version(name: str) -> str | None:
    """The version of distribution `name` installed here, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def local_project(name: str) -> Path | None:
    """The source directory `name` was installed from (pip install -e / a path), or None."""
    try:
        text = metadata.distribution(name).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    info = json.loads(text)
    url = urlparse(info.get("url", ""))
    if url.scheme != "file" or "dir_info" not in info:
        return None
    return Path(unquote(url.path))


@dataclass(frozen=True)
class Requirements:
    """The image's packages: {normalised name: "latest" | version | specifier}."""

    pins: dict[str, str]

    def lines(self) -> list[str]:
        """requirements.txt lines, sorted with jacscale first."""
        out = []
        for name in sorted(self.pins, key=lambda n: (n != CORE, n)):
            value = self.pins[name]
            if value == "latest":
                out.append(name)
            elif value[0].isdigit():
                out.append(f"{name}=={value}")
            else:
                out.append(f"{name}{value}")
        return out

    def text(self) -> str:
        """The requirements.txt file."""
        return "".join(line + "\n" for line in self.lines())


def requirements(kube: KubeSettings) -> Requirements:
    """The packages the app's image needs, after applying `plugin_versions`."""
    pins: dict[str, str] = {CORE: installed_version(CORE) or "latest"}
    postgres = kube.postgres or "DATABASE_URL" in kube.secrets
    for enabled, dist in ((kube.redis, "jacscale-redis"), (kube.mongodb, "jacscale-mongo"),
                          (postgres, "jacscale-postgres")):
        if enabled:
            pins[dist] = installed_version(dist) or "latest"
    for key, value in kube.plugin_versions.items():
        pins[normalize(key)] = value
    if pins.get(CORE) == "none":
        raise DeployError(f"[{VERSIONS_SECTION}] jacscale cannot be \"none\": the image runs it")
    return Requirements({name: v for name, v in pins.items() if v != "none"})


def runtime_tag(kube: KubeSettings) -> str:
    """The tag of the published runtime image for the pinned jacscale version.

    The published image holds jacscale and its server plugins at one version, so
    other pins need an image of their own (`--build`).
    """
    tag = installed_version(CORE) or "latest"
    for key, value in kube.plugin_versions.items():
        name = normalize(key)
        if name == CORE:
            if not (value == "latest" or re.match(r"^[0-9][0-9A-Za-z.+!-]*$", value)):
                raise DeployError(
                    f"[{VERSIONS_SECTION}] {key}={value!r}: the published image needs an exact "
                    "version or \"latest\"; use --build for a range")
            tag = value.replace("+", "_")
        elif value != "none":
            raise DeployError(
                f"[{VERSIONS_SECTION}] {key}={value!r}: the published image contains only "
                "jacscale and its plugins; deploy with --build to install other packages")
    return tag


def local_projects(reqs: Requirements) -> list[Path]:
    """`--experimental`: the local source directories of the required packages."""
    found = [path for name in reqs.pins if (path := local_project(name)) is not None]
    if local_project(CORE) is None:
        raise DeployError("--experimental needs jacscale installed from a local checkout "
                          "(pip install -e <checkout>)")
    return found
