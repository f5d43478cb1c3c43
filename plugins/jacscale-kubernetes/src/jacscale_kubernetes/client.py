"""A small Kubernetes REST client over kubernetes-asyncio's ApiClient.

kubernetes-asyncio supplies the kubeconfig loading (contexts, certificates,
tokens, exec plugins), TLS and the HTTP session; this module adds the handful of
calls deploy and destroy make, for any kind in `KINDS`, with:
- a timeout on every request (REQUEST_TIMEOUT);
- errors that name the object, the verb and the API server's own message;
- create-or-apply: POST when the object is missing, else a server-side apply
  PATCH (field manager "jacscale"), so fields we stop setting are removed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import ConfigException, load_incluster_config, load_kube_config

from jacscale_core.deploy import DeployError

FIELD_MANAGER = "jacscale"
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10, sock_connect=10)
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"


class KubeApiError(DeployError):
    """The API server refused a call; `status` is its HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        """Keep the message (for the user) and the status (for callers)."""
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Kind:
    """Where one kind of object lives in the REST API."""

    kind: str
    api_version: str
    plural: str
    namespaced: bool = True

    def collection(self, namespace: str | None) -> str:
        """The collection path, e.g. /apis/apps/v1/namespaces/ns/deployments."""
        group = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced:
            return f"{group}/namespaces/{namespace}/{self.plural}"
        return f"{group}/{self.plural}"


KINDS: dict[str, Kind] = {k.kind: k for k in (
    Kind("Namespace", "v1", "namespaces", namespaced=False),
    Kind("Secret", "v1", "secrets"),
    Kind("ConfigMap", "v1", "configmaps"),
    Kind("Service", "v1", "services"),
    Kind("PersistentVolumeClaim", "v1", "persistentvolumeclaims"),
    Kind("Pod", "v1", "pods"),
    Kind("Deployment", "apps/v1", "deployments"),
    Kind("StatefulSet", "apps/v1", "statefulsets"),
    Kind("ReplicaSet", "apps/v1", "replicasets"),
    Kind("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers"),
    Kind("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets"),
)}


def describe(kind: str, namespace: str | None, name: str) -> str:
    """How messages name an object: `Deployment default/todo`."""
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _api_message(exc: ApiException) -> str:
    raw = exc.body
    body = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        message = json.loads(body).get("message") if body else None
    except (ValueError, AttributeError):
        message = None
    text = message or (body.strip() if isinstance(body, str) else "") or exc.reason or ""
    return f"{exc.status} {exc.reason}: {text}" if text and text != exc.reason else \
        f"{exc.status} {exc.reason}"


def kubeconfig_path(env: Mapping[str, str]) -> tuple[str, bool]:
    """The kubeconfig path(s) to load and whether any of them exists."""
    explicit = env.get("KUBECONFIG", "").strip()
    if explicit:
        paths = [p for p in explicit.split(os.pathsep) if p]
        return explicit, any(Path(os.path.expanduser(p)).is_file() for p in paths)
    home = env.get("HOME") or os.path.expanduser("~")
    default = Path(home) / ".kube" / "config"
    return str(default), default.is_file()


