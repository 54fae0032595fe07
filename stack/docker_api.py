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
        raise HarnessError(
            f"Docker daemon not reachable at {where}: is it running, and may this user use it?") from None
    return client


def read_file(container, path: str) -> bytes:
    """One file's bytes out of a container (running or not), through the Docker API's archive."""
    import io
    import tarfile

    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        return tar.extractfile(tar.getmembers()[0]).read()
