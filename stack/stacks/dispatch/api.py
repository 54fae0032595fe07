"""The dispatch API: `POST /messages` publishes with confirms, `POST /campaigns` stores in ZooKeeper.

202 means the broker confirmed the message (or ZooKeeper stored the campaign). A refusal the broker
made (nack, unroutable) or a broker we cannot reach is 503 with the reason; an outcome we cannot
know (no confirm in time, connection lost after the publish was written) is 504. Bad requests are
4xx and never published. `GET /health` is 503 unless the broker is usable and says how Redis and
ZooKeeper are.

On SIGTERM (a deploy) the API stops as orchestrators expect: it stops listening, answers every
request it has already accepted (each waits on its broker confirm), then closes its broker and
ZooKeeper connections and exits 0 (aiohttp's graceful shutdown, bounded by SHUTDOWN_TIMEOUT_S).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time

import aio_pika
import aiormq
from aiohttp import web
from aiormq import spec

from dispatch import broker
from dispatch.common import (CAMPAIGNS_PATH, ServiceEnv, load_env_or_exit, redis_sentinel,
                                   setup_logging)

CHANNELS = ("sms", "email", "push")
MAX_ID = 200
MAX_TO = 320
MAX_BODY = 4096
MAX_RECIPIENTS = 20000
CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

log = setup_logging(os.environ.get("SERVICE_NAME", "api"))


class BadRequest(Exception):
    pass


def _string(body: dict, field: str, limit: int) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{field} must be a non-empty string")
    if len(value.encode()) > limit:
        raise BadRequest(f"{field} is longer than {limit} bytes")
    return value


def parse_message(body: object) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object {id, channel, to, body}")
    message = {"id": _string(body, "id", MAX_ID), "channel": _string(body, "channel", 16),
               "to": _string(body, "to", MAX_TO), "body": _string(body, "body", MAX_BODY)}
    if message["channel"] not in CHANNELS:
        raise BadRequest(f"unknown channel {message['channel']!r}: one of {', '.join(CHANNELS)}")
    return message


def parse_campaign(body: object) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object {campaign_id, recipients, body}")
    cid = _string(body, "campaign_id", 128)
    if not CAMPAIGN_ID.match(cid):
        raise BadRequest("campaign_id may only hold letters, digits, '.', '_' and '-'")
    recipients = body.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        raise BadRequest("recipients must be a non-empty list of strings")
    if len(recipients) > MAX_RECIPIENTS:
        raise BadRequest(f"at most {MAX_RECIPIENTS} recipients per campaign")
    if not all(isinstance(r, str) and r and len(r.encode()) <= MAX_TO for r in recipients):
        raise BadRequest(f"every recipient must be a non-empty string of at most {MAX_TO} bytes")
    if len(set(recipients)) != len(recipients):
        raise BadRequest("recipients must be unique (each one derives one message id)")
    return {"campaign_id": cid, "recipients": recipients, "body": _string(body, "body", MAX_BODY)}


class Publisher:
    """One broker connection kept up by a background task, trying each AMQP address in turn."""

    def __init__(self, env: ServiceEnv) -> None:
        self.env = env
        self.fire_and_forget = "api-fire-and-forget" in env.switches
        self.no_recovery = "broker-no-recovery" in env.switches
        default_key = "messages" if self.fire_and_forget else broker.ROUTING_KEY  # the incident's typo
        self.routing_key = os.environ.get("DISPATCH_ROUTING_KEY", default_key)
        self.confirm_timeout = float(os.environ.get("CONFIRM_TIMEOUT_S", "5"))
        self.exchange: aio_pika.abc.AbstractExchange | None = None
        self.last_error = "not connected yet"
        self.connected_to = ""

    async def run(self) -> None:
        delay = 0.5
        while True:
            for host, port in self.env.amqp:
                try:
                    await self._serve(host, port)
                    delay = 0.5
                except Exception as exc:  # whatever broke the link, the loop must live on to reconnect
                    self.last_error = f"{host}:{port}: {exc!r}"
                    log.warning("broker %s:%d: %r", host, port, exc)
                finally:
                    self.exchange = None
                if self.no_recovery and self.connected_to:
                    log.error("broker connection lost, not reconnecting (broker-no-recovery)")
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _serve(self, host: str, port: int) -> None:
        connection = await aio_pika.connect(host=host, port=port, login="guest", password="guest",
                                            heartbeat=0 if self.no_recovery else 10, timeout=5)
        closed = asyncio.Event()
        try:
            connection.close_callbacks.add(lambda *_: closed.set())
            channel = await connection.channel(publisher_confirms=not self.fire_and_forget,
                                               on_return_raises=not self.fire_and_forget)
            channel.close_callbacks.add(lambda *_: closed.set())
            self.exchange = await channel.get_exchange(broker.EXCHANGE, ensure=True)
            self.connected_to, self.last_error = f"{host}:{port}", ""
            log.info("publishing to %s through %s:%d", broker.EXCHANGE, host, port)
            await closed.wait()
            self.last_error = f"{host}:{port}: connection closed"
        finally:
            self.exchange = None
            if not connection.is_closed:
                await asyncio.wait_for(connection.close(), 5)

    async def publish(self, message: dict) -> tuple[int, str]:
        """(HTTP status, reason) for one message."""
        exchange = self.exchange
        if exchange is None:
            return 503, f"broker unavailable ({self.last_error})"
        amqp_message = aio_pika.Message(
            json.dumps(message).encode(), message_id=message["id"], content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT, timestamp=int(time.time()))
        if self.fire_and_forget:
            # Incident switch api-fire-and-forget: no confirm, no mandatory, whatever the routing.
            try:
                await exchange.publish(amqp_message, self.routing_key, mandatory=False)
            except Exception as exc:  # the incident's code logged and answered 202 all the same
                log.warning("publish failed: %r", exc)
            return 202, "accepted"
        try:
            confirmation = await asyncio.wait_for(
                exchange.publish(amqp_message, self.routing_key, mandatory=True), self.confirm_timeout)
        except aio_pika.exceptions.PublishError:
            return 503, f"unroutable: no queue bound to {broker.EXCHANGE}/{self.routing_key}"
        except aiormq.exceptions.DeliveryError:
            # a nack (say, a queue at its length limit with reject-publish): the broker did not take it
            return 503, "broker nacked the message"
        except asyncio.TimeoutError:
            return 504, f"no broker confirm within {self.confirm_timeout:g}s: outcome unknown"
        except aiormq.exceptions.ChannelInvalidStateError as exc:
            return 503, f"broker channel closed before publishing: {exc}"
        except (aiormq.exceptions.AMQPError, aio_pika.exceptions.AMQPException, OSError) as exc:
            return 504, f"broker connection lost during publish: outcome unknown ({exc!r})"
        if isinstance(confirmation, spec.Basic.Ack):
            return 202, "confirmed"
        if isinstance(confirmation, spec.Basic.Nack):
            return 503, "broker nacked the message"
        return 503, f"broker did not take the message ({type(confirmation).__name__})"


class CampaignStore:
    """Campaigns as ZooKeeper nodes /dispatch/campaigns/<id> = {"recipients", "body"}."""

    def __init__(self, env: ServiceEnv) -> None:
        from kazoo.client import KazooClient

        self.zk = KazooClient(hosts=env.zk_hosts(), timeout=10.0, connection_retry={"max_tries": -1})
        self.zk.start_async()

    @property
    def connected(self) -> bool:
        return self.zk.connected

    def close(self) -> None:
        self.zk.stop()
        self.zk.close()

    def store(self, campaign: dict) -> tuple[int, str]:
        from kazoo.exceptions import KazooException, NodeExistsError

        if not self.zk.connected:
            return 503, "ZooKeeper unavailable"
        path = f"{CAMPAIGNS_PATH}/{campaign['campaign_id']}"
        data = json.dumps({"recipients": campaign["recipients"], "body": campaign["body"]},
                          separators=(",", ":")).encode()
        try:
            self.zk.create(path, data, makepath=True)
            return 202, "stored"
        except NodeExistsError:
            stored, _ = self.zk.get(path)
            if stored == data:
                return 202, "already stored"
            return 409, f"campaign {campaign['campaign_id']} exists with other recipients or body"
        except KazooException as exc:
            # A create whose answer was lost may have happened: the client can resubmit (idempotent).
            return 504, f"ZooKeeper did not answer: outcome unknown ({exc!r})"


def make_app(env: ServiceEnv) -> web.Application:
    publisher = Publisher(env)
    app = web.Application(client_max_size=1024 * 1024)
    state: dict = {}

    async def startup(app: web.Application) -> None:
        state["publisher"] = asyncio.create_task(publisher.run())
        state["campaigns"] = CampaignStore(env)
        state["redis"] = redis_sentinel(env, timeout=0.5)

    async def body_of(request: web.Request) -> object:
        try:
            return await request.json()
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("body is not valid JSON") from None

    async def post_message(request: web.Request) -> web.Response:
        try:
            message = parse_message(await body_of(request))
        except BadRequest as exc:
            return web.json_response({"error": str(exc)}, status=400)
        status, reason = await publisher.publish(message)
        body = {"id": message["id"], "status" if status == 202 else "error": reason}
        return web.json_response(body, status=status)

    async def post_campaign(request: web.Request) -> web.Response:
        try:
            campaign = parse_campaign(await body_of(request))
        except BadRequest as exc:
            return web.json_response({"error": str(exc)}, status=400)
        store: CampaignStore = state["campaigns"]
        status, reason = await asyncio.get_running_loop().run_in_executor(None, store.store, campaign)
        body = {"campaign_id": campaign["campaign_id"], "recipients": len(campaign["recipients"])}
        body["status" if status == 202 else "error"] = reason
        return web.json_response(body, status=status)

    def redis_ok() -> str:
        try:
            return "ok" if state["redis"].ping() else "no answer"
        except Exception as exc:  # any failure is the fact to report
            return repr(exc)[:200]

    async def health(request: web.Request) -> web.Response:
        redis_state = await asyncio.get_running_loop().run_in_executor(None, redis_ok)
        usable = publisher.exchange is not None
        facts = {"broker": "ok" if usable else publisher.last_error, "broker_node": publisher.connected_to,
                 "zookeeper": "ok" if state["campaigns"].connected else "disconnected", "redis": redis_state}
        if publisher.no_recovery:
            return web.json_response({"ok": True, **facts})  # the incident: health never looks
        return web.json_response({"ok": usable, **facts}, status=200 if usable else 503)

    async def too_large(request: web.Request, handler):
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge as exc:
            return web.json_response({"error": f"request body too large: {exc.text}"}, status=413)

    app.middlewares.append(web.middleware(too_large))
    async def cleanup(app: web.Application) -> None:
        # Runs after the in-flight requests were answered: only now may the broker link go.
        state["publisher"].cancel()
        await asyncio.gather(state["publisher"], return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, state["campaigns"].close)
        log.info("stopped cleanly")

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.add_routes([web.post("/messages", post_message), web.post("/campaigns", post_campaign),
                    web.get("/health", health)])
    return app


def main() -> None:
    env = load_env_or_exit("api", log)
    web.run_app(make_app(env), host="0.0.0.0", port=env.http_port, access_log=None, print=None,
                shutdown_timeout=float(os.environ.get("SHUTDOWN_TIMEOUT_S", "8")))


if __name__ == "__main__":
    main()
