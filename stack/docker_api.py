"""The Docker client, with one clear error when the daemon cannot be reached."""

from __future__ import annotations

import os

from harness.errors import HarnessError


def docker_client(timeout: int = 120):
    import docker
    import docker.errors

    from stack.transport import check_docker_host, for_docker_host, is_ssh

    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    check_docker_host(where)
    try:
        if is_ssh(where):  # the host's socket, forwarded here by our ssh master (stack/transport.py)
            client = docker.DockerClient(base_url=for_docker_host(where).docker_socket(), timeout=timeout)
        else:
            client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        detail = " ".join(str(exc).split())[-300:]
        raise HarnessError(f"Docker daemon not reachable at {where}: is it running, and may this user use it? "
                           f"({detail})") from None
    return client


def read_file(container, path: str) -> bytes:
    """One file's bytes out of a container (running or not), through the Docker API's archive."""
    import io
    import tarfile

    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        return tar.extractfile(tar.getmembers()[0]).read()
