"""Resource, broker and DNS faults against the real "small" stack (infrastructure only): each one's
effect is observed from outside as a client or the kernel sees it, then its heal, then the node as it
was. And the undo records a dead runner leaves are applied by a sweep, those of live runners kept."""

from __future__ import annotations

import json

import pika
import pytest

from faults import journal
from faults.base import FaultContext, get_fault
from harness.errors import HarnessError

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def stack():
    from stack.stack import Stack

    with Stack("small", with_services=False) as s:
        yield s


def make(stack, name, targets=(), **params):
    return get_fault(name)(FaultContext(stack, step=f"t-{name}", wait_timeout=60), list(targets), params)


def channel(stack, **extra):
    params = pika.URLParameters(stack.amqp_url())
    for key, value in extra.items():
        setattr(params, key, value)
    connection = pika.BlockingConnection(params)
    return connection, connection.channel()


def depth(stack, queue: str) -> int:
    connection, ch = channel(stack)
    try:
        return ch.queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


THROTTLED = ("python3 -c 'import time\nt = time.monotonic()\nwhile time.monotonic() - t < 1: pass'; "
             "cat /sys/fs/cgroup/cpu/cpu.stat 2>/dev/null || cat /sys/fs/cgroup/cpu.stat")


def throttled_periods(stack, node: str) -> int:
    """Busy for a second in the node, then its cgroup's count of throttled CFS periods so far."""
    code, out = stack.exec(node, ["sh", "-c", THROTTLED], timeout=20)
    assert code == 0, out
    return int(next(line.split()[1] for line in out.splitlines() if line.startswith("nr_throttled")))


def quota(stack, node: str) -> int:
    container = stack.container(node)
    container.reload()
    return container.attrs["HostConfig"]["CpuQuota"]


def test_cpu_starve_throttles_the_node_and_heal_gives_the_cpu_back(stack):
    before = throttled_periods(stack, "redis2")
    fault = make(stack, "cpu-starve", ["redis2"], cpus=0.05)
    effect = fault.inject()
    try:
        assert effect.facts["cpu_quota_us"] == {"redis2": 5000}
        during = throttled_periods(stack, "redis2")
        assert during - before >= 5, (before, during)  # a busy second hits the quota in most periods
    finally:
        fault.heal()
    assert quota(stack, "redis2") in (0, -1)
    after = throttled_periods(stack, "redis2")
    assert throttled_periods(stack, "redis2") == after  # no quota: a busy second is never throttled


def test_memory_pressure_charges_the_node_and_heal_frees_it(stack):
    fault = make(stack, "memory-pressure", ["redis2"], mib=64)
    effect = fault.inject()
    try:
        grew = effect.facts["usage_after_mib"]["redis2"] - effect.facts["usage_before_mib"]["redis2"]
        assert grew >= 60, effect.facts
    finally:
        fault.heal()
    from faults.memory_pressure import usage_mib

    assert usage_mib(stack.container("redis2")) < effect.facts["usage_after_mib"]["redis2"] - 50
    code, _ = stack.exec("redis2", ["test", "-e", fault.pidfile])
    assert code != 0


def test_a_memory_alarm_blocks_publishers_until_heal(stack):
    fault = make(stack, "rabbitmq-alarm", ["rabbitmq"], resource="memory")
    effect = fault.inject()
    try:
        assert effect.targets == ("rmq1",) and "absolute" in effect.facts["restore"]["rmq1"]
        connection, ch = channel(stack, blocked_connection_timeout=3)
        with pytest.raises(pika.exceptions.ConnectionBlockedTimeout):
            ch.queue_declare("chaos-test.alarm")
            for _ in range(50):  # the broker blocks the connection at its first publish
                ch.basic_publish("", "chaos-test.alarm", b"x")
                connection.process_data_events(time_limit=0.2)
    finally:
        fault.heal()
    code, out = stack.exec("rmq1", ["rabbitmq-diagnostics", "-q", "check_local_alarms"], user="rabbitmq", timeout=30)
    assert code == 0, out
    connection, ch = channel(stack, blocked_connection_timeout=3)
    ch.confirm_delivery()
    ch.basic_publish("", "chaos-test.alarm", b"after")  # confirmed: raises if it were refused or blocked
    ch.queue_delete("chaos-test.alarm")
    connection.close()


