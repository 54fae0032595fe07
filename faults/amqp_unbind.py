"""`amqp-unbind`: remove a binding from a RabbitMQ exchange to a queue, as a misconfigured deploy of the
broker's topology does; heal binds it again.

With the binding gone, messages published with its routing key are unroutable: the exchange drops them
and a publisher that uses neither `mandatory` nor an alternate exchange still gets its confirm (the
2xx-while-discarding incident, with the broker's topology at fault). The binding is read first with
`rabbitmqctl list_bindings` (so its arguments are kept), removed and restored over AMQP from the host.
An undo record (`faults.journal`) lets a sweep bind it again if the runner dies.
"""

from __future__ import annotations

import json

from faults import journal
from faults.base import Effect, Fault, Param, register
from faults.nodes import status
from faults.roles import app_queue
from harness.errors import HarnessError


def bind(url: str, exchange: str, queue: str, routing_key: str, arguments: dict | None, unbind: bool) -> None:
    import pika

    params = pika.URLParameters(url)
    params.socket_timeout = 10
    try:
        connection = pika.BlockingConnection(params)
    except pika.exceptions.AMQPError as exc:
        raise HarnessError(f"amqp-unbind: cannot reach RabbitMQ: {exc!r}") from None
    try:
        channel = connection.channel()
        verb = channel.queue_unbind if unbind else channel.queue_bind
        verb(queue=queue, exchange=exchange, routing_key=routing_key, arguments=arguments or None)
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise HarnessError(f"amqp-unbind: {'unbind' if unbind else 'bind'} {exchange} -> {queue}: {exc.reply_text}") from None
    finally:
        if connection.is_open:
            connection.close()


@register
class AmqpUnbind(Fault):
    name = "amqp-unbind"
    summary = "remove an exchange-to-queue binding (its routing key's messages become unroutable); heal binds it again"
    params = (
        Param("queue", str, None, help="the queue the binding leads to (default: the first of the stack file's "
                                       "x-chaos.queues)"),
        Param("exchange", str, None, help="the exchange it leaves (default: the queue's first binding's)"),
        Param("routing_key", str, None, help="its routing key (default: the first binding's)"),
    )
    targets_kind = "none"
    needs_targets = False
    short = False  # the ci profile keeps the faults the hardened reference app is shown to survive in a short run

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.arguments: dict | None = None
        self.record = None

    @classmethod
    def check_topology(cls, params, topology, where: str) -> None:
        if not topology.names("rabbitmq"):
            raise HarnessError(f"{where}: amqp-unbind needs a RabbitMQ node; the {topology.name} stack has none")
        cls.queue_of(params, topology, where)

    @classmethod
    def queue_of(cls, params, topology, where: str) -> str:
        return app_queue(cls.name, params, topology, where)

    def _bindings(self) -> list[dict]:
        stack = self.ctx.stack
        node = next((n for n in stack.topology.names("rabbitmq") if status(stack, n) == "running"), None)
        if node is None:
            raise HarnessError("amqp-unbind: no RabbitMQ node is running")
        code, out = stack.exec(node, ["rabbitmqctl", "-q", "list_bindings", "source_name", "destination_name",
                                      "destination_kind", "routing_key", "arguments", "--formatter", "json"],
                               user="rabbitmq", timeout=60)
        if code != 0 or "[" not in out:
            raise HarnessError(f"amqp-unbind: list_bindings on {node} failed: {out.strip()[-200:]}")
        queue = self.queue_of(self.p, stack.topology, f"fault {self.name!r}")
        # the default exchange's implicit bindings cannot be removed: only named exchanges count
        return sorted((b for b in json.loads(out[out.index("["):])
                       if b.get("destination_kind") == "queue" and b.get("destination_name") == queue
                       and b.get("source_name") and self.p["exchange"] in (None, b.get("source_name"))
                       and self.p["routing_key"] in (None, b.get("routing_key"))),
                      key=lambda b: (b["source_name"], b.get("routing_key", "")))

    def inject(self) -> Effect:
        stack = self.ctx.stack
        found = self._bindings()
        if not found:
            raise HarnessError(f"amqp-unbind: no binding to queue {self.queue_of(self.p, stack.topology, '')!r}"
                               + (f" from {self.p['exchange']!r}" if self.p["exchange"] else "")
                               + (f" with routing key {self.p['routing_key']!r}" if self.p["routing_key"] is not None else ""))
        chosen = found[0]
        self.p = {**self.p, "exchange": chosen["source_name"], "queue": chosen["destination_name"],
                  "routing_key": chosen.get("routing_key", "")}
        raw = chosen.get("arguments") or []
        self.arguments = dict(raw) if isinstance(raw, dict) else {a[0]: a[1] for a in raw if len(a) == 2} or None
        rabbit = stack.topology.names("rabbitmq")[0]
        self.record = journal.record(self.ctx, rabbit, self.name, {"amqp_bind": {
            "port": 5672, "exchange": self.p["exchange"], "queue": self.p["queue"],
            "routing_key": self.p["routing_key"], "arguments": self.arguments}})
        bind(stack.amqp_url(), self.p["exchange"], self.p["queue"], self.p["routing_key"], self.arguments, unbind=True)
        if self._bindings():
            raise HarnessError("amqp-unbind: the binding is still listed after queue.unbind")
        # the queue cut off is what it hit (as a policy's matched queues are): with no target the runner
        # counted it as a step that took no effect
        return Effect((self.p["queue"],), {"exchange": self.p["exchange"], "queue": self.p["queue"],
                           "routing_key": self.p["routing_key"], "arguments": self.arguments or {}})

    def heal(self) -> Effect:
        if self.record is None:
            return Effect(())
        bind(self.ctx.stack.amqp_url(), self.p["exchange"], self.p["queue"], self.p["routing_key"], self.arguments,
             unbind=False)
        if not self._bindings():
            raise HarnessError("amqp-unbind heal: the binding is not listed after queue.bind")
        journal.done(self.record)
        self.record = None
        return Effect((), {"bound": True})
