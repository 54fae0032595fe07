"""The reference services on a real (small) stack: the hardened path keeps every accepted message
exactly once, bad requests are refused, and each incident switch changes what the sink and the API
show under its matching fault. One stack for the module; each test redeploys what it changes back.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pika
import pytest
import requests

from faults.toxiproxy.client import ToxiproxyClient
from harness.history import HistoryWriter, campaign_message_id, load_history
from harness.observer import DeliveryObserver
from harness.verdict import check
from harness.workload import Workload
from stack import health
from stack.stack import Stack
from tests.reference_app import import_app

broker = import_app("broker")

pytestmark = pytest.mark.chaos


# ---------------------------------------------------------------------------------------------- helpers

def wait_until(what: str, probe, deadline_s: float, interval_s: float = 0.25):
    """Poll until `probe()` is truthy; its value, or AssertionError naming what was awaited."""
    end = time.monotonic() + deadline_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"waited {deadline_s:.0f}s for {what}; last: {value!r}")
        time.sleep(interval_s)


def stays_false(what: str, probe, window_s: float, interval_s: float = 0.5) -> None:
    """Poll for `window_s` (the time the hardened service needs): AssertionError if `probe()` turns true."""
    end = time.monotonic() + window_s
    while time.monotonic() < end:
        value = probe()
        assert not value, f"{what} within {window_s:.0f}s: {value!r}"
        time.sleep(interval_s)


class Dispatch:
    """The stack as a client sees it: the API, the sink, the proxy and the broker's queues."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.http = requests.Session()
        self.proxy = ToxiproxyClient(f"http://127.0.0.1:{stack.host_port('proxy', 8474)}")

    @property
    def api(self) -> str:  # looked up each time: a redeploy keeps the port, but be sure
        return f"http://127.0.0.1:{self.stack.host_port('api', 8080)}"

    @property
    def sink(self) -> str:
        return f"http://127.0.0.1:{self.stack.host_port('sink', 8080)}"

    def send(self, message_id: str, channel: str = "sms") -> requests.Response:
        return self.http.post(self.api + "/messages", timeout=15, json={
            "id": message_id, "channel": channel, "to": "+33600000000", "body": "hello"})

    def send_all(self, ids: list[str]) -> Counter:
        return Counter(self.send(m).status_code for m in ids)

    def api_health(self) -> tuple[int, dict]:
        response = self.http.get(self.api + "/health", timeout=10)
        return response.status_code, response.json()

    def node_health(self, node: str) -> tuple[int, dict]:
        """(status, facts) of a node's GET /health, asked inside its container; (0, {}) if it cannot answer."""
        script = ("import urllib.request,urllib.error,json\ntry:\n r=urllib.request.urlopen("
                  "'http://127.0.0.1:8080/health',timeout=3)\nexcept urllib.error.HTTPError as e:\n r=e\n"
                  "print(json.dumps([r.status if hasattr(r,'status') else r.code, json.loads(r.read())]))")
        code, out = self.stack.exec(node, ["python3", "-c", script], timeout=8)
        if code != 0 or not out.strip():
            return 0, {}
        status, facts = json.loads(out.strip().splitlines()[-1])
        return status, facts

    def deliveries(self, prefix: str = "") -> list[dict]:
        out, offset = [], 0
        while True:
            body = self.http.get(self.sink + "/deliveries", params={"offset": offset, "limit": 10000},
                                 timeout=10).json()
            out += [d for d in body["deliveries"] if d["id"].startswith(prefix)]
            if body["next"] == offset:
                return out
            offset = body["next"]

    def delivered(self, prefix: str) -> Counter:
        return Counter(d["id"] for d in self.deliveries(prefix))

    def wait_delivered(self, ids: list[str], deadline_s: float, prefix: str) -> Counter:
        wanted = set(ids)

        def complete() -> Counter | None:
            seen = self.delivered(prefix)
            return seen if wanted <= seen.keys() else None
        return wait_until(f"{len(wanted)} deliveries of {prefix}*", complete, deadline_s)

    def sink_control(self, **settings) -> None:
        self.http.post(self.sink + "/control", json=settings, timeout=5).raise_for_status()

    def queue_depth(self, queue: str) -> int:
        params = pika.ConnectionParameters("127.0.0.1", self.stack.host_port("rmq1", 5672), socket_timeout=5)
        connection = pika.BlockingConnection(params)
        try:
            return connection.channel().queue_declare(queue, passive=True).method.message_count
        finally:
            connection.close()

    def publish_direct(self, ids: list[str]) -> None:
        """Publish with confirms straight to the broker (the API may be the thing under test)."""
        params = pika.ConnectionParameters("127.0.0.1", self.stack.host_port("rmq1", 5672), socket_timeout=5)
        connection = pika.BlockingConnection(params)
        try:
            ch = connection.channel()
            ch.confirm_delivery()
            for m in ids:
                ch.basic_publish(broker.EXCHANGE, broker.ROUTING_KEY, json.dumps({"id": m}).encode(),
                                 pika.BasicProperties(message_id=m, delivery_mode=2), mandatory=True)
        finally:
            connection.close()


