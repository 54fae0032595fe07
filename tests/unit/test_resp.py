"""stack/resp.py: one Redis command asked at a node's address, read back as redis-cli would show it."""

from __future__ import annotations

import io
import socket
import threading

import pytest

from stack import resp


def test_encode_is_a_resp_array_of_bulk_strings():
    assert resp.encode("SENTINEL", "MASTER", "mymaster") == (
        b"*3\r\n$8\r\nSENTINEL\r\n$6\r\nMASTER\r\n$8\r\nmymaster\r\n")


@pytest.mark.parametrize("wire, expected", [
    (b"+PONG\r\n", "PONG"),
    (b":42\r\n", 42),
    (b"$5\r\nro\r\nx\r\n", "ro\r\nx"),  # a bulk string is read by its length, CRLFs inside included
    (b"$-1\r\n", None),
    (b"*4\r\n$4\r\nname\r\n$8\r\nmymaster\r\n$2\r\nip\r\n$6\r\nredis1\r\n", ["name", "mymaster", "ip", "redis1"]),
    (b"*-1\r\n", None),
])
def test_read_reply(wire, expected):
    assert resp.read_reply(io.BytesIO(wire)) == expected


def test_an_error_reply_raises_with_its_text():
    with pytest.raises(resp.RespError, match="NOAUTH Authentication required"):
        resp.read_reply(io.BytesIO(b"-NOAUTH Authentication required.\r\n"))


@pytest.mark.parametrize("wire", [b"", b"+PON", b"$10\r\nshort\r\n", b"?what\r\n"])
def test_a_cut_or_foreign_reply_is_a_connection_error(wire):
    with pytest.raises(ConnectionError):
        resp.read_reply(io.BytesIO(wire))


class FakeContainer:
    def __init__(self, status: str) -> None:
        self.status = status

    def reload(self) -> None:
        pass


class FakeStack:
    """A node whose address is a local server's, as Stack.reach gives it on a local Docker host."""

    def __init__(self, status: str, port: int) -> None:
        self._container = FakeContainer(status)
        self.port = port
        self.reached = []

    def container(self, node):
        return self._container

    def node_ip(self, node):
        return "10.0.0.16"

    def reach(self, address, port):
        self.reached.append((address, port))
        return "127.0.0.1", self.port


@pytest.fixture
def server():
    """Answers one command with a canned reply; keeps what it was sent."""
    listener = socket.create_server(("127.0.0.1", 0))
    got = []

    def serve():
        conn, _ = listener.accept()
        with conn:
            got.append(conn.recv(4096))
            conn.sendall(b"$31\r\n# Replication\r\nrole:master\r\nx:1\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], got
    thread.join(5)
    listener.close()


def test_command_asks_the_node_at_its_address(server):
    port, got = server
    stack = FakeStack("running", port)
    assert resp.command(stack, "redis1", 6379, "INFO", "replication") == "# Replication\r\nrole:master\r\nx:1"
    assert stack.reached == [("10.0.0.16", 6379)]
    assert got == [b"*2\r\n$4\r\nINFO\r\n$11\r\nreplication\r\n"]


def test_redis_info_reads_the_fields(server):
    from stack import health

    port, _ = server
    assert health.redis_info(FakeStack("running", port), "redis1") == {"role": "master", "x": "1"}


@pytest.mark.parametrize("status", ["paused", "exited"])
def test_a_node_that_does_not_run_is_said_at_once_without_connecting(status):
    stack = FakeStack(status, 1)  # nothing listens on port 1: a connection attempt would fail otherwise
    with pytest.raises(RuntimeError, match=f"container {status}"):
        resp.command(stack, "redis1", 6379, "PING")
    assert stack.reached == []
