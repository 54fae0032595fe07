"""One Redis (or Sentinel) command, asked from this process at a node's address on the run network.

The probes and reset steps used to run `redis-cli` through `docker exec`: 60-130 ms each on a busy
daemon, most of a settled reset's health check. This asks the node straight, as the ZooKeeper probe does
(`health.zk_four_letter`), and needs nothing in the node's image. A node whose container does not run is
said at once, as an exec into it would be: a paused node accepts the connection in its kernel and then
never answers.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from stack.stack import Stack

Reply = Union[str, int, None, list]


class RespError(RuntimeError):
    """The server answered with an error (`-ERR ...`)."""


def encode(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def read_reply(stream) -> Reply:
    """One reply from a binary file-like `stream`; bulk strings come back decoded, an error raises."""
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed before a whole reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode(errors="replace")
    if kind == b"-":
        raise RespError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = stream.read(size + 2)
        if len(data) != size + 2:
            raise ConnectionError("connection closed inside a bulk reply")
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [read_reply(stream) for _ in range(count)]
    raise ConnectionError(f"not a RESP reply: {line[:40]!r}")


def command(stack: "Stack", node: str, port: int, *args: str, timeout: float = 5.0) -> Reply:
    container = stack.container(node)
    container.reload()
    if container.status != "running":
        raise RuntimeError(f"container {container.status}")
    with socket.create_connection(stack.reach(stack.node_ip(node), port), timeout=timeout) as sock:
        sock.sendall(encode(*args))
        with sock.makefile("rb") as stream:
            return read_reply(stream)
