"""Replay parked messages: move them from `dispatch.dead` back onto `dispatch`, as an operator would
after an incident. Each message is re-published with confirms (attempt count reset) before the
parked copy is acked, so a crash mid-way duplicates at worst (the workers de-duplicate) and never
loses one.

    python3 -m dispatch.replay [--limit N] [--amqp host:port[,host:port]]

Prints one JSON line: {"replayed": n, "left": m}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import pika
import pika.exceptions

from dispatch import broker
from dispatch.common import addresses


def replay(amqp: list[tuple[str, int]], limit: int | None = None) -> dict[str, int]:
    params = [pika.ConnectionParameters(host=h, port=p, heartbeat=10, socket_timeout=5,
                                        connection_attempts=2, retry_delay=1) for h, p in amqp]
    connection = pika.BlockingConnection(params)
    replayed = 0
    try:
        ch = connection.channel()
        ch.confirm_delivery()
        while limit is None or replayed < limit:
            method, props, body = ch.basic_get(broker.DEAD_QUEUE, auto_ack=False)
            if method is None:
                break
            headers = {k: v for k, v in (props.headers or {}).items()
                       if not k.startswith("x-death") and k not in ("x-attempt", "x-last-error")}
            headers["x-replayed"] = int((props.headers or {}).get("x-replayed", 0)) + 1
            properties = pika.BasicProperties(message_id=props.message_id, delivery_mode=2,
                                              content_type=props.content_type, headers=headers)
            try:
                ch.basic_publish(broker.EXCHANGE, broker.ROUTING_KEY, body, properties, mandatory=True)
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                ch.basic_nack(method.delivery_tag, requeue=True)
                raise SystemExit(f"replay stopped: {props.message_id} not taken by {broker.EXCHANGE}: {exc!r}")
            ch.basic_ack(method.delivery_tag)
            replayed += 1
        left = ch.queue_declare(broker.DEAD_QUEUE, passive=True).method.message_count
    finally:
        if connection.is_open:
            connection.close()
    return {"replayed": replayed, "left": left}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m dispatch.replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="replay at most N messages")
    parser.add_argument("--amqp", default=os.environ.get("AMQP_ADDRS", ""),
                        help="host:port[,host:port] of the broker (default: $AMQP_ADDRS)")
    args = parser.parse_args(argv)
    amqp = addresses(args.amqp)
    if not amqp:
        print("no broker address: pass --amqp host:port or set AMQP_ADDRS", file=sys.stderr)
        return 2
    try:
        result = replay(amqp, args.limit)
    except pika.exceptions.AMQPError as exc:
        print(f"replay failed: broker: {exc!r}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
