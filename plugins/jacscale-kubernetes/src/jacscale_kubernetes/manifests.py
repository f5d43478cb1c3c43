"""The Kubernetes objects of one deployed app, as plain dicts (pure functions, no I/O).

Objects, in the order they are applied:
  Secret {app}-secrets         [plugins.scale.secrets] with ${ENV} resolved (envFrom)
  Secret {app}-auth            a generated JWT_SECRET, unless the secrets give one
  Secret {app}-mongodb-auth    generated MongoDB credentials + MONGODB_URI (K8s_MONGODB)
  Secret {app}-redis-auth      generated Redis password + REDIS_URL (K8s_REDIS)
  Secret {app}-postgres-auth   generated PostgreSQL password + DATABASE_URL (K8s_POSTGRES)
  ConfigMap {app}-source       the app's files, when it runs on the published image
  Service + StatefulSet {app}-mongodb, Service + StatefulSet {app}-postgres,
  Service + Deployment {app}-redis
  Deployment {app}, Service {app}, HorizontalPodAutoscaler {app}, PodDisruptionBudget {app}

Every object carries the labels `app.kubernetes.io/part-of={app}` and
`app.kubernetes.io/managed-by=jacscale`, which is how `destroy` finds them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from jacscale_kubernetes.appsource import SourceFile, configmap_key
from jacscale_kubernetes.dockerfile import APP_DIR, APP_PORT, APP_UID, serve_command
from jacscale_kubernetes.settings import KubeSettings

MANAGED_BY = "jacscale"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
ANNOTATION_SOURCE = "jacscale.io/source-digest"
ANNOTATION_SECRETS = "jacscale.io/secrets-version"
DB_UID = 999  # the `mongodb`, `redis` and `postgres` users of the official images
MONGODB_USER = "jacscale"
POSTGRES_USER = "jacscale"
POSTGRES_DATA = "/var/lib/postgresql/data"
STARTUP_PERIOD = 2
STARTUP_FAILURES = 90  # three minutes to start before the kubelet restarts the pod
REDACTED = "<redacted>"
GENERATED = "<generated at first deploy, kept afterwards>"

Manifest = dict[str, Any]


@dataclass
class Blueprint:
    """What the manifests are built from."""

    kube: KubeSettings
    app_file: str
    image: str
    source: list[SourceFile] | None = None  # the app's files, when not baked into the image
    source_digest: str | None = None
    credentials: dict[str, str] = field(default_factory=dict)  # generated secrets by key

    @property
    def app(self) -> str:
        """The app name (prefix of every object name)."""
        return self.kube.app_name

    def name(self, suffix: str = "") -> str:
        """An object name: the app name plus an optional suffix."""
        return f"{self.app}-{suffix}" if suffix else self.app


DATABASES = ("mongodb", "redis", "postgres")


def selector_for(bp: Blueprint, component: str) -> dict[str, str]:
    """The pod selector of a component: "server" and "config" are the app's, else a database's."""
    if component in DATABASES:
        return {"app.kubernetes.io/name": component,
                "app.kubernetes.io/instance": bp.name(component)}
    return {"app.kubernetes.io/name": "jacscale", "app.kubernetes.io/instance": bp.app}


def labels_for(bp: Blueprint, component: str) -> dict[str, str]:
    """The labels of every object of `component` (selectors plus ownership)."""
    return {**selector_for(bp, component), "app.kubernetes.io/component": component,
            LABEL_PART_OF: bp.app, LABEL_MANAGED_BY: MANAGED_BY}


def ownership_selector(app: str) -> str:
    """The label selector that finds everything jacscale deployed for `app`."""
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_PART_OF}={app}"


def _meta(bp: Blueprint, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": bp.kube.namespace, "labels": labels_for(bp, component)}


def _restricted(uid: int) -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"}}


def _container_security(read_only_root: bool) -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "privileged": False,
            "readOnlyRootFilesystem": read_only_root, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


# ---------------------------------------------------------------- secrets ----


def _secret(bp: Blueprint, name: str, values: dict[str, str]) -> Manifest:
    # `data` (base64), not the write-only `stringData`: server-side apply tracks `data`
    # keys, so a key dropped from jac.toml is dropped from the Secret too.
    data = {k: base64.b64encode(v.encode()).decode("ascii") for k, v in values.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(bp, name, "config"),
            "type": "Opaque", "data": data}


def secret_values(manifest: Manifest) -> dict[str, str]:
    """The decoded values of a Secret manifest made by this module."""
    return {k: base64.b64decode(v).decode() for k, v in manifest["data"].items()}


def user_secrets(bp: Blueprint) -> list[Manifest]:
    """`{app}-secrets` from [plugins.scale.secrets], when it has any keys."""
    if not bp.kube.secrets:
        return []
    return [_secret(bp, bp.name("secrets"), bp.kube.secrets)]


def needs_jwt_secret(bp: Blueprint) -> bool:
    """True when the app needs a generated JWT_SECRET shared by every replica."""
    return "JWT_SECRET" not in bp.kube.secrets


def generated_secrets(bp: Blueprint) -> list[Manifest]:
    """Secrets with generated values: created once, never overwritten by a redeploy."""
    creds = bp.credentials
    out = []
    if needs_jwt_secret(bp):
        out.append(_secret(bp, bp.name("auth"), {"JWT_SECRET": creds["jwt_secret"]}))
    ns = bp.kube.namespace
    if bp.kube.mongodb:
        password = creds["mongodb_password"]
        host = f"{bp.name('mongodb')}.{ns}.svc:27017"
        out.append(_secret(bp, bp.name("mongodb-auth"), {
            "MONGO_INITDB_ROOT_USERNAME": MONGODB_USER,
            "MONGO_INITDB_ROOT_PASSWORD": password,
            "MONGODB_URI": f"mongodb://{MONGODB_USER}:{password}@{host}/{bp.app}?authSource=admin",
        }))
    if bp.kube.redis:
        password = creds["redis_password"]
        out.append(_secret(bp, bp.name("redis-auth"), {
            "REDIS_PASSWORD": password,
            "REDIS_URL": f"redis://:{password}@{bp.name('redis')}.{ns}.svc:6379/0",
            "redis.conf": f"requirepass {password}\nsave \"\"\nappendonly no\n",
        }))
    if bp.kube.postgres:
        password = creds["postgres_password"]
        host = f"{bp.name('postgres')}.{ns}.svc:5432"
        out.append(_secret(bp, bp.name("postgres-auth"), {
            "POSTGRES_USER": POSTGRES_USER,
            "POSTGRES_PASSWORD": password,
            "POSTGRES_DB": bp.app,
            "DATABASE_URL": f"postgresql://{POSTGRES_USER}:{password}@{host}/{bp.app}",
        }))
    return out


# ---------------------------------------------------------------- source -----


def source_configmap(bp: Blueprint) -> list[Manifest]:
    """`{app}-source`: the app's files, when the pod runs the published image."""
    if bp.source is None:
        return []
    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    for f in bp.source:
        key = configmap_key(f.path)
        try:
            data[key] = f.data.decode("utf-8")
        except UnicodeDecodeError:
            binary[key] = base64.b64encode(f.data).decode("ascii")
    cm: Manifest = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": _meta(bp, bp.name("source"), "config"), "data": data}
    if binary:
        cm["binaryData"] = binary
    return [cm]


