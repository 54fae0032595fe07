"""The broker's topology: one direct exchange, a quorum work queue, a delayed retry queue, a dead-letter queue.

Declared once by the harness after every RabbitMQ node is online (quorum queues get their replica
count when declared); the services declare nothing, they only check that what they use exists.
"""

from __future__ import annotations

EXCHANGE = "dispatch"
ROUTING_KEY = "message"
WORK_QUEUE = "dispatch.messages"
RETRY_EXCHANGE = "dispatch.retry"
RETRY_QUEUE = "dispatch.retry"
DEAD_EXCHANGE = "dispatch.dead"
DEAD_QUEUE = "dispatch.dead"
RETRY_DELAY_MS = 2000
QUEUES = (WORK_QUEUE, RETRY_QUEUE, DEAD_QUEUE)


def declare(url: str, replicas: int) -> None:
    import pika

    params = pika.URLParameters(url)
    params.connection_attempts = 10
    params.retry_delay = 1.0
    connection = pika.BlockingConnection(params)
    try:
        ch = connection.channel()
        quorum = {"x-queue-type": "quorum", "x-quorum-initial-group-size": replicas}
        for exchange in (EXCHANGE, RETRY_EXCHANGE, DEAD_EXCHANGE):
            ch.exchange_declare(exchange, exchange_type="direct", durable=True)
        ch.queue_declare(WORK_QUEUE, durable=True, arguments=dict(quorum))
        ch.queue_bind(WORK_QUEUE, EXCHANGE, ROUTING_KEY)
        # A failed delivery waits here, then its TTL dead-letters it back onto the work queue.
        ch.queue_declare(RETRY_QUEUE, durable=True, arguments={
            **quorum, "x-message-ttl": RETRY_DELAY_MS,
            "x-dead-letter-exchange": EXCHANGE, "x-dead-letter-routing-key": ROUTING_KEY})
        ch.queue_bind(RETRY_QUEUE, RETRY_EXCHANGE, ROUTING_KEY)
        ch.queue_declare(DEAD_QUEUE, durable=True, arguments=dict(quorum))
        ch.queue_bind(DEAD_QUEUE, DEAD_EXCHANGE, ROUTING_KEY)
    finally:
        connection.close()


def setup(ctx) -> None:
    """The stack file's setup step (`python: dispatch.broker:setup`): declare once every broker
    node is online, with one quorum replica per node."""
    rabbits = ctx.nodes("rabbitmq")
    if rabbits:
        declare(ctx.amqp_url(), replicas=len(rabbits))
