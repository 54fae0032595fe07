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
        # On every transport: a local daemon has not been seen to send an exec's output with its headers,
        # but TCP and a busy unix socket may, and reading the buffer first costs nothing.
        client.api.__class__ = _draining_api_client_class()
        client.ping()
    except docker.errors.DockerException as exc:
        detail = " ".join(str(exc).split())[-300:]
        raise HarnessError(f"Docker daemon not reachable at {where}: is it running, and may this user use it? "
                           f"({detail})") from None
    return client


class DrainingSocket:
    """A hijacked stream (an exec's or an attach's output) read through the HTTP response's buffer first.

    The Docker SDK reads the response's headers through a buffered reader, then reads the stream from the
    socket beneath it: bytes that arrived with the headers, already in the buffer, are skipped. From a
    local daemon the output comes after the headers and nothing is lost; through an ssh-forwarded socket
    the two arrive together, and an exec's output was lost (17 of 300 `echo OK` execs came back empty
    with exit code 0; none of 600 locally). Every client reads this way (`docker_client`)."""

    def __init__(self, reader, sock) -> None:
        self._reader = reader  # the response's BufferedReader, over `sock`
        self._sock = sock

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv(self, size: int) -> bytes:
        return self._reader.read1(size)  # what is buffered first, then one read of the socket

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def _draining_api_client_class():
    import docker

    class DrainingAPIClient(docker.APIClient):
        def _get_raw_response_socket(self, response):
            sock = super()._get_raw_response_socket(response)
            reader = getattr(getattr(response.raw, "_fp", None), "fp", None)
            return DrainingSocket(reader, sock) if hasattr(reader, "read1") else sock

    return DrainingAPIClient


def read_file(container, path: str) -> bytes:
    """One file's bytes out of a container (running or not), through the Docker API's archive."""
    import io
    import tarfile

    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        return tar.extractfile(tar.getmembers()[0]).read()