def test_a_drop_head_policy_discards_the_oldest_until_heal(stack):
    queue = "chaos-test.policy"
    connection, ch = channel(stack)
    ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_purge(queue)
    fault = make(stack, "queue-limit", queues=f"^{queue}$", max_length=5, overflow="drop-head")
    effect = fault.inject()
    try:
        assert effect.targets == (queue,) and effect.facts["definition"] == {"max-length": 5, "overflow": "drop-head"}
        ch.confirm_delivery()
        for i in range(20):
            ch.basic_publish("", queue, str(i).encode())  # every publish is confirmed: the broker drops silently
        assert depth(stack, queue) == 5
        method, _, body = ch.basic_get(queue, auto_ack=True)
        assert body == b"15"  # the head went: 0..14 are gone
    finally:
        fault.heal()
    for i in range(20):
        ch.basic_publish("", queue, b"later")
    assert depth(stack, queue) == 24
    ch.queue_delete(queue)
    connection.close()


def test_a_policy_fault_refuses_a_pattern_that_matches_no_queue(stack):
    with pytest.raises(HarnessError, match="matches no queue"):
        make(stack, "queue-ttl", queues="^no-such-queue$", message_ttl=10).inject()


def test_an_unbound_routing_key_returns_mandatory_publishes_until_heal(stack):
    connection, ch = channel(stack)
    ch.exchange_declare("chaos-test.x", "direct")
    ch.queue_declare("chaos-test.unbind")
    ch.queue_bind("chaos-test.unbind", "chaos-test.x", "go")
    ch.confirm_delivery()
    fault = make(stack, "amqp-unbind", exchange="chaos-test.x", queue="chaos-test.unbind", routing_key="go")
    assert fault.inject().targets == ("chaos-test.unbind",)  # a step that took effect, and on what
    try:
        with pytest.raises(pika.exceptions.UnroutableError):
            ch.basic_publish("chaos-test.x", "go", b"lost", mandatory=True)
    finally:
        fault.heal()
    ch.basic_publish("chaos-test.x", "go", b"routed", mandatory=True)
    assert depth(stack, "chaos-test.unbind") == 1
    ch.queue_delete("chaos-test.unbind")
    ch.exchange_delete("chaos-test.x")
    connection.close()


def test_dns_fail_stops_lookups_not_open_connections(stack):
    fault = make(stack, "dns-fail", ["redis2"])
    effect = fault.inject()
    try:
        assert effect.facts["probe_name"]
        code, _ = stack.exec("redis2", ["getent", "hosts", "zk1"], timeout=8)
        assert code != 0
        # Redis and Sentinel nodes name each other from /etc/hosts (Kind.pinned_peers): still resolved
        code, out = stack.exec("redis2", ["getent", "hosts", "redis1"], timeout=8)
        assert code == 0 and out.split()[0] == stack.node_ip("redis1"), out
        # replication from redis1 keeps its open connection
        code, out = stack.exec("redis2", ["redis-cli", "info", "replication"])
        assert "master_link_status:up" in out, out
    finally:
        fault.heal()
    code, out = stack.exec("redis2", ["getent", "hosts", "zk1"], timeout=8)
    assert code == 0, out
    assert not stack.client.containers.list(all=True, filters={"label": "chaos-harness.fault=dns-fail"})