@contextmanager
def deployed(stack: Stack, changes: dict[str, dict[str, str]]):
    """Redeploy nodes with env overrides (a deploy with incident switches); put the spec back after."""
    for node, env in changes.items():
        stack.redeploy(node, env)
    try:
        yield
    finally:
        for node in changes:
            stack.redeploy(node)


def ids_for(test: str, n: int) -> tuple[str, list[str]]:
    prefix = f"{test}-{uuid.uuid4().hex[:6]}-"
    return prefix, [f"{prefix}{i:05d}" for i in range(n)]


@pytest.fixture(scope="module")
def stack():
    with Stack("small") as s:
        yield s


@pytest.fixture
def dispatch(stack):
    d = Dispatch(stack)
    yield d
    d.sink_control(fail_rate=0, delay_ms=0)
    d.http.close()
    d.proxy.close()


# ---------------------------------------------------------------------------------------------- hardened

def test_hardened_no_faults_every_accepted_message_delivered_once(stack, dispatch, tmp_path: Path):
    """2,000 messages and a 500-recipient campaign, judged by the harness's own checkers."""
    dispatch.http.post(dispatch.sink + "/reset", timeout=5).raise_for_status()
    path = tmp_path / "history.jsonl"
    started = time.monotonic()
    with HistoryWriter(path) as writer:
        cid = f"campaign-{uuid.uuid4().hex[:6]}"
        recipients = [f"user{i}@example.test" for i in range(500)]
        value = {"campaign": cid, "ids": [campaign_message_id(cid, r) for r in recipients]}
        writer.record("campaigner", "invoke", "campaign", value)
        response = dispatch.http.post(dispatch.api + "/campaigns", timeout=10,
                                      json={"campaign_id": cid, "recipients": recipients, "body": "news"})
        writer.record("campaigner", "ok" if response.status_code == 202 else "fail", "campaign", value)
        assert response.status_code == 202, response.text

        workload = Workload(dispatch.api, writer, clients=8, rate=500, count=2000, seed=3)
        outcomes = workload.run()
        assert outcomes == {"ok": 2000, "fail": 0, "info": 0}
        observer = DeliveryObserver(dispatch.sink, writer)
        missing = observer.drain(lambda: workload.acknowledged_ids() | set(value["ids"]), deadline_s=120)
        observer.close()
    elapsed = time.monotonic() - started
    verdict = check(load_history(path))
    print(f"\n2,000 messages + 500-recipient campaign: {elapsed:.1f}s\n{verdict.summary()}")
    assert not missing, f"{len(missing)} accepted ids never delivered"
    assert verdict.valid, verdict.summary()
    assert len(dispatch.deliveries()) == 2500, "the sink saw deliveries beyond the 2,500 ids"


