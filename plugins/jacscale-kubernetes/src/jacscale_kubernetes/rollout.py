"""Wait for a Deployment's rollout, from inside the cluster's own bookkeeping.

Done means what `kubectl rollout status` means, plus the current ReplicaSet:
- the controller has seen the new spec (status.observedGeneration >= generation);
- every replica is updated and no old replica is left (status.replicas == updated);
- the updated replicas are available, and so is the ReplicaSet of the current revision.
A Progressing=False/ProgressDeadlineExceeded condition fails at once. On failure or
timeout the error names the pods' reasons (ImagePullBackOff, CrashLoopBackOff ...).
No external URL is polled: a NodePort or load balancer may not be reachable from here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, TextIO

from jacscale_core.deploy import DeployError
from jacscale_kubernetes.client import KubeClient, describe

REVISION = "deployment.kubernetes.io/revision"


@dataclass(frozen=True)
class Progress:
    """One look at a Deployment's status."""

    desired: int
    observed: bool
    updated: int
    total: int
    available: int
    failure: str | None

    def line(self, name: str) -> str:
        """A progress line for the terminal."""
        if not self.observed:
            return f"{name}: waiting for the controller to see the new spec"
        old = self.total - self.updated
        tail = f", {old} old replica(s) terminating" if old > 0 else ""
        return (f"{name}: {self.updated}/{self.desired} updated, "
                f"{self.available}/{self.desired} available{tail}")

    @property
    def complete(self) -> bool:
        """True when the Deployment's own status says the rollout is over."""
        return (self.observed and self.updated >= self.desired and self.total == self.updated
                and self.available >= self.updated)


def read_progress(deployment: dict[str, Any]) -> Progress:
    """Progress from a Deployment object."""
    meta = deployment.get("metadata", {})
    spec = deployment.get("spec", {})
    status = deployment.get("status") or {}
    desired = int(spec.get("replicas", 1))
    failure = None
    for cond in status.get("conditions") or []:
        if (cond.get("type") == "Progressing" and cond.get("status") == "False"
                and cond.get("reason") == "ProgressDeadlineExceeded"):
            failure = cond.get("message") or "progress deadline exceeded"
    return Progress(
        desired=desired,
        observed=int(status.get("observedGeneration", 0)) >= int(meta.get("generation", 1)),
        updated=int(status.get("updatedReplicas", 0)),
        total=int(status.get("replicas", 0)),
        available=int(status.get("availableReplicas", 0)),
        failure=failure,
    )


def _selector(deployment: dict[str, Any]) -> str:
    labels = deployment.get("spec", {}).get("selector", {}).get("matchLabels", {})
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


async def current_replicaset(client: KubeClient, deployment: dict[str, Any]) -> dict[str, Any] | None:
    """The ReplicaSet the Deployment owns for its current revision, if there is one yet."""
    meta = deployment["metadata"]
    revision = (meta.get("annotations") or {}).get(REVISION)
    if revision is None:
        return None
    for rs in await client.list("ReplicaSet", meta["namespace"], _selector(deployment)):
        rs_meta = rs.get("metadata", {})
        owners = {o.get("uid") for o in rs_meta.get("ownerReferences") or []}
        if meta.get("uid") in owners and (rs_meta.get("annotations") or {}).get(REVISION) == revision:
            return rs
    return None


async def pod_problems(client: KubeClient, deployment: dict[str, Any], limit: int = 3) -> list[str]:
    """Why the Deployment's pods are not ready, one phrase per pod (at most `limit`)."""
    meta = deployment["metadata"]
    problems = []
    for pod in await client.list("Pod", meta["namespace"], _selector(deployment)):
        name = pod.get("metadata", {}).get("name", "?")
        status = pod.get("status") or {}
        reason = None
        for cs in status.get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") and waiting.get("reason") != "ContainerCreating":
                reason = waiting["reason"] + (f" ({waiting['message']})" if waiting.get("message") else "")
                break
            terminated = (cs.get("lastState") or {}).get("terminated") or {}
            if terminated.get("reason"):
                reason = f"last exit {terminated.get('exitCode')} ({terminated['reason']})"
        if reason is None:
            for cond in status.get("conditions") or []:
                if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                    reason = f"not scheduled ({cond.get('message') or cond.get('reason')})"
        if reason:
            problems.append(f"pod {name}: {reason}")
        if len(problems) >= limit:
            break
    return problems


async def wait_for_rollout(
    client: KubeClient,
    namespace: str,
    name: str,
    *,
    rollout_timeout: float,
    poll_interval: float,
    out: TextIO,
) -> None:
    """Poll the Deployment (and its current ReplicaSet) until rolled out, failed or timed out."""
    label = describe("Deployment", namespace, name)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + rollout_timeout
    last_line = None
    while True:
        deployment = await client.get("Deployment", namespace, name)
        if deployment is None:
            raise DeployError(f"{label} disappeared during the rollout")
        progress = read_progress(deployment)
        if progress.failure is not None:
            problems = await pod_problems(client, deployment)
            raise DeployError(f"{label}: {progress.failure}" + "".join(f"; {p}" for p in problems))
        done = False
        if progress.complete:
            rs = await current_replicaset(client, deployment)
            rs_available = int(((rs or {}).get("status") or {}).get("availableReplicas", 0))
            done = rs is not None and rs_available >= progress.desired
        line = progress.line(label)
        if line != last_line:
            print(line, file=out, flush=True)
            last_line = line
        if done:
            print(f"{label}: rolled out", file=out, flush=True)
            return
        remaining = deadline - loop.time()
        if remaining <= 0:
            problems = await pod_problems(client, deployment)
            raise DeployError(
                f"{label} did not roll out within {rollout_timeout:g} s ({progress.updated}/"
                f"{progress.desired} updated, {progress.available}/{progress.desired} available)"
                + "".join(f"; {p}" for p in problems))
        await asyncio.sleep(min(poll_interval, remaining))