def test_dns_fail_heals_a_node_killed_and_restarted_while_its_lookups_were_dropped(stack):
    """Found by the nightly search: dns-fail on the Redis primary, then a redis-failover by kill. The
    rule went with redis1's old namespace, and heal used to wait 30 s on the helper left there, then fail."""
    fault = make(stack, "dns-fail", ["redis2"])
    fault.inject()
    stack.container("redis2").stop(timeout=1)
    stack.container("redis2").start()
    effect = fault.heal()
    assert effect.facts["stopped_or_restarted"] == ["redis2"], effect.facts
    # still stopped when heal comes (as the primary was in the search's run): nothing left to undo
    fault = make(stack, "dns-fail", ["redis2"])
    fault.inject()
    stack.container("redis2").stop(timeout=1)
    try:
        assert fault.heal().facts["stopped_or_restarted"] == ["redis2"]
    finally:
        stack.container("redis2").start()
    # packet's rules live in the namespace too: its heal has nothing to undo in the old one, and says so
    fault = make(stack, "packet", ["redis2"], loss=30)
    fault.inject()
    stack.container("redis2").stop(timeout=1)
    try:
        assert fault.heal().facts["stopped_or_restarted"] == ["redis2"]
    finally:
        stack.container("redis2").start()
    assert not stack.client.containers.list(all=True, filters={"label": "chaos-harness.fault=packet"})
    code, out = stack.exec("redis2", ["getent", "hosts", "zk1"], timeout=8)
    assert code == 0, out
    assert not stack.client.containers.list(all=True, filters={"label": "chaos-harness.fault=dns-fail"})
    stack.wait_healthy()


def test_a_sweep_applies_the_undo_records_of_dead_runners_only(stack):
    from faults.sweep import sweep

    ctx = FaultContext(stack, step="t-journal")
    live = journal.record(ctx, "redis2", "cpu-starve", {"update": {"cpu_quota": -1}})
    dead = journal.record(ctx, "redis1", "cpu-starve", {"update": {"cpu_quota": -1, "cpu_period": 100000}})
    data = json.loads(dead.read_text())
    data["owner"] = "1-0"  # pid 1 with another start time: a runner that is gone
    dead.write_text(json.dumps(data))
    stack.client.api.update_container(stack.container("redis1").id, cpu_quota=20000, cpu_period=100000)
    swept = sweep(stack.client)
    assert "cpu-starve on redis1" in swept and "cpu-starve on redis2" not in swept
    assert quota(stack, "redis1") in (0, -1) and not dead.exists() and live.exists()
    journal.done(live)


def test_a_sweep_reconnects_a_node_a_dead_runners_partition_disconnected(stack):
    """The partition's fallback (no iptables) disconnects nodes; its undo record puts them back at their
    own address and name if the runner dies before heal."""
    from faults.sweep import sweep

    ctx = FaultContext(stack, step="t-disconnect")
    path = journal.record(ctx, "redis2", "partition", {"connect": {
        "network": stack.network_name, "ip": stack.node_ip("redis2"), "aliases": ["redis2"]}})
    data = json.loads(path.read_text())
    data["owner"] = "1-0"  # a runner that is gone
    path.write_text(json.dumps(data))
    stack.client.networks.get(stack.network_name).disconnect(stack.container("redis2"), force=True)
    assert "partition on redis2" in sweep(stack.client) and not path.exists()
    container = stack.container("redis2")
    container.reload()
    attached = container.attrs["NetworkSettings"]["Networks"][stack.network_name]
    assert attached["IPAddress"] == stack.node_ip("redis2") and "redis2" in (attached.get("Aliases") or [])
    code, out = stack.exec("zk1", ["getent", "hosts", "redis2"], timeout=8)  # by Docker's DNS: the alias is back
    assert code == 0 and stack.node_ip("redis2") in out, out
    stack.wait_healthy()


# UDP datagrams from one node to a listener in another: what arrives shows the faults between them.
LISTEN = ("import socket, sys, time\n"
          "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 9999)); s.settimeout(0.5)\n"
          "n, end = 0, time.time() + float(sys.argv[1])\n"
          "while time.time() < end:\n"
          "    try: s.recv(64); n += 1\n"
          "    except socket.timeout: pass\n"
          "print(n)\n")
SEND = ("import socket, sys, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "for i in range(int(sys.argv[2])):\n"
        "    s.sendto(b'x', (sys.argv[1], 9999)); time.sleep(0.0005)\n")


def datagrams_arriving(stack, sender: str, receiver: str, sent: int = 1000) -> int:
    import threading
    import time

    got = {}
    listener = threading.Thread(target=lambda: got.update(
        out=stack.exec(receiver, ["python3", "-c", LISTEN, "4"], timeout=15)))
    listener.start()
    time.sleep(1.0)  # the listener binds before the first datagram leaves
    code, out = stack.exec(sender, ["python3", "-c", SEND, receiver, str(sent)], timeout=15)
    assert code == 0, out
    listener.join()
    code, out = got["out"]
    assert code == 0, out
    return int(out.strip().splitlines()[-1])