# ---------------------------------------------------------------- app --------


def _app_env(bp: Blueprint) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "JACSCALE_ENV", "value": "production"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "XDG_CACHE_HOME", "value": "/tmp/cache"},
    ]
    if needs_jwt_secret(bp):
        env.append(_secret_env("JWT_SECRET", bp.name("auth"), "JWT_SECRET"))
    if bp.kube.mongodb:
        env.append(_secret_env("MONGODB_URI", bp.name("mongodb-auth"), "MONGODB_URI"))
    if bp.kube.redis:
        env.append(_secret_env("REDIS_URL", bp.name("redis-auth"), "REDIS_URL"))
    if bp.kube.postgres:
        env.append(_secret_env("DATABASE_URL", bp.name("postgres-auth"), "DATABASE_URL"))
    return env


def _app_volumes(bp: Blueprint) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if bp.source is not None:  # a writable /app, the app's files mounted into it one by one
        volumes.append({"name": "app", "emptyDir": {}})
        mounts.append({"name": "app", "mountPath": APP_DIR})
    volumes += [{"name": "work", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    mounts += [{"name": "work", "mountPath": f"{APP_DIR}/.jac"},
               {"name": "tmp", "mountPath": "/tmp"}]
    if bp.source is not None:
        volumes.append({"name": "source", "configMap": {"name": bp.name("source")}})
        for f in bp.source:
            mounts.append({"name": "source", "mountPath": f"{APP_DIR}/{f.path}",
                           "subPath": configmap_key(f.path), "readOnly": True})
    return volumes, mounts


def _probe(path: str, *, delay: int, period: int, failures: int) -> dict[str, Any]:
    probe: dict[str, Any] = {"httpGet": {"path": path, "port": "http"},
                             "periodSeconds": period, "timeoutSeconds": 5,
                             "failureThreshold": failures}
    if delay:
        probe["initialDelaySeconds"] = delay
    return probe


def _resources(kube: KubeSettings) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": kube.cpu_request,
                                              "memory": kube.memory_request}}
    limits = {k: v for k, v in (("cpu", kube.cpu_limit), ("memory", kube.memory_limit)) if v}
    if limits:
        resources["limits"] = limits
    return resources


