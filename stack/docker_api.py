"""The Docker client, with one clear error when the daemon cannot be reached."""

from __future__ import annotations

import os

from harness.errors import HarnessError


def docker_client(timeout: int = 120):
    import docker
    import docker.errors

    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        reason = str(exc).split("(")[0].strip() or type(exc).__name__
        raise HarnessError(f"Docker daemon not reachable at {where}: {reason}") from None
    return client