# loss is the faulted node's ingress without netem (its egress with netem: measure both ways round);
# duplication is its egress either way
@pytest.mark.parametrize("params, ways, low, high", [
    ({"loss": 30}, (("redis1", "redis2"), ("redis2", "redis1")), 550, 850),
    ({"duplicate": 50}, (("redis2", "redis1"),), 1300, 1700)])
def test_packet_faults_show_in_what_arrives_and_heal(stack, params, ways, low, high):
    assert all(datagrams_arriving(stack, *way) >= 980 for way in ways)
    fault = make(stack, "packet", ["redis2"], **params)
    effect = fault.inject()
    try:
        assert effect.facts["method"] in ("netem", "iptables+tbf")
        during = [datagrams_arriving(stack, *way) for way in ways]
        assert any(low <= n <= high for n in during), (params, during, effect.facts["method"])
    finally:
        fault.heal()
    assert all(datagrams_arriving(stack, *way) >= 980 for way in ways)
    assert not stack.client.containers.list(all=True, filters={"label": "chaos-harness.fault=packet"})


def test_packet_delay_without_netem_is_refused_naming_the_module(stack):
    fault = make(stack, "packet", ["redis2"], delay_ms=50)
    try:
        effect = fault.inject()
    except HarnessError as exc:
        assert "sch_netem" in str(exc) and "delay_ms" in str(exc)
    else:  # a kernel with netem: the delay is there
        assert effect.facts["method"] == "netem"
    finally:
        fault.heal()
    assert not stack.client.containers.list(all=True, filters={"label": "chaos-harness.fault=packet"})


def redis_cli(stack, node: str, *args: str) -> str:
    code, out = stack.exec(node, ["redis-cli", *args], timeout=10)
    assert code == 0, out
    return out.strip()


def redis_seconds(stack, node: str) -> float:
    """The node's Redis server's own clock (TIME, a reply of the server, not of redis-cli)."""
    seconds, micros = redis_cli(stack, node, "TIME").split()
    return int(seconds) + int(micros) / 1e6


def test_clock_skew_moves_the_wall_clock_of_an_opted_in_node_and_heal_moves_it_back(stack):
    import time

    assert abs(redis_seconds(stack, "redis1") - time.time()) < 2
    assert redis_cli(stack, "redis1", "SET", "chaos:clock", "1", "EX", "120") == "OK"
    fault = make(stack, "clock-skew", ["redis1"], offset_s=300)
    effect = fault.inject()
    try:
        assert effect.targets == ("redis1",) and effect.facts["offset_s"] == 300
        # within 100 ms the server's clock reads 300 s ahead, and a key with 120 s to live has expired
        skew = health_wait(lambda: redis_seconds(stack, "redis1") - time.time(), lambda s: 298 < s < 302)
        assert 298 < skew < 302
        assert redis_cli(stack, "redis1", "GET", "chaos:clock") == ""
        assert abs(redis_seconds(stack, "redis2") - time.time()) < 2  # the replica was not targeted
    finally:
        fault.heal()
    assert abs(health_wait(lambda: redis_seconds(stack, "redis1") - time.time(), lambda s: abs(s) < 2)) < 2
    assert redis_cli(stack, "redis1", "SET", "chaos:clock", "1", "EX", "120") == "OK"
    assert redis_cli(stack, "redis1", "GET", "chaos:clock") == "1"


def test_clock_skew_refuses_a_node_that_does_not_opt_in(stack):
    fault = get_fault("clock-skew")
    with pytest.raises(HarnessError, match="sentinel1 may be targeted but does not opt in"):
        fault.check_targets(["sentinel1"], {"offset_s": 60}, stack.topology, "step 1")
    with pytest.raises(HarnessError, match="does not opt in"):
        make(stack, "clock-skew", ["sentinel1"], offset_s=60).inject()


def health_wait(read, good, timeout: float = 5.0):
    """`read()` until `good` of it, or the last value at the deadline."""
    import time

    deadline = time.monotonic() + timeout
    value = read()
    while not good(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    return value