def app_deployment(bp: Blueprint) -> Manifest:
    """The app's Deployment: probes, requests, zero-downtime rolling update, restricted pods."""
    kube = bp.kube
    volumes, mounts = _app_volumes(bp)
    container: dict[str, Any] = {
        "name": "app",
        "image": bp.image,
        "imagePullPolicy": _pull_policy(bp.image),
        "command": serve_command(bp.app_file),
        "workingDir": APP_DIR,
        "ports": [{"name": "http", "containerPort": APP_PORT, "protocol": "TCP"}],
        "env": _app_env(bp),
        "resources": _resources(kube),
        "startupProbe": _probe("/healthz", delay=0, period=STARTUP_PERIOD,
                               failures=STARTUP_FAILURES),
        "livenessProbe": _probe("/healthz", delay=kube.liveness_initial_delay,
                                period=kube.liveness_period,
                                failures=kube.liveness_failure_threshold),
        "readinessProbe": _probe("/readyz", delay=kube.readiness_initial_delay,
                                 period=kube.readiness_period, failures=3),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
        "securityContext": _container_security(read_only_root=True),
        "volumeMounts": mounts,
    }
    if kube.secrets:
        container["envFrom"] = [{"secretRef": {"name": bp.name("secrets")}}]
    template_meta: dict[str, Any] = {"labels": labels_for(bp, "server")}
    if bp.source_digest:
        template_meta["annotations"] = {ANNOTATION_SOURCE: bp.source_digest}
    spec: dict[str, Any] = {
        "revisionHistoryLimit": 5,
        "progressDeadlineSeconds": 600,
        "selector": {"matchLabels": selector_for(bp, "server")},
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": template_meta,
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": 30,
                "securityContext": _restricted(APP_UID),
                "containers": [container],
                "volumes": volumes,
            },
        },
    }
    if not has_autoscaler(bp):
        spec = {"replicas": kube.replicas, **spec}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _meta(bp, bp.app, "server"), "spec": spec}


def app_service(bp: Blueprint) -> Manifest:
    """The app's Service: NodePort on K8s_NODE_PORT (the default), or ClusterIP."""
    kube = bp.kube
    port: dict[str, Any] = {"name": "http", "port": APP_PORT, "targetPort": "http",
                            "protocol": "TCP"}
    if kube.service_type != "ClusterIP":
        port["nodePort"] = kube.node_port
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(bp, bp.app, "server"),
            "spec": {"type": kube.service_type, "selector": selector_for(bp, "server"),
                     "ports": [port]}}


def has_autoscaler(bp: Blueprint) -> bool:
    """An HPA only makes sense when replicas share a store (MongoDB)."""
    return bp.kube.shared_store


