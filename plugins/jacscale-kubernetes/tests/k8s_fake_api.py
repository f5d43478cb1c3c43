"""PROTOCOL-LEVEL TEST DOUBLE of the Kubernetes API server (not a cluster, not a mock of our code).

There is no cluster on the machines these tests run on, so this small aiohttp
server answers the handful of REST calls jacscale deploy/destroy make, with the
wire format of the real API (paths, JSON bodies, Status errors, label selectors,
server-side apply PATCH, resourceVersion/generation bookkeeping):

  GET  /version
  GET/POST            /api/v1/namespaces[/{name}]
  GET/POST            /api/v1/namespaces/{ns}/{plural}            (list with labelSelector)
  GET/PATCH/DELETE    /api/v1/namespaces/{ns}/{plural}/{name}
  the same under      /apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}]

It also plays the Deployment controller, one step per GET of a Deployment, so the
rollout wait sees observedGeneration, ReplicaSets and replica counts change the
way they do in a cluster. `rollout_mode` picks "ok", "stuck" (pods in
ImagePullBackOff) or "deadline" (ProgressDeadlineExceeded). `fail()` makes the
next matching call answer with a Kubernetes Status error.

The real-cluster path is exercised by the `real_k8s` tests when KUBECONFIG is set.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

TOKEN = "fake-token"
GROUPS = {
    "namespaces": "v1", "secrets": "v1", "configmaps": "v1", "services": "v1",
    "persistentvolumeclaims": "v1", "pods": "v1",
    "deployments": "apps/v1", "statefulsets": "apps/v1", "replicasets": "apps/v1",
    "horizontalpodautoscalers": "autoscaling/v2", "poddisruptionbudgets": "policy/v1",
}
KINDS = {
    "namespaces": "Namespace", "secrets": "Secret", "configmaps": "ConfigMap",
    "services": "Service", "persistentvolumeclaims": "PersistentVolumeClaim", "pods": "Pod",
    "deployments": "Deployment", "statefulsets": "StatefulSet", "replicasets": "ReplicaSet",
    "horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "poddisruptionbudgets": "PodDisruptionBudget",
}
REVISION = "deployment.kubernetes.io/revision"


@dataclass
class Failure:
    """An injected error: the next `times` calls matching method/plural/name get it."""

    method: str
    plural: str
    status: int
    message: str
    name: str | None = None
    times: int = 1


@dataclass
class Call:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str


@dataclass
class FakeKubeApi:
    """The server's state; start() serves it on a free 127.0.0.1 port."""

    rollout_mode: str = "ok"
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    url: str = ""
    _versions: itertools.count = field(default_factory=lambda: itertools.count(1000))
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    # ------------------------------------------------------------ control --

    def start(self) -> None:
        """Serve in a background thread; sets `url`. The `default` namespace exists."""
        self.objects[("namespaces", "", "default")] = {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "default", "uid": str(uuid.uuid4()), "generation": 1,
                         "resourceVersion": "1"}}
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            port = self._runner.addresses[0][1]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-kube-api", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Kubernetes API did not start")

    def stop(self) -> None:
        """Stop serving."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig pointing at this server with a bearer token."""
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake",
                                                      "namespace": namespace}}],
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def fail(self, method: str, plural: str, status: int, message: str,
             name: str | None = None, times: int = 1) -> None:
        """Answer the next `times` matching calls with a Status error."""
        self.failures.append(Failure(method, plural, status, message, name, times))

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """An object as stored (tests inspect these)."""
        return self.objects.get((plural, namespace, name))

    def names(self, plural: str, namespace: str = "default") -> list[str]:
        """Names of the stored objects of one kind."""
        return sorted(n for (p, ns, n) in self.objects if p == plural and ns == namespace)

    def count(self, method: str, plural: str | None = None) -> int:
        """How many calls of `method` (on `plural`) were made."""
        return sum(1 for c in self.calls
                   if c.method == method and (plural is None or f"/{plural}" in c.path))

    # ------------------------------------------------------------- server --

    def _status(self, code: int, reason: str, message: str) -> web.Response:
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                "reason": reason, "code": code}
        return web.json_response(body, status=code)

    async def _handle(self, request: web.Request) -> web.Response:
        self.calls.append(Call(request.method, request.path, dict(request.query),
                               request.headers.get("Content-Type", "")))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._status(401, "Unauthorized", "Unauthorized")
        if request.path == "/version":
            return web.json_response({"major": "1", "minor": "30", "gitVersion": "v1.30.0"})
        route = self._route(request.path)
        if route is None:
            return self._status(404, "NotFound", f"the server could not find {request.path}")
        plural, namespace, name = route
        for failure in self.failures:
            if (failure.times > 0 and failure.method == request.method
                    and failure.plural == plural and failure.name in (None, name)):
                failure.times -= 1
                reason = {403: "Forbidden", 409: "Conflict", 422: "Invalid"}.get(
                    failure.status, "InternalError")
                return self._status(failure.status, reason, failure.message)
        body: dict[str, Any] | None = None
        if request.method in ("POST", "PATCH"):
            text = await request.text()
            body = yaml.safe_load(text) if text else None
            if not isinstance(body, dict):
                return self._status(400, "BadRequest", "the request body is not an object")
        if request.method == "GET" and name is None:
            return self._list(plural, namespace, request.query.get("labelSelector", ""))
        if request.method == "GET" and name is not None:
            return self._get(plural, namespace, name)
        if request.method == "POST" and name is None:
            return self._create(plural, namespace, body or {})
        if request.method == "PATCH" and name is not None:
            return self._apply(request, plural, namespace, name, body or {})
        if request.method == "DELETE" and name is not None:
            return self._delete(plural, namespace, name)
        return self._status(405, "MethodNotAllowed", f"{request.method} {request.path}")

    def _route(self, path: str) -> tuple[str, str, str | None] | None:
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, rest = "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            return None
        if rest and rest[0] == "namespaces" and len(rest) <= 2 and group == "v1":
            return "namespaces", "", rest[1] if len(rest) == 2 else None
        if len(rest) in (3, 4) and rest[0] == "namespaces":
            plural = rest[2]
            if GROUPS.get(plural) != group:
                return None
            return plural, rest[1], rest[3] if len(rest) == 4 else None
        return None

    # ------------------------------------------------------------ verbs --

    def _list(self, plural: str, namespace: str, selector: str) -> web.Response:
        wanted = dict(term.split("=", 1) for term in selector.split(",") if term)
        items = []
        for (p, ns, _), obj in sorted(self.objects.items()):
            if p != plural or ns != namespace:
                continue
            labels = obj.get("metadata", {}).get("labels") or {}
            if all(labels.get(k) == v for k, v in wanted.items()):
                items.append(obj)
        return web.json_response({"kind": f"{KINDS[plural]}List", "apiVersion": GROUPS[plural],
                                  "metadata": {}, "items": items})

    def _get(self, plural: str, namespace: str, name: str) -> web.Response:
        obj = self.objects.get((plural, namespace, name))
        if obj is None:
            return self._status(404, "NotFound", f'{plural} "{name}" not found')
        if plural == "deployments":
            self._advance(obj)
        return web.json_response(obj)

    def _check(self, plural: str, namespace: str, body: dict[str, Any]) -> str | None:
        meta = body.get("metadata") or {}
        if body.get("kind") != KINDS[plural] or body.get("apiVersion") != GROUPS[plural]:
            return f"kind {body.get('kind')}/{body.get('apiVersion')} does not belong at {plural}"
        if not meta.get("name"):
            return "metadata.name: Required value"
        if plural != "namespaces" and meta.get("namespace") not in (None, namespace):
            return "the namespace of the object does not match the namespace of the request"
        return None

    def _store(self, plural: str, namespace: str, body: dict[str, Any],
               old: dict[str, Any] | None) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if plural != "namespaces":
            meta["namespace"] = namespace
        if plural == "secrets" and "stringData" in obj:  # write-only field, as in the real API
            data = dict(obj.get("data") or {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            obj["data"] = data
        if old is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = "2026-01-01T00:00:00Z"
            meta["generation"] = 1
            meta["resourceVersion"] = str(next(self._versions))
        else:
            old_meta = old["metadata"]
            for key in ("uid", "creationTimestamp", "generation", "resourceVersion"):
                meta[key] = old_meta[key]
            if "annotations" in old_meta:  # controllers' annotations survive an apply
                kept = {k: v for k, v in old_meta["annotations"].items() if k == REVISION}
                meta["annotations"] = {**kept, **(meta.get("annotations") or {})}
            if "status" in old:
                obj["status"] = old["status"]
            if _content(obj) != _content(old):
                meta["resourceVersion"] = str(next(self._versions))
                if obj.get("spec") != old.get("spec"):
                    meta["generation"] = old_meta["generation"] + 1
        self.objects[(plural, namespace, meta["name"])] = obj
        return obj

    def _create(self, plural: str, namespace: str, body: dict[str, Any]) -> web.Response:
        problem = self._check(plural, namespace, body)
        if problem:
            return self._status(422, "Invalid", f'{KINDS[plural]} is invalid: {problem}')
        name = body["metadata"]["name"]
        if (plural, namespace, name) in self.objects:
            return self._status(409, "AlreadyExists", f'{plural} "{name}" already exists')
        return web.json_response(self._store(plural, namespace, body, None), status=201)

    def _apply(self, request: web.Request, plural: str, namespace: str, name: str,
               body: dict[str, Any]) -> web.Response:
        if request.headers.get("Content-Type") != "application/apply-patch+yaml":
            return self._status(415, "UnsupportedMediaType", "this double only speaks apply")
        if not request.query.get("fieldManager"):
            return self._status(422, "Invalid", "fieldManager is required for apply patch")
        problem = self._check(plural, namespace, body)
        if problem or body["metadata"]["name"] != name:
            return self._status(422, "Invalid", problem or "the name of the object does not "
                                "match the name on the URL")
        old = self.objects.get((plural, namespace, name))
        obj = self._store(plural, namespace, body, old)
        return web.json_response(obj, status=200 if old else 201)

    def _delete(self, plural: str, namespace: str, name: str) -> web.Response:
        obj = self.objects.pop((plural, namespace, name), None)
        if obj is None:
            return self._status(404, "NotFound", f'{plural} "{name}" not found')
        uid = obj["metadata"]["uid"]
        for key, other in list(self.objects.items()):  # garbage-collect dependents
            owners = other.get("metadata", {}).get("ownerReferences") or []
            if any(o.get("uid") == uid for o in owners):
                self.objects.pop(key, None)
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success"})

    # ------------------------------------------------ the Deployment controller --

    def _advance(self, dep: dict[str, Any]) -> None:
        meta = dep["metadata"]
        ns = meta["namespace"]
        spec = dep.get("spec", {})
        desired = int(spec.get("replicas", 1))
        status = dep.setdefault("status", {})
        template_hash = hashlib.sha256(
            json.dumps(spec.get("template"), sort_keys=True).encode()).hexdigest()[:10]
        rs_name = f"{meta['name']}-{template_hash}"
        current = self.objects.get(("replicasets", ns, rs_name))
        if status.get("observedGeneration", 0) < meta["generation"]:
            # Step 1: the controller sees the new spec; a new template gets a new ReplicaSet.
            old = int(status.get("availableReplicas", 0))
            if current is None:
                revision = int((meta.get("annotations") or {}).get(REVISION, "0")) + 1
                meta.setdefault("annotations", {})[REVISION] = str(revision)
                labels = dict(spec.get("template", {}).get("metadata", {}).get("labels", {}))
                self.objects[("replicasets", ns, rs_name)] = {
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": rs_name, "namespace": ns, "labels": labels,
                                 "uid": str(uuid.uuid4()),
                                 "annotations": {REVISION: str(revision)},
                                 "ownerReferences": [{"apiVersion": "apps/v1",
                                                      "kind": "Deployment",
                                                      "name": meta["name"],
                                                      "uid": meta["uid"]}]},
                    "spec": {"replicas": desired}, "status": {"replicas": desired,
                                                              "availableReplicas": 0}}
                status.update(observedGeneration=meta["generation"], updatedReplicas=desired,
                              replicas=desired + old, availableReplicas=old)
                if self.rollout_mode == "stuck":
                    self._stuck_pod(ns, meta["name"], rs_name, labels)
            else:
                status.update(observedGeneration=meta["generation"], updatedReplicas=desired,
                              replicas=desired, availableReplicas=desired)
            return
        if self.rollout_mode == "stuck" or current is None:
            return
        if self.rollout_mode == "deadline":
            status["conditions"] = [{"type": "Progressing", "status": "False",
                                     "reason": "ProgressDeadlineExceeded",
                                     "message": f'ReplicaSet "{rs_name}" has timed out '
                                                "progressing."}]
            return
        # Step 2: the new pods become available, old ReplicaSets scale to zero.
        current["status"] = {"replicas": desired, "availableReplicas": desired}
        for (p, rns, _), rs in self.objects.items():
            owners = rs.get("metadata", {}).get("ownerReferences") or []
            if p == "replicasets" and rns == ns and rs is not current and any(
                    o.get("uid") == meta["uid"] for o in owners):
                rs["spec"]["replicas"] = 0
                rs["status"] = {"replicas": 0, "availableReplicas": 0}
        status.update(replicas=desired, updatedReplicas=desired, availableReplicas=desired)

    def _stuck_pod(self, ns: str, deployment: str, rs_name: str, labels: dict[str, str]) -> None:
        name = f"{rs_name}-abcde"
        rs_uid = self.objects[("replicasets", ns, rs_name)]["metadata"]["uid"]
        self.objects[("pods", ns, name)] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels,
                         "uid": str(uuid.uuid4()),
                         "ownerReferences": [{"kind": "ReplicaSet", "name": rs_name,
                                              "uid": rs_uid}]},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "app", "ready": False,
                "state": {"waiting": {"reason": "ImagePullBackOff",
                                      "message": f'Back-off pulling image for {deployment}'}}}]},
        }


def _content(obj: dict[str, Any]) -> Any:
    meta = {k: v for k, v in obj.get("metadata", {}).items()
            if k not in ("resourceVersion", "generation")}
    return {**{k: v for k, v in obj.items() if k not in ("metadata", "status")}, "metadata": meta}
