"""The campaign scheduler: one leader, elected through ZooKeeper, fans campaigns out into messages.

Leadership is an ephemeral node owned by the leader's session. Before every publish the leader
checks that its session is still the one that won and still connected (the connection listener
clears a flag on SUSPENDED/LOST): a leader that may have lost its session stops at once. Message ids
are `campaign_message_id(cid, recipient)`; progress (next recipient index) is written to ZooKeeper
after the broker confirmed, with a version check, so a new leader resumes without sending twice
(at most one batch is re-published, and the workers de-duplicate those ids).

On SIGTERM (a deploy) the leader stops between two publishes, records its progress, deletes its
leadership node so the standby takes over at once (not a session timeout later), closes its
connections and exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid

import pika
import pika.exceptions
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError

from dispatch import broker
from dispatch.common import (CAMPAIGNS_PATH, PROGRESS_PATH, ServiceEnv, load_env_or_exit,
                                   serve_health, setup_logging)

LEADER_PATH = "/dispatch/scheduler-leader"
ZK_WAIT_S = 5.0
ZK_OP_TIMEOUT_S = 3.0

log = setup_logging(os.environ.get("SERVICE_NAME", "scheduler"))


def campaign_message_id(cid: str, recipient: str) -> str:
    """The app's id for one recipient of a campaign: derived, so a re-sent batch is de-duplicated.
    The harness's workload expects the same scheme (`harness.history.campaign_message_id`)."""
    return f"{cid}:{recipient}"


class Fenced(Exception):
    """This process may no longer be leader: stop fanning out."""


class Stopping(Exception):
    """SIGTERM: stop fanning out and hand leadership over."""


