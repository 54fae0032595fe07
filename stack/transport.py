"""How this process reaches the ports of the Docker host its stack runs on (#17).

The harness publishes every node port on the Docker host's 127.0.0.1 and never on a wider address, and
some probes go to a node's address on the run's network (a bridge on that host). On a local daemon
(`unix://`, or `tcp://` to this machine) both are reachable as they are: `Local`.

On a remote daemon reached over ssh (`DOCKER_HOST=ssh://[user@]host[:port]`, as the Docker CLI takes
it), neither is reachable from here, and nothing is opened to the network for it: `SshTunnels` keeps one
ssh master connection to the host (OpenSSH's ControlMaster), one per Docker host and process, and asks it
for one local forward per address and port the harness wants, on this machine's 127.0.0.1. The Docker
API goes through the same master: the host's Docker socket is forwarded to a unix socket here, and the
SDK uses that as it would a local daemon (its own ssh transport starts an ssh per pooled connection and
fails on a closed exec stream). So the host needs sshd with stream-local forwarding (its default) and a
user who may use its Docker socket, `/var/run/docker.sock` unless the URL gives another path
(`ssh://user@host/run/other/docker.sock`, our extension); no docker CLI there. This user's key must be
accepted without a prompt (BatchMode). `ssh` is taken from PATH, and reads the user's ~/.ssh/config as
ever. The master ends with the process, however it ends: a watchdog shell beside it stops it once the
process that started it is gone.

A remote `tcp://` daemon is refused where hosts are checked (`check_docker_host`): its API is reachable,
but the ports it publishes on its own 127.0.0.1 are not, and the harness will not publish them wider.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from urllib.parse import urlsplit

from harness.errors import HarnessError

LOCAL_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
MASTER_READY_S = 20.0  # ssh's own ConnectTimeout is below it: a host that does not answer fails first
SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
               "-o", "ServerAliveCountMax=3", "-o", "ExitOnForwardFailure=yes"]


def check_docker_host(host: str) -> str:
    """A Docker host as --chaos-docker-hosts / DOCKER_HOST give it, or a HarnessError saying why not."""
    scheme, sep, rest = host.partition("://")
    if not sep:
        raise HarnessError(f"Docker host {host!r} has no scheme: give unix:///path, tcp://127.0.0.1:PORT "
                           "or ssh://[user@]host[:port]")
    if scheme == "unix":
        if not rest.startswith("/"):
            raise HarnessError(f"Docker host {host!r}: a unix socket needs an absolute path (unix:///...)")
        return host
    parts = urlsplit(host)
    try:
        port = parts.port
    except ValueError:
        raise HarnessError(f"Docker host {host!r}: the port is not a number 1..65535") from None
    path_ok = parts.path in ("", "/") or (scheme == "ssh" and parts.path.startswith("/"))
    if not parts.hostname or not path_ok or parts.query or parts.fragment or (
            port is not None and not 0 < port < 65536):
        raise HarnessError(f"Docker host {host!r}: expected " + (
            "ssh://[user@]host[:port][/path/of/its/docker.sock]" if scheme == "ssh" else
            f"{scheme}://host[:port] and nothing after it"))
    if scheme == "ssh":
        if shutil.which("ssh") is None:
            raise HarnessError(f"Docker host {host!r} is reached over ssh, and no `ssh` is on PATH "
                               "(Debian: apt-get install openssh-client)")
        return host
    if scheme == "tcp":
        if parts.hostname in LOCAL_NAMES:
            return host
        raise HarnessError(f"Docker host {host!r}: a remote daemon over plain tcp:// is not supported. The "
                           "harness publishes node ports on the Docker host's 127.0.0.1 only, which tcp:// "
                           f"gives no way to reach; use ssh://{parts.hostname} (the same daemon, with "
                           "ports tunnelled over ssh)")
    raise HarnessError(f"Docker host {host!r}: unknown scheme {scheme!r} (unix, tcp or ssh)")


def is_ssh(host: str | None) -> bool:
    return bool(host) and host.startswith("ssh://")


class Local:
    """A Docker host on this machine: its 127.0.0.1 and its bridges are ours."""

    remote = False

    def reach(self, address: str, port: int) -> tuple[str, int]:
        return address, port

    def close(self) -> None:
        pass


# Runs the ssh master as its child and stops it once the owner (this process) is gone, however it went:
# a SIGKILLed harness must not leave its master behind, nor its folder of sockets (which the watchdog
# removes only when the owner is gone: a live owner may be starting a new master in it). PR_SET_PDEATHSIG
# would fire when the *thread* that started the master ends, and any thread may be the first to reach
# the host. Arguments: owner pid, folder, then the ssh command.
WATCHDOG = ('owner=$1; dir=$2; shift 2; "$@" & child=$!; trap \'kill $child 2>/dev/null; exit 0\' TERM INT HUP; '
            'while kill -0 "$owner" 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1; done; '
            'kill $child 2>/dev/null; wait $child; kill -0 "$owner" 2>/dev/null || rm -rf "$dir"')


def _free_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SshTunnels:
    """Local forwards through one ssh master connection to a remote Docker host; made on first use, and
    made again if the master went away (the Docker socket at once, at the same path; each port forward
    when it is next asked for)."""

    remote = True

    def __init__(self, docker_host: str) -> None:
        parts = urlsplit(docker_host)
        self.docker_host = docker_host
        self.destination = f"{parts.username}@{parts.hostname}" if parts.username else str(parts.hostname)
        self.port = parts.port
        self.remote_socket = parts.path if parts.path not in ("", "/") else "/var/run/docker.sock"
        self._lock = threading.RLock()
        self._master: subprocess.Popen | None = None
        self._dir: str | None = None
        self._forwards: dict[tuple[str, int], int] = {}
        self._socket_wanted = False  # a Docker client uses the forwarded socket: keep it across masters

    # ------------------------------------------------------------------ ssh commands
    def _base(self) -> list[str]:
        assert self._dir is not None
        cmd = ["ssh", *SSH_OPTIONS, "-S", os.path.join(self._dir, "ctl")]
        if self.port:
            cmd += ["-p", str(self.port)]
        return cmd

    def _control(self, *args: str, timeout: float = 15.0) -> subprocess.CompletedProcess:
        return subprocess.run([*self._base(), *args, "--", self.destination], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def _start_master(self) -> None:
        """A new master (the last one is gone), and the Docker socket's forward again at the same local
        path, so that a Docker client made before still reaches the host. Port forwards are made again
        as they are asked for (their local ports change)."""
        self._stop_master()
        if self._dir is None:  # one folder for the transport's life; a unix socket's path fits in 108 bytes
            self._dir = tempfile.mkdtemp(prefix="chaos-ssh-", dir="/tmp")
        for stale in ("ctl", "docker.sock"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self._dir, stale))
        with open(os.path.join(self._dir, "master.log"), "w") as log:
            self._master = subprocess.Popen(
                ["sh", "-c", WATCHDOG, "chaos-ssh-watchdog", str(os.getpid()), self._dir,
                 *self._base(), "-M", "-N", "-o", "ControlPersist=no", "-o", "StreamLocalBindUnlink=yes",
                 "--", self.destination],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + MASTER_READY_S
        while time.monotonic() < deadline:
            if self._master.poll() is not None:
                break
            if self._control("-O", "check").returncode == 0:
                if self._socket_wanted:
                    self._forward_socket()
                return
            time.sleep(0.1)
        detail = self._master_log()
        self._stop_master()
        raise HarnessError(f"ssh to {self.destination} (Docker host {self.docker_host}) did not connect"
                           f"{': ' + detail if detail else ''}")

    def _master_log(self) -> str:
        try:
            with open(os.path.join(self._dir or "", "master.log")) as fh:
                return " ".join(fh.read().split())[-300:]
        except OSError:
            return ""

    def _stop_master(self) -> None:
        master, self._master = self._master, None
        self._forwards.clear()
        if master is not None and master.poll() is None:
            master.terminate()
            try:
                master.wait(timeout=5)
            except subprocess.TimeoutExpired:
                master.kill()
                master.wait()

    def _ensure_master(self) -> None:
        if self._master is None or self._master.poll() is not None:
            self._start_master()

    def _socket_path(self) -> str:
        assert self._dir is not None
        return os.path.join(self._dir, "docker.sock")

    def _forward_socket(self) -> None:
        done = self._control("-O", "forward", "-L", f"{self._socket_path()}:{self.remote_socket}")
        if done.returncode != 0:
            raise HarnessError(f"ssh to {self.destination} would not forward its Docker socket "
                               f"{self.remote_socket}: {' '.join(done.stderr.split())[-300:]}")

    # ------------------------------------------------------------------ the interface
    def docker_socket(self) -> str:
        """unix:// URL of a local socket that reaches the host's Docker socket."""
        with self._lock:
            if self._master is None or self._master.poll() is not None:
                self._socket_wanted = True
                self._start_master()  # forwards it
            elif not self._socket_wanted:
                self._forward_socket()
                self._socket_wanted = True
            return f"unix://{self._socket_path()}"

    def reach(self, address: str, port: int) -> tuple[str, int]:
        """A local (host, port) that reaches `address:port` as the Docker host sees it."""
        with self._lock:
            self._ensure_master()
            key = (address, port)
            if key in self._forwards:
                return "127.0.0.1", self._forwards[key]
            problem = ""
            for _ in range(5):  # the free port we picked may be taken before ssh binds it
                local = _free_local_port()
                done = self._control("-O", "forward", "-L", f"127.0.0.1:{local}:{address}:{port}")
                if done.returncode == 0:
                    self._forwards[key] = local
                    return "127.0.0.1", local
                problem = " ".join(done.stderr.split())[-300:]
            raise HarnessError(f"ssh to {self.destination} would not forward a local port to {address}:{port} "
                               f"on the Docker host: {problem}")

    def close(self) -> None:
        """End the master and its forwards, and remove the folder of its sockets."""
        with self._lock:
            if self._master is not None and self._master.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                    self._control("-O", "exit", timeout=5)
            self._stop_master()
            self._socket_wanted = False
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None


