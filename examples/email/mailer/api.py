"""mailer's API: `POST /v1/emails {"to", "subject", "text"}` answers 201 with the email's own id once
the broker has confirmed the message to the outbox queue; 400 for a bad request, 503 when the broker
cannot take it. `GET /healthz` answers 200 while the broker connection is open.

Environment: AMQP_URLS (comma-separated host:port list), PORT (8000).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid

import aio_pika
from aiohttp import web

OUTBOX = "mail.outbox"
log = logging.getLogger("mailer.api")


class Broker:
    """One robust connection and a confirming channel, over the listed brokers in turn."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None

    async def connect(self) -> None:
        while self.connection is None:
            for url in self.urls:
                try:
                    self.connection = await aio_pika.connect_robust(url, timeout=5, heartbeat=5)
                    self.channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
                    return
                except (OSError, aio_pika.exceptions.AMQPError, asyncio.TimeoutError) as exc:
                    log.warning("broker %s: %s", url, exc)
            await asyncio.sleep(1)

    async def publish(self, body: bytes, email_id: str) -> None:
        await self.channel.default_exchange.publish(
            aio_pika.Message(body, message_id=email_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=OUTBOX, mandatory=True, timeout=5)

    @property
    def up(self) -> bool:
        return self.connection is not None and not self.connection.is_closed


def bad(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)


def make_app(broker: Broker) -> web.Application:
    async def create_email(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return bad("a JSON object is expected")
        if not isinstance(body, dict):
            return bad("a JSON object is expected")
        fields = {k: body.get(k) for k in ("to", "subject", "text")}
        if not all(isinstance(v, str) and v for v in fields.values()) or "@" not in fields["to"]:
            return bad("to (an address), subject and text are required strings")
        email_id = uuid.uuid4().hex
        try:
            await broker.publish(json.dumps({"email_id": email_id, **fields}).encode(), email_id)
        except Exception as exc:  # nack, unroutable, timeout, connection lost: the caller may retry
            log.warning("publish %s failed: %r", email_id, exc)
            return web.json_response({"error": "try again later"}, status=503)
        return web.json_response({"email_id": email_id}, status=201)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"broker": broker.up}, status=200 if broker.up else 503)

    app = web.Application(client_max_size=256 * 1024)
    app.add_routes([web.post("/v1/emails", create_email), web.get("/healthz", healthz)])
    return app


def amqp_urls() -> list[str]:
    return [f"amqp://guest:guest@{hostport}/" for hostport in os.environ["AMQP_URLS"].split(",") if hostport]


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    broker = Broker(amqp_urls())
    await broker.connect()
    runner = web.AppRunner(make_app(broker), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", int(os.environ.get("PORT", "8000"))).start()
    log.info("listening")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