class Scheduler:
    def __init__(self, env: ServiceEnv) -> None:
        self.env = env
        self.unfenced = "zk-unfenced-fanout" in env.switches
        self.rate = float(os.environ.get("FANOUT_RATE", "0"))  # messages/s; 0: as fast as confirms go
        self.batch = int(os.environ.get("PROGRESS_EVERY", "20"))
        self.zk = KazooClient(hosts=env.zk_hosts(), timeout=float(os.environ.get("ZK_SESSION_TIMEOUT_S", "6")),
                              connection_retry={"max_tries": -1, "max_delay": 2.0})
        self.zk_connected = threading.Event()
        self.zk.add_listener(self._on_zk_state)
        self.leader_session: int | None = None
        self.channel = None
        self.connection = None
        self.sent = 0
        self.last_error = ""
        self.stopping = threading.Event()

    # ------------------------------------------------------------------ ZooKeeper and leadership
    def _on_zk_state(self, state: str) -> None:
        # Runs on kazoo's connection thread: only flip flags here.
        if state == KazooState.CONNECTED:
            self.zk_connected.set()
        else:
            self.zk_connected.clear()
            log.warning("ZooKeeper session %s", state)

    def _session(self) -> int | None:
        client_id = self.zk.client_id
        return client_id[0] if client_id else None

    def fence(self) -> None:
        """Raise Fenced unless this process still leads on a connected session."""
        if self.unfenced:
            return  # incident switch zk-unfenced-fanout: leadership is never re-checked
        if not self.zk_connected.is_set() or self._session() != self.leader_session:
            raise Fenced("ZooKeeper session suspended or lost")

    def try_lead(self) -> bool:
        try:
            self.zk.create(LEADER_PATH, self.env.name.encode(), ephemeral=True, makepath=True)
        except NodeExistsError:
            try:
                _, stat = self.zk.get(LEADER_PATH)
            except NoNodeError:
                return False
            if stat.ephemeralOwner != self._session():
                return False
        self.leader_session = self._session()
        log.info("leading (session %x)", self.leader_session or 0)
        return True

    def step_down(self) -> None:
        self.leader_session = None
        try:
            _, stat = self.zk.get_async(LEADER_PATH).get(timeout=ZK_OP_TIMEOUT_S)
            if stat.ephemeralOwner == self._session():
                self.zk.delete_async(LEADER_PATH, version=stat.version).get(timeout=ZK_OP_TIMEOUT_S)
        except (KazooException, self.zk.handler.timeout_exception):
            pass  # a lost session takes the node with it

    # ------------------------------------------------------------------ broker
    def _channel(self):
        if self.channel is None or not self.channel.is_open:
            self._close_broker()
            params = [pika.ConnectionParameters(host=h, port=p, heartbeat=10, blocked_connection_timeout=30,
                                                socket_timeout=5, stack_timeout=10, connection_attempts=1)
                      for h, p in self.env.amqp]
            self.connection = pika.BlockingConnection(params)
            self.channel = self.connection.channel()
            self.channel.confirm_delivery()
        return self.channel

    def _close_broker(self) -> None:
        try:
            if self.connection is not None and self.connection.is_open:
                self.connection.close()
        except Exception:  # already broken
            pass
        self.connection = self.channel = None

    def idle(self, seconds: float) -> None:
        """Wait while servicing broker heartbeats; SIGTERM ends the wait within 50 ms (a standby used to
        sleep out a whole second of it before it saw the stop)."""
        end = time.monotonic() + seconds
        while not self.stopping.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            if self.connection is not None and self.connection.is_open:
                try:
                    self.connection.process_data_events(time_limit=min(left, 0.05))
                    continue
                except pika.exceptions.AMQPError:
                    self._close_broker()
            self.stopping.wait(min(left, 0.05))

    # ------------------------------------------------------------------ fan-out
    def _message_id(self, cid: str, recipient: str) -> str:
        if self.unfenced:
            return f"{campaign_message_id(cid, recipient)}#{uuid.uuid4().hex[:8]}"  # the incident's ids
        return campaign_message_id(cid, recipient)

    def _progress(self, cid: str) -> tuple[int, int | None]:
        try:
            data, stat = self.zk.get(f"{PROGRESS_PATH}/{cid}")
            return int(data or b"0"), stat.version
        except NoNodeError:
            return 0, None

    def _record(self, cid: str, index: int, version: int | None) -> int | None:
        path = f"{PROGRESS_PATH}/{cid}"
        data = str(index).encode()
        if self.unfenced:
            # The incident's "best effort" progress: fire and forget; lost if the session is.
            (self.zk.create_async(path, data, makepath=True) if version is None
             else self.zk.set_async(path, data))
            return 0
        # Bounded waits: kazoo queues requests while it reconnects (and fails them if the session
        # expires). BadVersion: another leader wrote since we read it.
        if version is None:
            self.zk.create_async(path, data, makepath=True).get(timeout=ZK_OP_TIMEOUT_S)
            return 0
        return self.zk.set_async(path, data, version=version).get(timeout=ZK_OP_TIMEOUT_S).version

    def fan_out(self, cid: str) -> None:
        data, _ = self.zk.get(f"{CAMPAIGNS_PATH}/{cid}")
        campaign = json.loads(data)
        recipients = campaign["recipients"]
        index, version = self._progress(cid)
        if index >= len(recipients):
            return
        log.info("campaign %s: fan-out from %d of %d", cid, index, len(recipients))
        channel = self._channel()
        for i in range(index, len(recipients)):
            if self.stopping.is_set():
                if i > index:  # what was confirmed so far, so the next leader starts right there
                    self.fence()
                    self._record(cid, i, version)
                raise Stopping(f"campaign {cid} handed over at {i} of {len(recipients)}")
            self.fence()
            message_id = self._message_id(cid, recipients[i])
            body = {"id": message_id, "channel": "email", "to": recipients[i], "body": campaign["body"],
                    "campaign_id": cid}
            channel.basic_publish(broker.EXCHANGE, broker.ROUTING_KEY, json.dumps(body).encode(),
                                  pika.BasicProperties(message_id=message_id, delivery_mode=2,
                                                       content_type="application/json"),
                                  mandatory=True)
            self.sent += 1
            if (i + 1 - index) % self.batch == 0 or i + 1 == len(recipients):
                self.fence()
                version = self._record(cid, i + 1, version)
            if self.rate > 0:
                time.sleep(1.0 / self.rate)
        log.info("campaign %s: done (%d)", cid, len(recipients))

    def lead(self) -> None:
        while not self.stopping.is_set():
            self.fence()
            try:
                campaigns = sorted(self.zk.get_children(CAMPAIGNS_PATH))
            except NoNodeError:
                campaigns = []
            for cid in campaigns:
                self.fan_out(cid)
            self.idle(0.3)

    # ------------------------------------------------------------------ main loop
    def run(self) -> None:
        self.zk.start_async()
        while not self.stopping.is_set():
            try:
                if not self.zk_connected.wait(ZK_WAIT_S):
                    continue
                if self.try_lead():
                    try:
                        self.lead()
                    finally:
                        self.step_down()
                else:
                    self.idle(1.0)
            except Stopping as exc:
                log.info("SIGTERM: %s", exc)
            except Fenced as exc:
                log.warning("stopped fan-out: %s", exc)
                self.last_error = str(exc)
            except (KazooException, self.zk.handler.timeout_exception, pika.exceptions.AMQPError,
                    OSError) as exc:
                log.warning("fan-out interrupted: %r", exc)
                self.last_error = repr(exc)
                if isinstance(exc, (pika.exceptions.AMQPError, OSError)):
                    self._close_broker()
                time.sleep(0.5)

    def close(self) -> None:
        """After `run` returned (leadership already handed over): close the broker and ZooKeeper."""
        self._close_broker()
        self.zk.stop()
        self.zk.close()

    def health(self) -> tuple[bool, dict]:
        facts = {"scheduler": self.env.name, "zookeeper": "connected" if self.zk_connected.is_set() else "down",
                 "leader": self.leader_session is not None, "sent": self.sent, "last_error": self.last_error}
        return self.zk_connected.is_set(), facts


def main() -> None:
    env = load_env_or_exit("scheduler", log)
    scheduler = Scheduler(env)
    signal.signal(signal.SIGTERM, lambda signum, frame: scheduler.stopping.set())
    serve_health(env.http_port, scheduler.health, log)
    scheduler.run()
    scheduler.close()
    log.info("stopped cleanly")


if __name__ == "__main__":
    main()