def test_reset_clears_what_a_run_left_in_zookeeper_redis_and_the_queues(stack, dispatch):
    """The reset's steps (the stack file's x-chaos.reset) clear each store, asked straight at the nodes:
    a campaign's progress in ZooKeeper (`python: dispatch.reset:clear`), a Redis key (`redis_flush`), a parked
    message (`amqp_purge`). Left behind, each would carry one run's messages into the next."""
    from kazoo.client import KazooClient

    from stack import resp
    from stack.kinds.redis import primary
    from stack.reset import reset_stack
    from stack.topology import REDIS_PORT, ZK_PORT

    common = import_app("common")
    # a progress record of a campaign no scheduler knows: nothing but the reset removes it
    campaign = f"{common.PROGRESS_PATH}/left-{uuid.uuid4().hex[:6]}"
    hosts = ",".join("%s:%d" % stack.reach(stack.node_ip(n), ZK_PORT) for n in stack.topology.names("zookeeper"))
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=20)
    try:
        zk.create(campaign, b"7", makepath=True)
        master = primary(stack)
        assert resp.command(stack, master, REDIS_PORT, "SET", "left-by-a-run", "1") == "OK"
        with pika.BlockingConnection(pika.URLParameters(stack.amqp_url())) as connection:
            channel = connection.channel()
            channel.basic_publish("", broker.DEAD_QUEUE, b"parked by a run")
            assert wait_until("the parked message counted",
                              lambda: channel.queue_declare(broker.DEAD_QUEUE, passive=True).method.message_count,
                              10)
        reset_stack(stack)
        assert not zk.exists(campaign), "the campaign's ZooKeeper state outlived the reset"
        assert resp.command(stack, primary(stack), REDIS_PORT, "EXISTS", "left-by-a-run") == 0
        with pika.BlockingConnection(pika.URLParameters(stack.amqp_url())) as connection:
            count = connection.channel().queue_declare(broker.DEAD_QUEUE, passive=True).method.message_count
        assert count == 0, f"{count} parked messages outlived the reset"
    finally:
        zk.stop()
        zk.close()


