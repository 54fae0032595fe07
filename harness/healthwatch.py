"""What each app service says of its own health during a run, recorded as plain ops for the `health`
checker: the readiness check its stack file declares (`healthcheck`: http, tcp or exec), asked once a
second from the host, as an orchestrator or a load balancer would ask it.

    health op: process = node, f = "health", type ok (healthy) | fail (unhealthy) | info (no answer),
               value = {"role": role, "detail": "GET /health: 200 ...", "serves": "requests"?}
    backlog op: process = "broker", f = "backlog", type ok | info (the broker did not answer),
               value = {"messages": ready messages in all, "queues": {queue: ready}}

`serves: requests` marks the node the workload sends to (the stack file's x-chaos.client). The backlog
is the ready messages of the app's queues (x-chaos.queues), read over AMQP from the host once a second:
what the consumers have waiting for them.

The recording provider is the ground truth, not a service under test: it is not asked. A service whose
healthcheck is a log line, or that has none, says nothing worth recording (a log line is written once).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.history import HistoryWriter
    from stack.stack import Stack

ASKED = ("http", "tcp", "exec")


def watched_nodes(stack: "Stack") -> list[str]:
    app = stack.topology.app
    provider = app.provider.node if app else None
    return [n.name for n in stack.topology.nodes
            if n.ready is not None and n.ready.how in ASKED and n.name != provider]


class HealthWatcher:
    def __init__(self, stack: "Stack", writer: "HistoryWriter", interval_s: float = 1.0) -> None:
        self.stack, self.writer, self.interval_s = stack, writer, interval_s
        self.nodes = watched_nodes(stack)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "HealthWatcher":
        # one thread per node: a node that does not answer must not delay the others' probes
        for node in self.nodes:
            thread = threading.Thread(target=self._watch, args=(node,), name=f"health-{node}", daemon=True)
            thread.start()
            self._threads.append(thread)
        app = self.stack.topology.app
        if app is not None and app.queues and self.stack.topology.names("rabbitmq"):
            thread = threading.Thread(target=self._backlog, args=(tuple(app.queues),), name="backlog", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _backlog(self, queues: tuple[str, ...]) -> None:
        import pika

        connection = None
        while not self._stop.is_set():
            try:
                if connection is None or not connection.is_open:
                    params = pika.URLParameters(self.stack.amqp_url())
                    params.socket_timeout = params.blocked_connection_timeout = 2
                    params.connection_attempts = 1
                    connection = pika.BlockingConnection(params)
                channel = connection.channel()
                depth = {q: channel.queue_declare(q, passive=True).method.message_count for q in queues}
                channel.close()
                self.writer.record("broker", "ok", "backlog", {"messages": sum(depth.values()), "queues": depth})
            except Exception as exc:  # the broker, or the queue, is not answering: not known
                self.writer.record("broker", "info", "backlog", {"error": f"{type(exc).__name__}: {exc}"[:200]})
                try:
                    if connection is not None and connection.is_open:
                        connection.close()
                except Exception:
                    pass
                connection = None
            self._stop.wait(self.interval_s)
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:
                pass

    def _watch(self, node: str) -> None:
        from stack.kinds.service import Service

        role = self.stack.topology.node(node).role
        app = self.stack.topology.app
        mark = {"serves": "requests"} if app is not None and app.client.node == node else {}
        kind = Service()
        while not self._stop.is_set():
            try:
                healthy, detail = kind.serving(self.stack, node)
                outcome = "ok" if healthy else "fail"
            except Exception as exc:  # refused, timed out, container gone: no answer
                outcome, detail = "info", f"{type(exc).__name__}: {exc}"[:200]
            if self._stop.is_set():
                break
            self.writer.record(node, outcome, "health", {"role": role, "detail": str(detail)[:200], **mark})
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()

    def __enter__(self) -> "HealthWatcher":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