def app_autoscaler(bp: Blueprint) -> list[Manifest]:
    """autoscaling/v2 HPA on CPU utilisation, between K8s_REPLICAS and K8s_MAX_REPLICAS."""
    if not has_autoscaler(bp):
        return []
    kube = bp.kube
    return [{
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(bp, bp.app, "server"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": bp.app},
            "minReplicas": kube.replicas,
            "maxReplicas": kube.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu",
                "target": {"type": "Utilization",
                           "averageUtilization": kube.target_cpu_utilization}}}],
        },
    }]


def app_disruption_budget(bp: Blueprint) -> Manifest:
    """A PDB that lets a node drain evict one pod at a time (never blocks a drain)."""
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _meta(bp, bp.app, "server"),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_for(bp, "server")}}}


# ---------------------------------------------------------------- databases --


def _tcp_probe(port: str, *, delay: int, period: int) -> dict[str, Any]:
    return {"tcpSocket": {"port": port}, "initialDelaySeconds": delay, "periodSeconds": period,
            "timeoutSeconds": 5, "failureThreshold": 6}


def _database(
    bp: Blueprint, role: str, port: int, storage: str, container: dict[str, Any],
    scratch: list[str],
) -> list[Manifest]:
    """A one-replica StatefulSet running `container` (named `role`, listening on the port
    of that name) with a `data` volume claim of `storage` and an emptyDir per `scratch`
    name; and its headless Service."""
    name = bp.name(role)
    selector = selector_for(bp, role)
    claim_spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                                  "resources": {"requests": {"storage": storage}}}
    if bp.kube.storage_class:
        claim_spec["storageClassName"] = bp.kube.storage_class
    service = {"apiVersion": "v1", "kind": "Service", "metadata": _meta(bp, name, role),
               "spec": {"clusterIP": "None", "selector": selector,
                        "ports": [{"name": role, "port": port, "targetPort": role,
                                   "protocol": "TCP"}]}}
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(bp, name, role),
        "spec": {
            "serviceName": name,
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels_for(bp, role)},
                "spec": {"automountServiceAccountToken": False, "enableServiceLinks": False,
                         "securityContext": _restricted(DB_UID), "containers": [container],
                         "volumes": [{"name": v, "emptyDir": {}} for v in scratch]},
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data", "labels": labels_for(bp, role)},
                "spec": claim_spec,
            }],
        },
    }
    return [service, statefulset]


