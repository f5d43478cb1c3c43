"""Image registry `dockerhub`: images are docker.io/$DOCKER_USERNAME/<app>:<tag>.

`build_and_push` logs in with DOCKER_PASSWORD when it is set (passed on stdin;
otherwise an earlier `docker login` is used), builds with the Dockerfile the
target wrote, and pushes. Other registries (ecr, gcr) are further plugins
answering the `jacscale_image_registry` hook with the same two methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TextIO

from jacscale_core.deploy import BuildSpec, DeployError
from jacscale_kubernetes import engine

REGISTRY_HOST = "docker.io"


class DockerHubRegistry:
    """Docker Hub, through the local docker or podman."""

    name = "dockerhub"

    def repository(self, app_name: str, env: Mapping[str, str]) -> str:
        """docker.io/<DOCKER_USERNAME>/<app_name>."""
        user = env.get("DOCKER_USERNAME", "").strip()
        if not user:
            raise DeployError("registry dockerhub needs DOCKER_USERNAME (and DOCKER_PASSWORD, "
                              "or an earlier `docker login`)")
        return f"{REGISTRY_HOST}/{user.lower()}/{app_name}"

    async def build_and_push(self, spec: BuildSpec, *, env: Mapping[str, str], out: TextIO) -> None:
        """Log in (if DOCKER_PASSWORD is set), build `spec.image`, push it."""
        found = engine.find_engine(env, spec.dockerfile)
        password = env.get("DOCKER_PASSWORD", "")
        if password:
            user = env.get("DOCKER_USERNAME", "").strip()
            print(f"logging in to {REGISTRY_HOST} as {user}", file=out, flush=True)
            await engine.run(found, ["login", REGISTRY_HOST, "--username", user,
                                     "--password-stdin"],
                             what=f"{found.name} login to {REGISTRY_HOST}",
                             time_limit=engine.LOGIN_TIMEOUT, env=env, stdin=password.encode())
        args = ["build", "--file", str(spec.dockerfile), "--tag", spec.image]
        if spec.ignore_file is not None and found.name == "podman":
            args += ["--ignorefile", str(spec.ignore_file)]
        if spec.platform:
            args += ["--platform", spec.platform]
        args.append(str(spec.context))
        print(f"building {spec.image}", file=out, flush=True)
        await engine.run(found, args, what=f"building {spec.image}",
                         time_limit=engine.BUILD_TIMEOUT, env=env)
        print(f"pushing {spec.image}", file=out, flush=True)
        await engine.run(found, ["push", spec.image], what=f"pushing {spec.image}",
                         time_limit=engine.PUSH_TIMEOUT, env=env)
