"""Docker hosts and how the harness reaches their ports (stack/transport.py), without Docker or ssh."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import HarnessError
from stack import transport


@pytest.mark.parametrize("host", ["unix:///var/run/docker.sock", "tcp://127.0.0.1:2375", "tcp://localhost:2376",
                                  "ssh://me@far", "ssh://far:2222", "ssh://me@10.0.0.5:22",
                                  "ssh://me@far/run/other/docker.sock"])
def test_accepted_hosts(host):
    assert transport.check_docker_host(host) == host


@pytest.mark.parametrize("host, words", [
    ("/var/run/docker.sock", "has no scheme"),
    ("unix://relative.sock", "absolute path"),
    ("tcp://10.0.0.5:2375", "a remote daemon over plain tcp:// is not supported"),
    ("ssh://", "expected ssh://[user@]host[:port]"),
    ("ssh://me@far:99999", "port"),
    ("tcp://127.0.0.1:2375/some/path", "nothing after it"),
    ("ssh://me@far?x=1", "expected ssh://[user@]host[:port][/path/of/its/docker.sock]"),
    ("http://far", "unknown scheme 'http'"),
])
def test_refused_hosts_say_why(host, words):
    with pytest.raises(HarnessError, match=None) as caught:
        transport.check_docker_host(host)
    assert words in str(caught.value), str(caught.value)


def test_ssh_needs_an_ssh_client(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(HarnessError, match="no `ssh` is on PATH"):
        transport.check_docker_host("ssh://me@far")


def test_local_hosts_reach_addresses_as_they_are():
    assert isinstance(transport.for_docker_host("unix:///var/run/docker.sock"), transport.Local)
    assert transport.for_docker_host("tcp://127.0.0.1:2375").reach("10.1.2.3", 80) == ("10.1.2.3", 80)


def fake_ssh(tmp_path, monkeypatch, master_fails=False):
    """An `ssh` on PATH that records its arguments: a master (-M) that runs until it is killed, and control
    commands (-O) that succeed while the master lives."""
    log = tmp_path / "ssh.log"
    script = tmp_path / "bin" / "ssh"
    script.parent.mkdir()
    script.write_text(f"""#!/bin/sh
echo "$*" >> {log}
case " $* " in
  *" -M "*) {'echo "Permission denied (publickey)." >&2; exit 255' if master_fails else 'echo $$ > ' + str(tmp_path / 'master.pid') + '; exec sleep 60'} ;;
  *" -O check "*|*" -O forward "*|*" -O exit "*) kill -0 "$(cat {tmp_path / 'master.pid'} 2>/dev/null)" 2>/dev/null ;;
esac
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return log


def test_ssh_tunnels_forward_each_address_once_on_local_loopback(tmp_path, monkeypatch):
    log = fake_ssh(tmp_path, monkeypatch)
    tunnels = transport.for_docker_host("ssh://me@far:2222")
    try:
        host, port = tunnels.reach("127.0.0.1", 32768)
        assert host == "127.0.0.1" and port > 0
        assert tunnels.reach("127.0.0.1", 32768) == (host, port)  # made once
        other = tunnels.reach("172.18.0.17", 8080)
        assert other != (host, port)
        lines = log.read_text().splitlines()
        masters = [l for l in lines if " -M " in f" {l} "]
        forwards = [l for l in lines if "-O forward" in l]
        assert len(masters) == 1 and "-p 2222" in masters[0] and masters[0].endswith("-- me@far")
        assert "BatchMode=yes" in masters[0]
        assert [f.split("-L ")[1].split()[0] for f in forwards] == [
            f"127.0.0.1:{port}:127.0.0.1:32768", f"127.0.0.1:{other[1]}:172.18.0.17:8080"]
    finally:
        tunnels.close()
    assert "-O exit" in log.read_text()
    assert master_gone(int((tmp_path / "master.pid").read_text()))