def mongodb(bp: Blueprint) -> list[Manifest]:
    """A one-member MongoDB StatefulSet with a volume, and its headless Service."""
    if not bp.kube.mongodb:
        return []
    kube = bp.kube
    secret = bp.name("mongodb-auth")
    container = {
        "name": "mongodb",
        "image": kube.mongodb_image,
        "imagePullPolicy": _pull_policy(kube.mongodb_image),
        "ports": [{"name": "mongodb", "containerPort": 27017, "protocol": "TCP"}],
        "env": [_secret_env("MONGO_INITDB_ROOT_USERNAME", secret, "MONGO_INITDB_ROOT_USERNAME"),
                _secret_env("MONGO_INITDB_ROOT_PASSWORD", secret, "MONGO_INITDB_ROOT_PASSWORD")],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
        "readinessProbe": _tcp_probe("mongodb", delay=5, period=10),
        "livenessProbe": _tcp_probe("mongodb", delay=30, period=20),
        "securityContext": _container_security(read_only_root=False),
        "volumeMounts": [{"name": "data", "mountPath": "/data/db"},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    return _database(bp, "mongodb", 27017, kube.mongodb_storage, container, ["tmp"])


def postgres(bp: Blueprint) -> list[Manifest]:
    """A one-instance PostgreSQL StatefulSet with a volume, and its headless Service."""
    if not bp.kube.postgres:
        return []
    kube = bp.kube
    secret = bp.name("postgres-auth")
    ready = {"exec": {"command": ["pg_isready", "-h", "127.0.0.1", "-U", POSTGRES_USER,
                                 "-d", bp.app]},
             "initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 5,
             "failureThreshold": 6}
    container = {
        "name": "postgres",
        "image": kube.postgres_image,
        "imagePullPolicy": _pull_policy(kube.postgres_image),
        "ports": [{"name": "postgres", "containerPort": 5432, "protocol": "TCP"}],
        "env": [_secret_env("POSTGRES_USER", secret, "POSTGRES_USER"),
                _secret_env("POSTGRES_PASSWORD", secret, "POSTGRES_PASSWORD"),
                _secret_env("POSTGRES_DB", secret, "POSTGRES_DB"),
                # A subdirectory: the volume's root may hold lost+found, which initdb refuses.
                {"name": "PGDATA", "value": f"{POSTGRES_DATA}/pgdata"}],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
        "readinessProbe": ready,
        "livenessProbe": _tcp_probe("postgres", delay=30, period=20),
        "securityContext": _container_security(read_only_root=False),
        "volumeMounts": [{"name": "data", "mountPath": POSTGRES_DATA},
                         {"name": "run", "mountPath": "/var/run/postgresql"},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    return _database(bp, "postgres", 5432, kube.postgres_storage, container, ["run", "tmp"])


def redis(bp: Blueprint) -> list[Manifest]:
    """A password-protected Redis (cache and pub/sub, no persistence) and its Service."""
    if not bp.kube.redis:
        return []
    kube = bp.kube
    name = bp.name("redis")
    selector = selector_for(bp, "redis")
    service = {"apiVersion": "v1", "kind": "Service", "metadata": _meta(bp, name, "redis"),
               "spec": {"type": "ClusterIP", "selector": selector,
                        "ports": [{"name": "redis", "port": 6379, "targetPort": "redis",
                                   "protocol": "TCP"}]}}
    container = {
        "name": "redis",
        "image": kube.redis_image,
        "imagePullPolicy": _pull_policy(kube.redis_image),
        "command": ["redis-server", "/etc/redis/redis.conf"],
        "ports": [{"name": "redis", "containerPort": 6379, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "readinessProbe": _tcp_probe("redis", delay=2, period=10),
        "livenessProbe": _tcp_probe("redis", delay=10, period=20),
        "securityContext": _container_security(read_only_root=True),
        "volumeMounts": [{"name": "config", "mountPath": "/etc/redis", "readOnly": True},
                         {"name": "data", "mountPath": "/data"}],
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(bp, name, "redis"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels_for(bp, "redis")},
                "spec": {"automountServiceAccountToken": False, "enableServiceLinks": False,
                         "securityContext": _restricted(DB_UID), "containers": [container],
                         "volumes": [
                             {"name": "config", "secret": {
                                 "secretName": bp.name("redis-auth"),
                                 "defaultMode": 0o440,  # owner and the fsGroup only
                                 "items": [{"key": "redis.conf", "path": "redis.conf"}]}},
                             {"name": "data", "emptyDir": {}}]},
            },
        },
    }
    return [service, deployment]


# ---------------------------------------------------------------- all --------


def build_all(bp: Blueprint) -> list[Manifest]:
    """Every object of the app, in apply order."""
    return [
        *user_secrets(bp),
        *generated_secrets(bp),
        *source_configmap(bp),
        *mongodb(bp),
        *postgres(bp),
        *redis(bp),
        app_deployment(bp),
        app_service(bp),
        *app_autoscaler(bp),
        app_disruption_budget(bp),
    ]


def generated_secret_names(bp: Blueprint) -> set[str]:
    """Names of the Secrets whose values are generated (create once, then keep)."""
    return {m["metadata"]["name"] for m in generated_secrets(bp)}


def redact(manifests: list[Manifest], generated: set[str]) -> list[Manifest]:
    """Copies safe to print: every Secret value replaced by a placeholder (as stringData)."""
    out = []
    for m in manifests:
        if m["kind"] == "Secret":
            placeholder = GENERATED if m["metadata"]["name"] in generated else REDACTED
            shown = {k: v for k, v in m.items() if k != "data"}
            shown["stringData"] = dict.fromkeys(m["data"], placeholder)
            m = shown
        out.append(m)
    return out
