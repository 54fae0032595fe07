"""A sender worker: consumes `dispatch.messages`, de-duplicates through Redis, delivers to the sink.

Per message: skip (ack) if Redis has its key; else POST it to the provider, SET the key only after
the provider accepted, then ack. A delivery that fails goes to the retry exchange with its attempt
count (and to `dispatch.dead` after MAX_ATTEMPTS), then is acked: never dropped. Broker, Redis and
sink losses are retried with backoff; `GET /health` is 503 whenever the worker is not consuming.

On SIGTERM (a deploy) the worker stops as orchestrators expect: it finishes and settles the message in
hand (provider call, de-dup mark, ack), cancels its consumer (pika nacks the prefetched messages it
has not started, so the broker hands them to another worker), closes its connections and exits 0.
A SIGKILL between the provider call and the de-dup mark still sends twice, and so does a provider
answer lost on its way back (the worker retries what the provider already took): at least once, by
design; SWITCHES.md says what would close it.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from urllib.parse import urlsplit

import pika
import pika.exceptions
import redis

from dispatch import broker
from dispatch.common import ServiceEnv, load_env_or_exit, redis_sentinel, serve_health, setup_logging

KEY_PREFIX = "dispatch:sent:"
KEY_TTL_S = 24 * 3600
ATTEMPT_HEADER = "x-attempt"

log = setup_logging(os.environ.get("SERVICE_NAME", "worker"))


class SinkClient:
    """One keep-alive HTTP connection to the provider; any failure closes it and reports False."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout
        self.conn: http.client.HTTPConnection | None = None

    def deliver(self, message_id: str, worker: str, attempt: int) -> tuple[bool, str]:
        body = json.dumps({"id": message_id, "worker": worker, "attempt": attempt})
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.conn.request("POST", "/deliver", body, {"Content-Type": "application/json"})
            response = self.conn.getresponse()
            response.read()
            if response.status == 200:
                return True, "accepted"
            return False, f"provider answered {response.status}"
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return False, f"provider unreachable: {exc!r}"

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Sender:
    def __init__(self, env: ServiceEnv) -> None:
        self.env = env
        self.name = env.name
        self.sticky_redis = "redis-sticky-master" in env.switches
        self.no_recovery = "broker-no-recovery" in env.switches
        self.reject_drop = "worker-reject-drop" in env.switches
        self.prefetch = int(os.environ.get("PREFETCH", "20"))
        self.max_attempts = int(os.environ.get("MAX_ATTEMPTS", "8"))
        self.set_retry_s = float(os.environ.get("REDIS_SET_RETRY_S", "8"))
        self.sink = SinkClient(env.sink_url, float(os.environ.get("SINK_TIMEOUT_S", "5")))
        self.redis: redis.Redis | None = None
        self.consuming = False
        self.consumed_at = 0.0
        self.stopping = threading.Event()  # set on SIGTERM: settle the message in hand, then stop
        self.last_error = ""
        self.counts = {"delivered": 0, "skipped": 0, "retried": 0, "parked": 0, "stranded": 0}

    # ------------------------------------------------------------------ Redis
    def _redis(self) -> redis.Redis:
        if self.redis is None:
            self.redis = redis_sentinel(self.env, sticky=self.sticky_redis)
        return self.redis

    def _redis_error(self, exc: Exception) -> None:
        self.last_error = f"redis: {exc!r}"
        if not self.sticky_redis:
            self.redis = None  # rediscover the master through Sentinel on next use

    def _already_sent(self, key: str) -> bool:
        return self._redis().exists(key) == 1

    def _mark_sent(self, key: str) -> bool:
        """SET the key, retrying (with Sentinel re-discovery) for a while: the delivery already happened."""
        deadline = time.monotonic() + self.set_retry_s
        delay = 0.1
        while True:
            try:
                self._redis().set(key, "1", ex=KEY_TTL_S)
                return True
            except redis.RedisError as exc:
                self._redis_error(exc)
                if self.sticky_redis or time.monotonic() + delay > deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    # ------------------------------------------------------------------ one message
    def on_message(self, ch, method, props, body: bytes) -> None:
        message_id = props.message_id or ""
        headers = props.headers or {}
        attempt = int(headers.get(ATTEMPT_HEADER, 1)) + int(headers.get("x-delivery-count", 0) or 0)
        key = KEY_PREFIX + message_id
        if self.stopping.is_set():  # shutting down: start nothing new, the broker hands it on
            ch.basic_nack(method.delivery_tag, requeue=True)
            return
        try:
            if self._already_sent(key):
                self.counts["skipped"] += 1
                ch.basic_ack(method.delivery_tag)
                return
        except redis.RedisError as exc:
            self._redis_error(exc)
            if self.sticky_redis:
                return self._strand(message_id, exc)
            return self._retry(ch, method, props, body, headers, f"redis: {exc!r}")
        ok, why = self.sink.deliver(message_id, self.name, attempt)
        if not ok:
            return self._retry(ch, method, props, body, headers, why)
        if not self._mark_sent(key):
            if self.sticky_redis:
                return self._strand(message_id, self.last_error)
            # Delivered but not remembered: a retry may deliver it again (at least once, never lost).
            return self._retry(ch, method, props, body, headers, self.last_error)
        self.counts["delivered"] += 1
        ch.basic_ack(method.delivery_tag)

    def _strand(self, message_id: str, exc) -> None:
        # Incident switch redis-sticky-master: the error callback only logs; the message stays
        # unacked on this channel, taking one prefetch slot for good.
        self.counts["stranded"] += 1
        log.error("redis error for %s, leaving it: %s", message_id, exc)

    def _retry(self, ch, method, props, body: bytes, headers: dict, why: str) -> None:
        if self.reject_drop:
            # Incident switch worker-reject-drop: the work queue has no dead-letter exchange, so this drops it.
            log.warning("rejecting %s: %s", props.message_id, why)
            ch.basic_reject(method.delivery_tag, requeue=False)
            return
        attempt = int(headers.get(ATTEMPT_HEADER, 1))
        dead = attempt >= self.max_attempts
        exchange = broker.DEAD_EXCHANGE if dead else broker.RETRY_EXCHANGE
        properties = pika.BasicProperties(
            message_id=props.message_id, delivery_mode=2, content_type=props.content_type,
            headers={**{k: v for k, v in headers.items() if not k.startswith("x-death")},
                     ATTEMPT_HEADER: attempt + 1, "x-last-error": why[:200]})
        try:
            ch.basic_publish(exchange, broker.ROUTING_KEY, body, properties, mandatory=True)
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            log.error("could not park %s (%r): back to the queue", props.message_id, exc)
            ch.basic_nack(method.delivery_tag, requeue=True)
            return
        self.counts["parked" if dead else "retried"] += 1
        log.info("%s %s after attempt %d: %s", "parked" if dead else "retrying", props.message_id, attempt, why)
        ch.basic_ack(method.delivery_tag)

    # ------------------------------------------------------------------ consuming
    def _parameters(self) -> list[pika.ConnectionParameters]:
        return [pika.ConnectionParameters(
            host=host, port=port, heartbeat=0 if self.no_recovery else 10,
            blocked_connection_timeout=None if self.no_recovery else 30,
            socket_timeout=5, stack_timeout=10, connection_attempts=1)
            for host, port in self.env.amqp]

    def consume_once(self) -> None:
        connection = pika.BlockingConnection(self._parameters())
        try:
            ch = connection.channel()
            ch.confirm_delivery()
            ch.basic_qos(prefetch_count=self.prefetch)
            ch.queue_declare(broker.WORK_QUEUE, passive=True)
            tag = ch.basic_consume(broker.WORK_QUEUE, self.on_message)
            self.consuming = True
            self.consumed_at = time.monotonic()
            self.last_error = ""
            log.info("consuming %s (prefetch %d)", broker.WORK_QUEUE, self.prefetch)
            # Our own loop rather than start_consuming(): messages are handled one at a time between
            # these calls, so a stop request is seen only at a message boundary.
            while not self.stopping.is_set():
                connection.process_data_events(time_limit=0.05)  # a stop is seen within 50 ms
            ch.basic_cancel(tag)  # nacks (requeues) prefetched messages not yet started
            log.info("stopped consuming: %s", self.counts)
        finally:
            self.consuming = False
            try:
                if connection.is_open:
                    connection.close()
            except Exception:  # closing a broken connection: nothing left to save
                pass

    def run(self) -> None:
        delay = 0.5
        while not self.stopping.is_set():
            try:
                self.consume_once()
            except (pika.exceptions.AMQPError, OSError) as exc:
                self.last_error = f"broker: {exc!r}"
                log.warning("broker connection lost: %r", exc)
            if self.no_recovery:
                # Incident switch broker-no-recovery: nobody reconnects, and health is not told.
                log.error("not reconnecting (broker-no-recovery)")
                return
            # A connection that served for a while starts the backoff over; a failing one doubles it.
            delay = 0.5 if time.monotonic() - self.consumed_at > 10 else min(delay * 2, 5.0)
            self.stopping.wait(delay)

    def health(self) -> tuple[bool, dict]:
        facts = {"worker": self.name, "consuming": self.consuming, "last_error": self.last_error,
                 **self.counts}
        if self.no_recovery:
            return True, facts  # the incident: health only says the process is alive
        return self.consuming, facts


def main() -> None:
    env = load_env_or_exit("worker", log)
    if "worker-crash-on-start" in env.switches:
        log.error("configuration schema v2 expected (SENDER_CONFIG_V2 missing): exiting")
        raise SystemExit(1)
    sender = Sender(env)
    terminated = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: terminated.set())
    serve_health(env.http_port, sender.health, log)
    thread = threading.Thread(target=sender.run, name="consumer", daemon=True)
    thread.start()
    # The health server lives on even when the consumer does not (broker-no-recovery).
    while not terminated.wait(1.0):
        pass
    log.info("SIGTERM: settling the message in hand, then exiting")
    sender.stopping.set()
    thread.join(float(os.environ.get("SHUTDOWN_TIMEOUT_S", "8")))
    if thread.is_alive():
        log.error("consumer did not stop in time: exiting with messages in hand (they are redelivered)")
        raise SystemExit(1)
    sender.sink.close()
    if sender.redis is not None:
        sender.redis.close()
    log.info("stopped cleanly")


if __name__ == "__main__":
    main()
