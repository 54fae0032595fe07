"""Faults on one node or one link, seen from outside, against the real "small" stack; and the runner.

One stack for the module. Every test observes the effect (container state, a probe through the
proxy, a redeployed env) and the heal, then checks the stack is back as it was.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from faults.base import FaultContext, get_fault
from faults.link import proxy_client
from harness.history import HistoryWriter, load_history
from harness.runner import Runner
from harness.schedule import Schedule
from stack import health

pytestmark = pytest.mark.chaos

PROBE_FROM = "sentinel1"
BIG = 3000


@pytest.fixture(scope="module")
def stack():
    from stack.stack import Stack

    with Stack("small", with_services=False) as s:
        code, out = s.exec("redis1", ["redis-cli", "set", "big", "x" * BIG])
        assert code == 0 and "OK" in out, out
        yield s


def make(stack, name, targets=(), **params):
    return get_fault(name)(FaultContext(stack, step=f"t-{name}", wait_timeout=60), list(targets), params)


def status(stack, node):
    c = stack.container(node)
    c.reload()
    return c.status


# A client of Redis through the proxy, run inside another container: what happened, and how long it took.
PROBE = r"""
import json, socket, sys, time
host, port, cmd, want, wait = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
out = {"got": 0}
t0 = time.monotonic()
try:
    s = socket.create_connection((host, port), timeout=wait)
    s.settimeout(wait)
    s.sendall(cmd.encode().replace(b"|", b"\r\n"))
    pieces = 0
    while True:
        b = s.recv(65536)
        if not b:
            out["outcome"] = "closed"; break
        out["got"] += len(b); pieces += 1
        if want and out["got"] >= want:
            out["outcome"] = "ok"; break
    out["pieces"] = pieces