_shared: dict[str, SshTunnels] = {}
_shared_lock = threading.Lock()


def for_docker_host(host: str | None = None) -> Local | SshTunnels:
    """The transport to a Docker host (DOCKER_HOST by default); over ssh, one per host and process, shared
    by the Docker client and every stack on that host, and closed when the process exits."""
    host = host if host is not None else os.environ.get("DOCKER_HOST", "")
    if not is_ssh(host):
        return Local()
    with _shared_lock:
        if host not in _shared:
            if not _shared:
                atexit.register(close_all)
            _shared[host] = SshTunnels(host)
        return _shared[host]


@contextlib.contextmanager
def sdk_reachable_docker_host():
    """While inside: DOCKER_HOST as a library that makes its own Docker client can use it (testcontainers
    asks the daemon for its API version when a DockerContainer is made, and the Docker SDK's ssh
    transport needs paramiko): over ssh, our forwarded socket; otherwise untouched."""
    host = os.environ.get("DOCKER_HOST", "")
    if not is_ssh(host):
        yield
        return
    os.environ["DOCKER_HOST"] = for_docker_host(host).docker_socket()
    try:
        yield
    finally:
        os.environ["DOCKER_HOST"] = host


def close_all() -> None:
    with _shared_lock:
        tunnels = list(_shared.values())
        _shared.clear()
    for each in tunnels:
        each.close()
