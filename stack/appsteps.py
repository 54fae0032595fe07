"""Running the app's declared steps (`x-chaos.setup`, `x-chaos.reset.steps`) against a running stack.

Each step kind asks the kind of node it touches: queues are purged through the first RabbitMQ node's
published port, Redis is flushed on the primary the Sentinels name, `exec` runs the app's own command
in its own node, `http` calls a published port, `python` calls the app's function with an `AppContext`.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from harness.errors import HarnessError
from stack.app import Step

if TYPE_CHECKING:
    from stack.stack import Stack


@dataclass(frozen=True)
class AppContext:
    """What a `python` step may use: the stack's nodes and how the host reaches them."""

    stack: "Stack"

    def nodes(self, role: str) -> list[str]:
        return self.stack.topology.names(role)

    def amqp_url(self) -> str:
        return self.stack.amqp_url()

    def host_port(self, node: str, port: int) -> int:
        return self.stack.host_port(node, port)

    def address(self, node: str, port: int) -> tuple[str, int]:
        """Where this process connects to reach a node's `port`, published or not: the node's address on
        the run network (or, on a remote Docker host, a local end of the ssh tunnel to it)."""
        return self.stack.reach(self.stack.node_ip(node), port)

    def exec(self, node: str, command: list[str], timeout: float = 30.0) -> tuple[int, str]:
        return self.stack.exec(node, command, timeout=timeout)


def run_steps(stack: "Stack", steps: tuple[Step, ...], base_dir: str,
              progress: Callable[[str], None] | None = None) -> None:
    for step in steps:
        if progress:
            progress(f"[app] {step.kind} ({step.where})")
        try:
            RUNNERS[step.kind](stack, step.args, base_dir)
        except HarnessError as exc:
            raise HarnessError(f"{step.where}: {step.kind} step failed: {exc}", detail=exc.detail) from None


def _amqp_purge(stack: "Stack", queues: tuple[str, ...], base_dir: str) -> None:
    import pika

    params = pika.URLParameters(stack.amqp_url())
    params.socket_timeout = 10
    try:
        connection = pika.BlockingConnection(params)
    except pika.exceptions.AMQPError as exc:
        raise HarnessError(f"cannot reach RabbitMQ: {exc!r}") from None
    try:
        channel = connection.channel()
        for queue in queues:
            try:
                channel.queue_purge(queue)
            except pika.exceptions.ChannelClosedByBroker as exc:
                raise HarnessError(f"queue {queue!r}: {exc.reply_text}") from None
    finally:
        if connection.is_open:
            connection.close()


def _redis_flush(stack: "Stack", _args, base_dir: str) -> None:
    from stack import resp
    from stack.kinds.redis import primary
    from stack.topology import REDIS_PORT

    master = primary(stack)
    try:
        out = resp.command(stack, master, REDIS_PORT, "FLUSHALL", timeout=30)
    except (OSError, RuntimeError) as exc:
        raise HarnessError(f"{master}: FLUSHALL failed: {exc}") from None
    if out != "OK":
        raise HarnessError(f"{master}: FLUSHALL failed: {out!r}")


def _exec(stack: "Stack", args: dict, base_dir: str) -> None:
    code, out = stack.exec(args["node"], list(args["command"]), timeout=args["timeout"])
    if code != 0:
        raise HarnessError(f"{args['node']}: {' '.join(args['command'])} exited {code}: {out.strip()[-300:]}")


def _http(stack: "Stack", args: dict, base_dir: str) -> None:
    import requests

    url = f"http://127.0.0.1:{stack.host_port(args['node'], args['port'])}{args['path']}"
    try:
        response = requests.request(args["method"], url, timeout=10)
    except requests.RequestException as exc:
        raise HarnessError(f"{args['method']} {url}: {exc}") from None
    if response.status_code >= 300:
        raise HarnessError(f"{args['node']}: {args['method']} {args['path']} answered {response.status_code}")


def load_attribute(target: str, base_dir: str, what: str = "attribute") -> object:
    """`module:name`'s value, the module looked up beside the stack file first, then on sys.path. A
    module that fails while it is imported (a testcontainers definition asks Docker for its API version
    when it is made) is one line too, not a traceback."""
    module_name, _, name = target.partition(":")
    added = str(Path(base_dir).resolve())
    sys.path.insert(0, added)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HarnessError(f"cannot import {module_name!r}: {exc}") from None
    except Exception as exc:
        raise HarnessError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    finally:
        sys.path.remove(added)
    if not hasattr(module, name):
        raise HarnessError(f"{module_name!r} has no {what} {name!r}")
    return getattr(module, name)


def load_callable(target: str, base_dir: str) -> Callable:
    """`module:function`, looked up as `load_attribute` does."""
    module_name, _, name = target.partition(":")
    function = load_attribute(target, base_dir, "function")
    if not callable(function):
        raise HarnessError(f"{module_name!r} has no function {name!r}")
    return function


def _python(stack: "Stack", target: str, base_dir: str) -> None:
    """The app's own function; what it raises is one line, its traceback the error's detail (a reset
    step that cannot reach ZooKeeper is a state of the stack, not a bug of the harness)."""
    function = load_callable(target, base_dir)
    try:
        function(AppContext(stack))
    except HarnessError:
        raise
    except Exception as exc:
        import traceback

        raise HarnessError(f"{target} raised {type(exc).__name__}: {exc}", detail=traceback.format_exc()) from None


RUNNERS = {"amqp_purge": _amqp_purge, "redis_flush": _redis_flush, "exec": _exec, "http": _http,
           "python": _python}