except ConnectionRefusedError: out["outcome"] = "refused"
except ConnectionResetError: out["outcome"] = "reset"
except (socket.timeout, TimeoutError): out["outcome"] = "timeout"
out["ms"] = round((time.monotonic() - t0) * 1000, 1)
print(json.dumps(out))
"""


def through_proxy(stack, link, cmd="PING|", want=7, wait=3.0) -> dict:
    listen = next(l.listen_port for l in stack.topology.links if l.name == link)
    code, out = stack.exec(PROBE_FROM, ["python3", "-c", PROBE, "proxy", str(listen), cmd, str(want), str(wait)],
                           timeout=int(wait) + 10)
    assert code == 0, out
    return json.loads(out.strip().splitlines()[-1])


def best_ping(stack, link, tries=3) -> float:
    results = [through_proxy(stack, link) for _ in range(tries)]
    assert all(r["outcome"] == "ok" for r in results), results
    return min(r["ms"] for r in results)


def no_toxics(stack) -> bool:
    with proxy_client(stack) as api:
        return all(not p["toxics"] and p["enabled"] for p in api.proxies().values())


# ---------------------------------------------------------------------------------------------- process faults

def test_kill_then_start(stack):
    fault = make(stack, "kill", ["redis2"])
    effect = fault.inject()
    assert effect.targets == ("redis2",) and status(stack, "redis2") == "exited"
    fault.heal()
    assert status(stack, "redis2") == "running"
    assert health.wait_for("redis2 to resync", lambda: (
        health.redis_info(stack, "redis2").get("master_link_status") == "up", "link"), time.monotonic() + 30)
    fault.heal()  # idempotent


def test_restart_is_graceful_and_comes_back(stack):
    before = stack.container("sentinel1").attrs["State"]["StartedAt"]
    fault = make(stack, "restart", ["sentinel1"], grace=5)
    fault.inject()
    stack.container("sentinel1").reload()
    assert stack.container("sentinel1").attrs["State"]["StartedAt"] != before
    assert status(stack, "sentinel1") == "running"
    fault.heal()


def test_pause_and_unpause(stack):
    fault = make(stack, "pause", ["redis-replica"])
    effect = fault.inject()
    assert effect.targets == ("redis2",) and status(stack, "redis2") == "paused"
    fault.heal()
    assert status(stack, "redis2") == "running"
    fault.heal()


def test_rolling_restart_one_after_another(stack):
    starts = {}
    for node in ("redis2", "sentinel1"):
        stack.container(node).reload()
        starts[node] = stack.container(node).attrs["State"]["StartedAt"]
    fault = make(stack, "rolling-restart", ["redis2", "sentinel1"], gap=0.5, mode="kill")
    effect = fault.inject()
    assert effect.facts["order"] == ["redis2", "sentinel1"]
    for node in starts:
        stack.container(node).reload()
        assert stack.container(node).attrs["State"]["StartedAt"] != starts[node]
        assert status(stack, node) == "running"
    fault.heal()


# ---------------------------------------------------------------------------------------------- link faults

def test_latency_rises_by_the_toxic_and_falls_back(stack):
    link = "workers-redis1"
    base = best_ping(stack, link)
    fault = make(stack, "latency", ["workers:redis-primary"], latency=400, direction="downstream")
    assert fault.inject().targets == (link,)
    slow = best_ping(stack, link)
    assert slow >= base + 350, (base, slow)
    fault.heal()
    after = best_ping(stack, link)
    assert after < base + 200 and no_toxics(stack), (base, after)


GET_BIG = "GET big|"
BIG_REPLY = BIG + len(f"${BIG}\r\n") + 2


@pytest.mark.parametrize("name, params, check", [
    ("bandwidth", {"rate": 2}, lambda r: r["outcome"] == "ok" and r["ms"] >= 1000),
    ("timeout", {"timeout": 0}, lambda r: r["outcome"] == "timeout"),
    ("reset-peer", {"timeout": 0, "direction": "upstream"}, lambda r: r["outcome"] in ("reset", "closed")),
    ("slicer", {"average_size": 100, "size_variation": 10, "delay": 30000},
     lambda r: r["outcome"] == "ok" and r["pieces"] >= 10 and r["ms"] >= 300),
    ("limit-data", {"bytes": 100}, lambda r: r["outcome"] == "closed" and r["got"] <= 100),
    ("link-down", {}, lambda r: r["outcome"] in ("refused", "closed", "reset")),
])
def test_link_fault_acts_and_heals(stack, name, params, check):
    link = "api-redis1"
    fault = make(stack, name, [link], **params)
    fault.inject()
    seen = through_proxy(stack, link, GET_BIG, BIG_REPLY, wait=2.5)
    assert check(seen), seen
    fault.heal()
    healed = through_proxy(stack, link, GET_BIG, BIG_REPLY)
    assert healed["outcome"] == "ok" and healed["ms"] < 500 and no_toxics(stack), healed


def test_slow_close_holds_the_close_back(stack):
    link = "api-redis1"
    fault = make(stack, "slow-close", [link], delay=1500)
    fault.inject()
    seen = through_proxy(stack, link, "QUIT|", 0, wait=5)
    assert seen["outcome"] == "closed" and seen["ms"] >= 1400, seen
    fault.heal()
    assert through_proxy(stack, link, "QUIT|", 0)["ms"] < 500 and no_toxics(stack)


# ---------------------------------------------------------------------------------------------- deploys

def deployed(stack, node) -> dict:
    c = stack.container(node)
    c.reload()
    return dict(e.split("=", 1) for e in c.attrs["Config"]["Env"])


def test_deploy_then_rollback_and_rolling_deploy(stack):
    ctx = FaultContext(stack, step="t-deploy", wait_timeout=60)
    deploy = get_fault("deploy")(ctx, ["redis2"], {"switches": "slow-ack,drop-dlq"})
    deploy.inject()
    assert deployed(stack, "redis2")["CHAOS_SWITCHES"] == "slow-ack,drop-dlq"
    rolling = get_fault("rolling-deploy")(ctx, ["redis2", "sentinel1"], {"env": {"EXTRA": "1"}, "gap": 0.2})
    rolling.inject()
    assert deployed(stack, "redis2")["EXTRA"] == "1" and deployed(stack, "redis2")["CHAOS_SWITCHES"]
    assert deployed(stack, "sentinel1")["EXTRA"] == "1"
    rollback = get_fault("rollback")(ctx, ["redis2"], {})
    rollback.inject()  # back to the first deploy's env
    assert "EXTRA" not in deployed(stack, "redis2") and deployed(stack, "redis2")["CHAOS_SWITCHES"]
    rolling.heal()  # redis2 was already rolled back: only sentinel1 is
    assert "EXTRA" not in deployed(stack, "sentinel1")
    deploy.heal()
    assert "CHAOS_SWITCHES" not in deployed(stack, "redis2")
    assert ctx.deploys == {"redis2": [], "sentinel1": []}


# ---------------------------------------------------------------------------------------------- runner

def test_runner_records_and_reports_coverage(stack, tmp_path):
    schedule = Schedule.from_data([
        {"at": 0, "fault": "latency", "targets": ["workers:redis-primary"], "params": {"latency": 100},
         "duration": 1},
        {"at": 0, "fault": "pause", "targets": ["redis-replica"], "duration": 1},
        {"at": 0.5, "fault": "rollback", "targets": ["redis2"]},  # nothing deployed: hits nothing
    ])
    with HistoryWriter(tmp_path / "h.jsonl") as history:
        report = Runner(stack, schedule, history).run()
    assert report.all_healed and not report.interrupted
    assert [(c["fault"], c["targets"]) for c in report.coverage] == \
        [("latency", ["workers-redis1"]), ("pause", ["redis2"])]
    assert report.coverage[1]["roles"] == {"redis2": "redis"}
    assert [s.fault for s in report.missed] == ["rollback"]
    ops = [(o.type, o.value["action"], o.value["step"]) for o in load_history(tmp_path / "h.jsonl")]
    for step in ("1", "2"):
        assert [o for o in ops if o[2] == step] == [("invoke", "inject", step), ("ok", "inject", step),
                                                    ("invoke", "heal", step), ("ok", "heal", step)]
    assert [o for o in ops if o[2] == "3"] == [("invoke", "inject", "3"), ("fail", "inject", "3")]
    assert status(stack, "redis2") == "running" and no_toxics(stack)


def test_target_modes_pick_with_the_seed_and_the_history_names_the_picked(stack, tmp_path):
    from faults.roles import resolve_nodes

    schedule = Schedule.from_data([
        {"at": 0, "fault": "pause", "targets": ["minority:redis"], "duration": 1},
        {"at": 0, "fault": "pause", "targets": ["one:rabbitmq"], "duration": 1},
    ], stack.topology)
    with HistoryWriter(tmp_path / "h.jsonl") as history:
        report = Runner(stack, schedule, history).run()
    assert report.all_healed and not report.interrupted
    injected = {o.value["step"]: o.value for o in load_history(tmp_path / "h.jsonl")
                if o.type == "ok" and o.value["action"] == "inject"}
    redis = injected["1"]["effect"]["picks"][0]
    assert redis["target"] == "minority:redis" and redis["from"] == ["redis1", "redis2"]
    assert len(redis["picked"]) == 1 and injected["1"]["targets"] == redis["picked"]
    assert injected["2"]["effect"]["picks"] == [{"target": "one:rabbitmq", "from": ["rmq1"], "picked": ["rmq1"]}]
    # The pick is the seed's: resolving again with the run's seed and the step picks the same node.
    assert resolve_nodes(stack, ["minority:redis"], seed=f"{stack.seed}:1") == redis["picked"]
    sys.stderr.write(f"seed {stack.seed}: minority:redis picked {redis['picked']}\n")
    assert all(status(stack, n) == "running" for n in ("redis1", "redis2", "rmq1"))


def test_runner_heals_everything_when_an_exception_stops_it(stack):
    schedule = Schedule.from_data([
        {"at": 0, "fault": "pause", "targets": ["redis2"], "duration": 60},
        {"at": 0, "fault": "latency", "targets": ["api"], "params": {"latency": 50}, "duration": 60},
        {"at": 0.2, "fault": "kill", "targets": ["sentinel1"], "duration": 60},
        {"at": 30, "fault": "timeout", "targets": ["api"], "duration": 5},
    ])

    def progress(line):
        if "step 3: kill took effect" in line:
            raise RuntimeError("boom mid-schedule")

    runner = Runner(stack, schedule, progress=progress)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="boom"):
        runner.run()
    assert time.monotonic() - started < 30
    assert [r.heal for r in runner.records] == ["ok", "ok", "ok", "pending"]
    assert status(stack, "redis2") == "running" and status(stack, "sentinel1") == "running"
    assert no_toxics(stack)


def test_sigint_to_a_runner_process_heals_everything(stack, tmp_path):
    path = Schedule.from_data([
        {"at": 0, "fault": "pause", "targets": ["redis2"], "duration": 120},
        {"at": 0, "fault": "latency", "targets": ["workers"], "params": {"latency": 200}},
        {"at": 0, "fault": "partition", "targets": ["redis", "sentinel"], "params": {"node": "redis-replica"},
         "duration": 120},
        {"at": 100, "fault": "kill", "targets": ["redis1"], "duration": 5},
    ]).save(tmp_path / "s.yaml")
    history = tmp_path / "h.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.runner", str(path), "--run-id", stack.run_id, "--topology", "small",
         "--history", str(history)], stderr=subprocess.PIPE, text=True, env=dict(os.environ),
        # SIGINT as a terminal gives it: a parent started in the background (`cmd &` in a script) ignores
        # SIGINT, the child inherits that, and Python then installs no KeyboardInterrupt handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        def injected() -> tuple[bool, str]:
            assert proc.poll() is None, proc.stderr.read()
            ops = load_history(history) if history.exists() else []
            done = {o.value["step"] for o in ops if o.type == "ok" and o.value["action"] == "inject"}
            return done == {"1", "2", "3"}, f"injected {sorted(done)}"

        health.wait_for("the runner to inject steps 1-3", injected, time.monotonic() + 60)
        assert status(stack, "redis2") == "paused" and not no_toxics(stack)
        helpers = stack.client.containers.list(filters={"label": ["chaos-harness.kind=helper",
                                                                  f"chaos-harness.run={stack.run_id}"]})
        assert helpers
        proc.send_signal(signal.SIGINT)
        try:
            _, said = proc.communicate(timeout=90)  # read as it comes: a full stderr pipe would stall the runner
        except subprocess.TimeoutExpired:
            proc.kill()
            _, said = proc.communicate()
            raise AssertionError(f"the runner did not exit within 90s of SIGINT; it said:\n{said[-6000:]}") from None
        assert proc.returncode == 130, said
    finally:
        if proc.poll() is None:
            proc.kill()
    ops = load_history(history)
    healed = {o.value["step"] for o in ops if o.type == "ok" and o.value["action"] == "heal"}
    assert healed == {"1", "2", "3"}
    assert status(stack, "redis2") == "running" and status(stack, "redis1") == "running" and no_toxics(stack)
    assert not stack.client.containers.list(all=True, filters={"label": ["chaos-harness.kind=helper",
                                                                         f"chaos-harness.run={stack.run_id}"]})
    code, out = stack.exec("redis2", ["redis-cli", "-h", "redis1", "ping"])
    assert "PONG" in out


def test_sweep_removes_only_what_dead_runners_left(stack):
    from faults.partition import start_helper
    from faults.sweep import sweep

    ctx = FaultContext(stack, step="t-sweep")
    with proxy_client(stack) as api:
        api.add_toxic("api-redis2", "latency", name="chaos.1-0.7.latency.downstream", latency=10)
        api.add_toxic("api-redis2", "latency", name=f"chaos.{ctx.owner_tag}.8.latency.downstream", latency=10)
        api.add_toxic("api-redis2", "latency", name="someone-elses", stream="upstream", latency=10)
    dead = start_helper(ctx, "redis2", "CHAOS-PDEAD")
    dead_labels = {**dead.labels}
    dead.remove(force=True)
    dead_labels["chaos-harness.fault-owner"] = "1-0"  # pid 1 with another start time: a dead runner
    dead = stack.client.containers.run(dead.image.id, ["sleep", "infinity"], detach=True, labels=dead_labels,
                                       cap_add=["NET_ADMIN"], network_mode=f"container:{stack.container('redis2').id}")
    live = start_helper(ctx, "redis2", "CHAOS-PLIVE")
    removed = sweep(stack.client)
    assert "api-redis2/chaos.1-0.7.latency.downstream" in removed and dead.name in removed
    with proxy_client(stack) as api:
        left = sorted(t["name"] for t in api.toxics("api-redis2"))
        assert left == sorted([f"chaos.{ctx.owner_tag}.8.latency.downstream", "someone-elses"])
        api.remove_toxic("api-redis2", left[0])
        api.remove_toxic("api-redis2", "someone-elses")
    live.reload()
    assert live.status == "running"
    live.remove(force=True)