def test_bad_requests_are_refused_with_a_reason_and_never_published(dispatch):
    prefix, (good,) = ids_for("bad", 1)
    bad_messages = [
        ({"id": prefix + "fax", "channel": "fax", "to": "x", "body": "b"}, "unknown channel"),
        ({"id": prefix + "noto", "channel": "sms", "body": "b"}, "to must be"),
        ({"id": "", "channel": "sms", "to": "x", "body": "b"}, "id must be"),
        ({"id": prefix + "num", "channel": "sms", "to": 42, "body": "b"}, "to must be"),
        ({"id": prefix + "big", "channel": "sms", "to": "x", "body": "b" * 5000}, "longer than"),
        ([1, 2], "expected a JSON object"),
    ]
    for body, reason in bad_messages:
        response = dispatch.http.post(dispatch.api + "/messages", json=body, timeout=10)
        assert 400 <= response.status_code < 500 and reason in response.json()["error"], (body, response.text)
    response = dispatch.http.post(dispatch.api + "/messages", data=b"{not json", timeout=10,
                                  headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    response = dispatch.http.post(dispatch.api + "/messages", data=b"x" * (2 * 1024 * 1024), timeout=10)
    assert response.status_code == 413, response.text
    for body, reason in [({"campaign_id": "a/b", "recipients": ["x"], "body": "b"}, "campaign_id may only"),
                         ({"campaign_id": prefix + "c", "recipients": [], "body": "b"}, "recipients must"),
                         ({"campaign_id": prefix + "d", "recipients": ["x", "x"], "body": "b"}, "unique")]:
        response = dispatch.http.post(dispatch.api + "/campaigns", json=body, timeout=10)
        assert response.status_code == 400 and reason in response.json()["error"], (body, response.text)
    # A good message sent after them arrives; none of the bad ones was published before it.
    assert dispatch.send(good).status_code == 202
    dispatch.wait_delivered([good], 30, prefix)
    assert set(dispatch.delivered(prefix)) == {good}


def test_replay_moves_parked_messages_back_and_they_are_delivered(stack, dispatch):
    """Provider outage: hardened workers park after MAX_ATTEMPTS; the operator's replay delivers them."""
    prefix, ids = ids_for("park", 20)
    with deployed(stack, {"worker1": {"MAX_ATTEMPTS": "2"}}):
        dispatch.sink_control(fail_rate=1.0)
        assert dispatch.send_all(ids) == {202: 20}
        wait_until("20 messages parked in dispatch.dead", lambda: dispatch.queue_depth(broker.DEAD_QUEUE) >= 20, 60)
        assert not dispatch.delivered(prefix)
        dispatch.sink_control(fail_rate=0.0)
        code, out = stack.exec("worker1", ["python3", "-m", "dispatch.replay"], timeout=60)
        assert code == 0 and json.loads(out.strip().splitlines()[-1])["replayed"] >= 20, out
        delivered = dispatch.wait_delivered(ids, 60, prefix)
    assert all(delivered[m] == 1 for m in ids), delivered


# ---------------------------------------------------------------------------------------------- switches

def test_switch_worker_reject_drop_loses_messages_in_a_provider_outage(stack, dispatch):
    """Incident 5: the new sender rejects failed deliveries without requeue; no DLX, so they vanish."""
    prefix, ids = ids_for("reject", 20)
    with deployed(stack, {"worker1": {"CHAOS_SWITCHES": "worker-reject-drop"}}):
        dispatch.sink_control(fail_rate=1.0)
        dead_before = dispatch.queue_depth(broker.DEAD_QUEUE)
        assert dispatch.send_all(ids) == {202: 20}
        wait_until("the work queue to empty", lambda: dispatch.queue_depth(broker.WORK_QUEUE) == 0, 30)
        dispatch.sink_control(fail_rate=0.0)
        assert dispatch.queue_depth(broker.DEAD_QUEUE) == dead_before
        assert dispatch.queue_depth(broker.RETRY_QUEUE) == 0
    # The hardened worker is back and the provider healthy: nothing is left anywhere to deliver.
    prefix2, probe = ids_for("reject-probe", 1)
    dispatch.send(probe[0])
    dispatch.wait_delivered(probe, 30, prefix2)
    assert not dispatch.delivered(prefix), "rejected messages were expected to be lost"


def test_switch_worker_crash_on_start_leaves_accepted_messages_waiting(stack, dispatch):
    """Incident 5 (start-up variant): the deploy crashes; nothing is consumed, health is not 2xx."""
    prefix, ids = ids_for("crash", 20)
    stack.redeploy("worker1", {"CHAOS_SWITCHES": "worker-crash-on-start"}, wait=False)
    try:
        container = stack.container("worker1")
        wait_until("worker1 to exit", lambda: (container.reload(), container.status)[1] == "exited", 30)
        assert dispatch.send_all(ids) == {202: 20}
        assert dispatch.queue_depth(broker.WORK_QUEUE) >= 20
        assert not dispatch.delivered(prefix)
    finally:
        stack.redeploy("worker1")
    delivered = dispatch.wait_delivered(ids, 60, prefix)
    assert all(delivered[m] == 1 for m in ids)


def test_switch_api_fire_and_forget_answers_202_for_messages_it_drops(stack, dispatch):
    """Incident 4: a misrouted deploy. Hardened: 503 unroutable. Switched: 202 and nothing delivered."""
    prefix, ids = ids_for("misroute", 30)
    with deployed(stack, {"api": {"DISPATCH_ROUTING_KEY": "messages"}}):
        response = dispatch.send(ids[0])
        assert response.status_code == 503 and "unroutable" in response.json()["error"], response.text
    with deployed(stack, {"api": {"CHAOS_SWITCHES": "api-fire-and-forget"}}):
        assert dispatch.send_all(ids) == {202: 30}
    prefix2, probe = ids_for("misroute-probe", 1)
    assert dispatch.send(probe[0]).status_code == 202
    dispatch.wait_delivered(probe, 30, prefix2)
    assert not dispatch.delivered(prefix), "the switched API was expected to drop every message"


def _drop_broker_links(dispatch: Dispatch) -> None:
    for link in ("api-rmq1", "workers-rmq1"):
        dispatch.proxy.set_enabled(link, False)  # aborts the open connections
    for link in ("api-rmq1", "workers-rmq1"):
        dispatch.proxy.set_enabled(link, True)


def test_switch_broker_no_recovery_hangs_services_behind_a_lying_health(stack, dispatch):
    """Incident 2: after a broker connection drop the switched API refuses and the switched worker
    consumes nothing, while both health checks say 200; the hardened ones reconnect and deliver."""
    prefix, ids = ids_for("nodrop", 20)
    dispatch.send(ids[0])
    _drop_broker_links(dispatch)
    wait_until("the hardened API to publish again", lambda: dispatch.send(ids[1]).status_code == 202, 30)
    assert dispatch.send_all(ids[2:]) == {202: 18}
    delivered = dispatch.wait_delivered(ids[1:], 60, prefix)
    assert all(delivered[m] == 1 for m in ids[1:])

    prefix, ids = ids_for("drop", 20)
    switched = {"CHAOS_SWITCHES": "broker-no-recovery"}
    with deployed(stack, {"api": switched, "worker1": switched}):
        _drop_broker_links(dispatch)
        # The hardened API was back within seconds; this one refuses for good.
        stays_false("the switched API published again", lambda: dispatch.send(ids[0]).status_code == 202, 15)
        statuses = dispatch.send_all(ids[1:10])
        assert statuses[202] == 0, statuses
        assert dispatch.api_health()[0] == 200
        dispatch.publish_direct(ids[10:])
        assert dispatch.node_health("worker1")[0] == 200
        stays_false("the switched worker delivered", lambda: dispatch.delivered(prefix), 15)
        assert dispatch.queue_depth(broker.WORK_QUEUE) >= 10
    # Redeployed hardened: the parked-in-queue messages go out.
    delivered = dispatch.wait_delivered(ids[10:], 60, prefix)
    assert all(delivered[m] == 1 for m in ids[10:])


def _failover(stack: Stack) -> str:
    before = health.sentinel_master(stack, "sentinel1")
    code, out = stack.exec("sentinel1", ["redis-cli", "-p", "26379", "sentinel", "failover", "mymaster"])
    assert code == 0 and "OK" in out, out
    old = before.get("ip") or before.get("host")

    def done():
        now = health.sentinel_master(stack, "sentinel1")
        new = now.get("ip") or now.get("host")
        return new != old and health.redis_info(stack, old).get("role") == "slave" and new
    return wait_until("Sentinel to name a new master and demote the old one", done, 40, 0.5)


def test_switch_redis_sticky_master_strands_sends_after_a_failover(stack, dispatch):
    """Incident 1: after a Redis failover the switched worker keeps writing to the demoted master and
    leaves each failure unacked: sends stall. The hardened worker follows Sentinel and delivers all."""
    prefix, ids = ids_for("failover", 60)
    assert dispatch.send_all(ids[:10]) == {202: 10}
    dispatch.wait_delivered(ids[:10], 30, prefix)
    _failover(stack)
    assert dispatch.send_all(ids[10:]) == {202: 50}
    delivered = dispatch.wait_delivered(ids, 60, prefix)
    assert all(delivered[m] == 1 for m in ids), delivered

    prefix, ids = ids_for("sticky", 110)
    with deployed(stack, {"worker1": {"CHAOS_SWITCHES": "redis-sticky-master"}}):
        assert dispatch.send_all(ids[:10]) == {202: 10}
        dispatch.wait_delivered(ids[:10], 30, prefix)
        _failover(stack)
        assert dispatch.send_all(ids[10:]) == {202: 100}
        # The hardened worker delivered all of them within seconds of the failover.
        stays_false("the switched worker delivered every message",
                    lambda: set(ids) <= dispatch.delivered(prefix).keys(), 15)
        delivered = dispatch.delivered(prefix)
        stuck = [m for m in ids[10:] if m not in delivered]
        assert len(stuck) >= 50, f"only {len(stuck)} of 100 stuck"
        assert dispatch.node_health("worker1")[0] == 200  # still consuming, as far as it knows
    # Redeployed hardened, the unacked messages come back and go out (those SET-less may go twice).
    dispatch.wait_delivered(ids, 60, prefix)


def _fan_out_with_zk_cut(stack: Stack, dispatch: Dispatch, switches: str) -> tuple[str, list[str], Counter]:
    cid = f"zkcut-{uuid.uuid4().hex[:6]}"
    recipients = [f"r{i:04d}" for i in range(600)]
    env = {"FANOUT_RATE": "100", "ZK_SESSION_TIMEOUT_S": "4", "CHAOS_SWITCHES": switches}
    # The proxied scheduler must lead and the standby (straight to ZooKeeper) take over: deploy in that order.
    stack.container("scheduler2").stop(timeout=2)
    with deployed(stack, {"scheduler": env}):
        wait_until("scheduler to lead", lambda: dispatch.node_health("scheduler")[1].get("leader"), 30, 0.5)
        stack.redeploy("scheduler2", env)
        response = dispatch.http.post(dispatch.api + "/campaigns", timeout=10,
                                      json={"campaign_id": cid, "recipients": recipients, "body": "b"})
        assert response.status_code == 202, response.text
        wait_until("fan-out to be under way", lambda: len(dispatch.delivered(cid)) >= 100, 60)
        dispatch.proxy.set_enabled("scheduler-zk1", False)
        time.sleep(8)  # the fault window: twice the session timeout, so the session expires
        dispatch.proxy.set_enabled("scheduler-zk1", True)
        expected = {campaign_message_id(cid, r) for r in recipients}

        def settled():  # every recipient reached and nothing new for a few seconds
            seen = Counter(d["id"].split("#")[0] for d in dispatch.deliveries(cid))
            return seen if expected <= seen.keys() and sum(seen.values()) == settled.last else (
                setattr(settled, "last", sum(seen.values())))
        settled.last = -1
        seen = wait_until("every recipient of the campaign delivered", settled, 90, 3.0)
    stack.redeploy("scheduler2")
    return cid, sorted(expected), seen


def test_switch_zk_unfenced_fanout_sends_twice_after_a_session_loss(stack, dispatch):
    """Incident 3: the scheduler's ZooKeeper session expires mid fan-out. Hardened: it stops, resumes
    from the recorded progress and every recipient gets exactly one message with the derived id.
    Switched: it keeps sending, its progress is stale, and it sends the rest again under new ids."""
    cid, expected, seen = _fan_out_with_zk_cut(stack, dispatch, "")
    assert set(seen) == set(expected) and all(seen[m] == 1 for m in expected), \
        Counter(seen.values())
    assert all("#" not in d["id"] for d in dispatch.deliveries(cid))

    cid, expected, seen = _fan_out_with_zk_cut(stack, dispatch, "zk-unfenced-fanout")
    twice = [m for m in expected if seen[m] > 1]
    print(f"\nzk-unfenced-fanout: {len(twice)} of {len(expected)} recipients got two or more messages")
    assert len(twice) >= 50, f"only {len(twice)} recipients got two messages"
