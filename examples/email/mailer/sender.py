"""mailer's sender: takes emails off the outbox queue and sends each over SMTP, once.

For each email: if Redis marks it sent, it is settled; else the recipient's hourly counter is
incremented (a rate limit the product asks for), the mail goes to the SMTP relay, Redis marks it sent
for a day, and the message is acknowledged. A Redis or broker error is retried (the Redis primary
found again through Sentinel); an SMTP 4xx puts the email back on the queue; the connection to the
broker is opened again whenever it drops. `GET /healthz` answers 200 while it is connected and
consuming.

Environment: AMQP_URLS, REDIS_SENTINELS (host:port lists), REDIS_ROUTES (real=reachable address
pairs: Sentinel names the primary by its real address, the relay and Redis are reached through the
harness's proxy), SMTP_RELAY (host:port), PORT (8000), MAILER_BUGS (comma-separated; see BUGS).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import smtplib
import socket
import threading
import time
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pika
import redis
from redis.sentinel import Sentinel, SentinelConnectionPool

OUTBOX = "mail.outbox"
MASTER = "mymaster"
SENT_TTL_S = 24 * 3600
RETRY_FOR_S = 30.0
# Bugs that can be switched on, for the chaos harness's incident scenarios (each is a real mistake):
BUGS = {
    "stale-redis": "the Redis primary is found once at start, and an email whose Redis write fails is "
                   "acknowledged unsent",
    "no-reconnect": "no AMQP heartbeat and no reconnect: after a dropped connection the sender stops "
                    "consuming, while /healthz still answers 200",
}
log = logging.getLogger("mailer.sender")


def pairs(value: str) -> list[tuple[str, int]]:
    out = []
    for item in value.split(","):
        host, _, port = item.strip().rpartition(":")
        if host:
            out.append((host, int(port)))
    return out


class Redis:
    """The Redis primary named by Sentinel, reached through its route."""

    def __init__(self, stale: bool) -> None:
        routes = {}
        for item in os.environ.get("REDIS_ROUTES", "").split(","):
            if "=" in item:
                real, reach = item.split("=", 1)
                routes[pairs(real)[0]] = pairs(reach)[0]

        def via(address):
            return routes.get((address[0], int(address[1])), address)

        class Routed(SentinelConnectionPool):
            def get_master_address(self):
                return via(super().get_master_address())

        options = dict(socket_timeout=2, socket_connect_timeout=2)
        sentinel = Sentinel(pairs(os.environ["REDIS_SENTINELS"]), sentinel_kwargs=options, **options)
        if stale:
            host, port = via(sentinel.discover_master(MASTER))
            self.client = redis.Redis(host=host, port=port, **options)
        else:
            self.client = sentinel.master_for(MASTER, connection_pool_class=Routed, **options)


class Sender:
    def __init__(self) -> None:
        self.bugs = {b for b in os.environ.get("MAILER_BUGS", "").split(",") if b}
        unknown = self.bugs - set(BUGS)
        if unknown:
            raise SystemExit(f"MAILER_BUGS: unknown {sorted(unknown)} (known: {sorted(BUGS)})")
        self.redis = Redis("stale-redis" in self.bugs).client
        self.relay = pairs(os.environ["SMTP_RELAY"])[0]
        self.urls = [pika.URLParameters(f"amqp://guest:guest@{h}:{p}/") for h, p in pairs(os.environ["AMQP_URLS"])]
        for params in self.urls:
            params.heartbeat = 0 if "no-reconnect" in self.bugs else 10
            params.blocked_connection_timeout = 30
            params.socket_timeout = 5
        self.connection: pika.BlockingConnection | None = None
        self.consuming = False
        self.stopping = threading.Event()

    # ------------------------------------------------------------------ one email
    def retrying(self, what: str, call):
        """`call()` until it works or RETRY_FOR_S passes (then the error goes up); pika keeps its
        heartbeats going meanwhile."""
        deadline = time.monotonic() + RETRY_FOR_S
        while True:
            try:
                return call()
            except redis.RedisError as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("%s: %r; retrying", what, exc)
                self.connection.sleep(0.5)

    def send(self, email: dict) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "noreply@mailer.example", email["to"], email["subject"]
        message["Message-ID"] = f"<{email['email_id']}@mailer.example>"
        message.set_content(email["text"])
        # EHLO with the host's name (smtplib would send an address literal here): the relay logs who sent
        with smtplib.SMTP(*self.relay, local_hostname=socket.gethostname(), timeout=10) as smtp:
            smtp.send_message(message)

    def handle(self, channel, method, _properties, body: bytes) -> None:
        email = json.loads(body)
        sent_key, rate_key = f"mail:sent:{email['email_id']}", f"mail:rate:{email['to']}"
        try:
            if self.retrying("read", lambda: self.redis.get(sent_key)):
                channel.basic_ack(method.delivery_tag)  # sent before; the broker gave it again
                return
            if "stale-redis" in self.bugs:
                try:
                    self.redis.incr(rate_key)
                except redis.RedisError as exc:
                    log.error("rate counter: %r; dropping %s", exc, email["email_id"])
                    channel.basic_ack(method.delivery_tag)
                    return
            else:
                self.retrying("rate counter", lambda: self.redis.incr(rate_key))
            self.retrying("rate expiry", lambda: self.redis.expire(rate_key, 3600))
            self.send(email)
            self.retrying("mark sent", lambda: self.redis.set(sent_key, "1", ex=SENT_TTL_S))
            channel.basic_ack(method.delivery_tag)
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                log.warning("relay says %s; %s goes back to the queue", exc.smtp_code, email["email_id"])
                self.connection.sleep(1.0)
                channel.basic_nack(method.delivery_tag, requeue=True)
            else:
                log.error("relay refuses %s for good: %s", email["email_id"], exc)
                channel.basic_ack(method.delivery_tag)
        except (OSError, smtplib.SMTPException, redis.RedisError) as exc:
            log.warning("%s goes back to the queue: %r", email["email_id"], exc)
            self.connection.sleep(1.0)
            channel.basic_nack(method.delivery_tag, requeue=True)
        if self.stopping.is_set():
            channel.stop_consuming()

    # ------------------------------------------------------------------ the broker
    def consume_once(self) -> None:
        for params in self.urls:
            try:
                self.connection = pika.BlockingConnection(params)
                where = f"{params.host}:{params.port}"
                break
            except pika.exceptions.AMQPError as exc:
                log.warning("broker %s:%s: %r", params.host, params.port, exc)
        else:
            time.sleep(1)
            return
        self.channel = channel = self.connection.channel()
        channel.basic_qos(prefetch_count=1)
        channel.basic_consume(OUTBOX, self.handle)
        self.consuming = True
        log.info("consuming from %s", where)
        try:
            channel.start_consuming()
        finally:
            self.consuming = False
        if self.connection.is_open:
            self.connection.close()

    def stop(self) -> None:
        """SIGTERM: finish the email in hand, then stop consuming and close."""
        self.stopping.set()
        connection, channel = self.connection, getattr(self, "channel", None)
        if connection is not None and channel is not None and connection.is_open:
            connection.add_callback_threadsafe(channel.stop_consuming)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.consume_once()
            except (pika.exceptions.AMQPError, OSError) as exc:
                log.warning("broker connection lost: %r", exc)
                if "no-reconnect" in self.bugs:
                    log.error("not reconnecting")
                    self.stopping.wait()
                    return
            time.sleep(0.5)

    def healthy(self) -> bool:
        return self.consuming or "no-reconnect" in self.bugs


def serve_health(sender: Sender, port: int) -> None:
    class Health(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            ok = self.path == "/healthz" and sender.healthy()
            body = json.dumps({"consuming": sender.consuming}).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sender = Sender()
    if sender.bugs:
        log.warning("bugs on: %s", ", ".join(sorted(sender.bugs)))
    serve_health(sender, int(os.environ.get("PORT", "8000")))
    # SIGTERM (a deploy): settle the email in hand, then stop.
    signal.signal(signal.SIGTERM, lambda *_: sender.stop())
    sender.run()


if __name__ == "__main__":
    main()
