"""RabbitMQ nodes: ready when every node of the cluster runs (cluster_status); serving on an AMQP handshake."""

from __future__ import annotations

from stack import health
from stack.kinds.base import Kind, register_kind


@register_kind
class RabbitMQ(Kind):
    name = "rabbitmq"
    group = True

    def serving(self, stack, node: str) -> tuple[bool, str]:
        return health._amqp_listening(stack, node), "AMQP handshake on 5672"

    def checks(self, stack, nodes):
        names = [n.name for n in nodes]

        def probe(stack) -> tuple[bool, str]:
            # The CLI costs an Erlang VM start per call: only ask it once every node speaks AMQP.
            silent = [n for n in names if not health._amqp_listening(stack, n)]
            if silent:
                return False, f"AMQP not answering yet on {silent}"
            status = health.rabbitmq_cluster_status(stack, names[0])
            running = sorted(status.get("running_nodes", []))
            return running == sorted(f"rabbit@{n}" for n in names), f"running nodes {running}"

        return [health.Check(f"RabbitMQ cluster_status on {names[0]} shows {names} running", names[0], probe,
                             tuple(names))]

    def settled_checks(self, stack, nodes):
        """Every node still speaks AMQP. Membership changes only when something disturbs the cluster
        (a partition, a kill, a pause: all of them send the reset down its full path), and a node that
        pause_minority paused stops listening; the CLI's cluster_status costs an Erlang VM start (about
        1 s of CPU), most of a reset after a clean run."""
        names = [n.name for n in nodes]

        def probe(stack) -> tuple[bool, str]:
            silent = [n for n in names if not health._amqp_listening(stack, n)]
            return not silent, f"AMQP not answering on {silent}" if silent else "AMQP answers on every node"

        return [health.Check(f"RabbitMQ {names} answer AMQP (nothing disturbed them)", names[0], probe,
                             tuple(names), interval_s=0.1)]