def master_gone(pid: int, within_s: float = 5.0) -> bool:
    """The process ends (or is a zombie, whose parent has not waited for it yet) within `within_s`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_the_master_ends_when_its_owner_is_killed(tmp_path, monkeypatch):
    """The watchdog beside the master stops it once the process that started it is gone (SIGKILL too)."""
    fake_ssh(tmp_path, monkeypatch)
    code = ("import time; from stack import transport; "
            "print(transport.for_docker_host('ssh://me@far').reach('127.0.0.1', 80), flush=True); time.sleep(60)")
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[2])
    try:
        assert owner.stdout.readline().startswith("('127.0.0.1',")
        pid = int((tmp_path / "master.pid").read_text())
        folder = next(l for l in (tmp_path / "ssh.log").read_text().split() if "/chaos-ssh-" in l).rsplit("/", 1)[0]
        assert not master_gone(pid, 0.3) and os.path.isdir(folder)
        owner.kill()
        owner.wait()
        assert master_gone(pid, 5.0), "the ssh master outlived its SIGKILLed owner"
        deadline = time.monotonic() + 5
        while os.path.exists(folder) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(folder), "the folder of the SIGKILLed owner's sockets was left in /tmp"
    finally:
        owner.kill()


def test_ssh_tunnels_come_back_after_the_master_died(tmp_path, monkeypatch):
    log = fake_ssh(tmp_path, monkeypatch)
    tunnels = transport.for_docker_host("ssh://far")
    try:
        tunnels.reach("127.0.0.1", 1000)
        tunnels._master.kill()
        tunnels._master.wait()
        tunnels.reach("127.0.0.1", 1000)
        lines = log.read_text().splitlines()
        assert sum(" -M " in f" {l} " for l in lines) == 2
        assert sum("-O forward" in l for l in lines) == 2  # the forward was made again on the new master
    finally:
        tunnels.close()


def test_a_host_that_refuses_ssh_is_one_clear_error(tmp_path, monkeypatch):
    fake_ssh(tmp_path, monkeypatch, master_fails=True)
    tunnels = transport.for_docker_host("ssh://me@far")
    with pytest.raises(HarnessError, match=r"ssh to me@far .* did not connect: Permission denied \(publickey\)"):
        tunnels.reach("127.0.0.1", 1000)
    assert tunnels._master is None
    folder = tunnels._dir
    tunnels.close()
    assert folder and not os.path.exists(folder)  # nothing left in /tmp



def test_the_docker_socket_is_forwarded_through_the_same_master(tmp_path, monkeypatch):
    log = fake_ssh(tmp_path, monkeypatch)
    default = transport.SshTunnels("ssh://me@far")
    other = transport.SshTunnels("ssh://me@far/run/d2/docker.sock")
    try:
        url = default.docker_socket()
        assert url.startswith("unix:///tmp/chaos-ssh-") and url.endswith("/docker.sock")
        assert default.docker_socket() == url  # forwarded once
        default.reach("127.0.0.1", 80)
        other.docker_socket()
        lines = log.read_text().splitlines()
        forwards = [l.split("-L ")[1].split()[0] for l in lines if "-O forward" in l]
        assert forwards[0] == f"{url.removeprefix('unix://')}:/var/run/docker.sock"
        assert forwards[2].endswith(":/run/d2/docker.sock")
        assert sum(" -M " in f" {l} " for l in lines) == 2  # one master per host, shared by socket and ports
    finally:
        default.close()
        other.close()


def test_one_transport_per_ssh_host_in_a_process(tmp_path, monkeypatch):
    fake_ssh(tmp_path, monkeypatch)
    try:
        assert transport.for_docker_host("ssh://me@far") is transport.for_docker_host("ssh://me@far")
        assert transport.for_docker_host("ssh://me@far") is not transport.for_docker_host("ssh://me@near")
    finally:
        transport.close_all()


def test_a_new_master_forwards_the_docker_socket_again_at_the_same_path(tmp_path, monkeypatch):
    """A Docker client made before the master went away keeps its base URL: the new master forwards the
    host's socket to the same local path at once, before anyone asks for a port."""
    log = fake_ssh(tmp_path, monkeypatch)
    tunnels = transport.SshTunnels("ssh://me@far")
    try:
        url = tunnels.docker_socket()
        tunnels._master.kill()
        tunnels._master.wait()
        tunnels.reach("127.0.0.1", 1000)
        assert tunnels.docker_socket() == url
        sockets = [l for l in log.read_text().splitlines() if "-O forward" in l and "docker.sock" in l]
        assert len(sockets) == 2 and all(f"{url.removeprefix('unix://')}:/var/run/docker.sock" in l for l in sockets)
        masters = [l for l in log.read_text().splitlines() if " -M " in f" {l} "]
        assert all("StreamLocalBindUnlink=yes" in m for m in masters)  # the old socket file is replaced
    finally:
        tunnels.close()


def test_libraries_with_their_own_docker_client_see_the_forwarded_socket_meanwhile(tmp_path, monkeypatch):
    fake_ssh(tmp_path, monkeypatch)
    monkeypatch.setenv("DOCKER_HOST", "ssh://me@far")
    try:
        with transport.sdk_reachable_docker_host():
            inside = os.environ["DOCKER_HOST"]
        assert inside == transport.for_docker_host("ssh://me@far").docker_socket()
        assert os.environ["DOCKER_HOST"] == "ssh://me@far"
        monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
        with transport.sdk_reachable_docker_host():
            assert os.environ["DOCKER_HOST"] == "unix:///var/run/docker.sock"
    finally:
        transport.close_all()


def test_a_hijacked_stream_is_read_through_the_response_buffer_first():
    """Headers and output that arrive together (as through an ssh-forwarded socket): the output is already
    in the reader's buffer once the headers are read, and the socket beneath it has nothing left."""
    import io
    import socket as pysocket

    from stack.docker_api import DrainingSocket

    ours, theirs = pysocket.socketpair()
    try:
        theirs.sendall(b"HTTP/1.1 101 UPGRADED\r\n\r\n\x01\x00\x00\x00\x00\x00\x00\x03OK\n")
        theirs.close()
        raw = ours.makefile("rb", buffering=0)
        reader = io.BufferedReader(raw, 8192)
        while reader.readline() not in (b"\r\n", b""):
            pass  # the headers, as http.client reads them
        assert raw.read(64) == b""  # what the SDK read: the output was skipped
        draining = DrainingSocket(reader, raw)
        data = b""
        while chunk := draining.recv(5):
            data += chunk
        assert data == b"\x01\x00\x00\x00\x00\x00\x00\x03OK\n"  # the frame, whole, then EOF
        assert draining.fileno() == raw.fileno()
    finally:
        ours.close()