class KubeClient:
    """One connection to one cluster; close it with `close()` (or `async with`)."""

    def __init__(self, api: ApiClient, host: str) -> None:
        """Wrap a configured ApiClient talking to `host`."""
        self.api = api
        self.host = host

    @classmethod
    async def connect(cls, env: Mapping[str, str], context: str | None = None) -> KubeClient:
        """Load the kubeconfig (or in-cluster config) and check the API server answers."""
        config = Configuration()
        path, exists = kubeconfig_path(env)
        try:
            if exists:
                await load_kube_config(config_file=path, context=context,
                                       client_configuration=config, persist_config=False)
            elif env.get("KUBERNETES_SERVICE_HOST") and not env.get("KUBECONFIG"):
                load_incluster_config(client_configuration=config)
            elif env.get("KUBECONFIG"):
                raise DeployError(f"KUBECONFIG={path}: no such file; no Kubernetes cluster to "
                                  "deploy to (jacscale never falls back to a local server)")
            else:
                raise DeployError(f"no Kubernetes cluster configured: KUBECONFIG is not set and "
                                  f"{path} does not exist (jacscale never falls back to a local "
                                  "server; use `jacscale serve` to run locally)")
        except (ConfigException, OSError, ValueError, KeyError, TypeError,
                yaml.YAMLError) as exc:
            where = f"kubeconfig {path}" if exists else "in-cluster config"
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise DeployError(f"{where}: {detail}") from None
        client = cls(ApiClient(configuration=config), config.host or "(no server in kubeconfig)")
        try:
            await client.request("GET", "/version", what=None)
        except BaseException:
            await client.close()
            raise
        return client

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.api.close()

    async def __aenter__(self) -> KubeClient:
        """Use as an async context manager."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close on exit."""
        await self.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        what: str | None,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        missing_ok: bool = False,
    ) -> Any:
        """One API call about `what` (an object; None for the API itself).

        Returns the decoded JSON, or None for a 404 when `missing_ok`.
        """
        headers = {"Accept": "application/json", "Content-Type": content_type}
        subject = what or f"the Kubernetes API at {self.host}"
        try:
            return await self.api.call_api(
                path, method, query_params=query or [], header_params=headers, body=body,
                response_types_map={200: "object", 201: "object", 202: "object"},
                auth_settings=["BearerToken"], _return_http_data_only=True,
                _preload_content=True, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            if exc.status == 0:  # the client could not even send it
                raise DeployError(f"{subject}: {exc.reason}") from None
            raise KubeApiError(f"{subject}: {method} failed: {_api_message(exc)}",
                               exc.status) from None
        except (aiohttp.ClientError, OSError) as exc:
            during = f" ({what})" if what else ""
            raise DeployError(f"cannot reach the Kubernetes API at {self.host}{during}: "
                              f"{exc}") from None
        except TimeoutError:
            during = f" ({what})" if what else ""
            raise DeployError(f"the Kubernetes API at {self.host} did not answer within "
                              f"{REQUEST_TIMEOUT.total:.0f} s{during}") from None

    # ------------------------------------------------------------ objects --

    async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        k = KINDS[kind]
        result = await self.request("GET", f"{k.collection(namespace)}/{name}",
                                    what=describe(kind, namespace, name), missing_ok=True)
        return result if isinstance(result, dict) else None

    async def list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Objects of `kind` in `namespace` matching the label `selector`."""
        k = KINDS[kind]
        result = await self.request("GET", k.collection(namespace),
                                    what=f"listing {k.plural} in {namespace}",
                                    query=[("labelSelector", selector)])
        items = result.get("items") if isinstance(result, dict) else None
        return list(items or [])

    async def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """POST a new object."""
        kind, namespace, name = _identity(manifest)
        result = await self.request("POST", KINDS[kind].collection(namespace),
                                    what=describe(kind, namespace, name), body=dict(manifest),
                                    query=[("fieldManager", FIELD_MANAGER)])
        return dict(result or {})

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply (PATCH application/apply-patch+yaml, force) of `manifest`."""
        kind, namespace, name = _identity(manifest)
        path = f"{KINDS[kind].collection(namespace)}/{name}"
        result = await self.request("PATCH", path, what=describe(kind, namespace, name),
                                    body=dict(manifest), content_type=APPLY_CONTENT_TYPE,
                                    query=[("fieldManager", FIELD_MANAGER), ("force", "true")])
        return dict(result or {})

    async def create_or_apply(self, manifest: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """Create the object if missing, else apply it; returns (action, object)."""
        kind, namespace, name = _identity(manifest)
        current = await self.get(kind, namespace, name)
        if current is None:
            return "created", await self.create(manifest)
        updated = await self.apply(manifest)
        before = current.get("metadata", {}).get("resourceVersion")
        after = updated.get("metadata", {}).get("resourceVersion")
        return ("unchanged" if before == after else "configured"), updated

    async def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        """Delete the object (dependents in the background); False if it was already gone."""
        k = KINDS[kind]
        result = await self.request("DELETE", f"{k.collection(namespace)}/{name}",
                                    what=describe(kind, namespace, name), missing_ok=True,
                                    query=[("propagationPolicy", "Background")])
        return result is not None

    async def ensure_namespace(self, namespace: str) -> bool:
        """Create `namespace` if it is missing; True when it was created.

        A 403 on reading it means we may only work inside it: carry on.
        """
        try:
            if await self.get("Namespace", None, namespace) is not None:
                return False
        except KubeApiError as exc:
            if exc.status == 403:
                return False
            raise
        await self.create({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": namespace,
                                        "labels": {"app.kubernetes.io/managed-by": "jacscale"}}})
        return True


def _identity(manifest: Mapping[str, Any]) -> tuple[str, str | None, str]:
    meta = manifest.get("metadata", {})
    return manifest["kind"], meta.get("namespace"), meta["name"]

