"""mailer's broker topology, declared by the harness once every RabbitMQ node is up (the stack
file's setup step): one quorum queue, the outbox, replicated on every node."""


def declare(ctx) -> None:
    import pika

    params = pika.URLParameters(ctx.amqp_url())
    params.connection_attempts, params.retry_delay = 10, 1.0
    connection = pika.BlockingConnection(params)
    try:
        connection.channel().queue_declare("mail.outbox", durable=True, arguments={
            "x-queue-type": "quorum", "x-quorum-initial-group-size": len(ctx.nodes("rabbitmq"))})
    finally:
        connection.close()
