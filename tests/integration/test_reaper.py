"""A pytest session SIGKILLed in the middle of a chaos run leaves nothing behind, with no command run.

The child session runs one chaos test on the small stack whose schedule partitions Redis (a helper
container holding iptables rules) and puts latency on a link (a toxic in the run's proxy). As soon as
both are in place, the child's whole process group gets SIGKILL. Within 30 s its reaper must have
removed every container (nodes, helper, proxy with its toxics) and network of that run, and nobody
runs `clean` or `up`. A run whose owner still lives, in the same namespace, must survive its reaper.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from faults.toxiproxy.client import ToxiproxyClient
from harness.errors import HarnessError
from stack import cleanup
from stack.topology import PROXY_API_PORT
from tests.child_lines import wait_for_line
from tests.integration.test_kill_and_clean import namespace_resources

pytestmark = pytest.mark.chaos

CHILD_TEST = textwrap.dedent('''
    import pytest
    from harness.scenario import Scenario, WorkloadSpec

    @pytest.mark.chaos
    def test_long_run(chaos_run):
        chaos_run(Scenario(name="killed-midway", workload=WorkloadSpec(clients=2, rate=10, duration_s=600),
                           schedule=[{"at": 1, "fault": "partition", "targets": ["redis", "sentinel"],
                                      "params": {"node": "redis-replica"}, "duration": 500},
                                     {"at": 1, "fault": "latency", "targets": ["workers-sink"],
                                      "params": {"latency": 50}, "duration": 500}]))
''')

LIVE_OWNER = ("from harness.progress import show_progress; show_progress(); from stack.stack import Stack; "
              "Stack('small', with_services=False).up(); input()")
REAP_WITHIN_S = 30.0


def wait_for(what: str, probe, deadline_s: float, child: subprocess.Popen | None = None, log=None):
    """`probe()`'s first true value; fails when the child ends first (with the end of its `log` file, if
    given) or when the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = probe()
        if value:
            return value
        if child is not None and child.poll() is not None:
            pytest.fail(f"the child ended (exit {child.returncode}) before {what}"
                        + (":\n" + log.read_text()[-3000:] if log else ""))
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {deadline_s:.0f}s")
        time.sleep(0.5)


def helpers_and_toxics(ns: str) -> tuple[list, list]:
    containers, _ = namespace_resources(ns)
    helpers = [c for c in containers if c.labels.get(cleanup.LABEL_KIND) == "helper"]
    toxics = []
    for proxy in (c for c in containers if c.labels.get(cleanup.LABEL_NODE) == "proxy" and c.status == "running"):
        binding = (proxy.attrs["NetworkSettings"]["Ports"] or {}).get(f"{PROXY_API_PORT}/tcp")
        if not binding:
            continue
        try:
            with ToxiproxyClient(f"http://127.0.0.1:{binding[0]['HostPort']}", timeout=3) as api:
                toxics += [t["name"] for spec in api.proxies().values() for t in spec.get("toxics", [])
                           if t["name"].startswith("chaos.")]
        except HarnessError:  # a proxy still starting: it holds no toxic yet
            continue
    return helpers, toxics


def runs_of(ns: str) -> set[str]:
    containers, networks = namespace_resources(ns)
    return ({c.labels[cleanup.LABEL_RUN] for c in containers}
            | {n.attrs["Labels"][cleanup.LABEL_RUN] for n in networks})


def test_a_sigkilled_session_is_reaped_within_30s(tmp_path, monkeypatch):
    ns = "test-reaper-" + secrets.token_hex(3)
    monkeypatch.setenv("CHAOS_NAMESPACE", ns)
    env = dict(os.environ, CHAOS_NAMESPACE=ns)
    env.pop("CHAOS_REAPER", None)
    (tmp_path / "test_child.py").write_text(CHILD_TEST)
    live = subprocess.Popen([sys.executable, "-c", LIVE_OWNER], env=env, stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    child = None
    try:
        # its stack fully up before the child starts: no race on the cores
        wait_for_line(live.stderr, lambda line: "topology up" in line, 300, "saying its stack is up", live)
        live_run = runs_of(ns)
        assert len(live_run) == 1
        with open(tmp_path / "child.log", "w") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--chaos-topology", "small",
                 "--chaos-report-dir", str(tmp_path / "reports"), "--rootdir", str(tmp_path),
                 str(tmp_path / "test_child.py")],
                env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        helpers, toxics = wait_for("partition helper and toxic in the child's run",
                                   lambda: (lambda h, t: (h, t) if h and t else None)(*helpers_and_toxics(ns)),
                                   420, child)
        child_runs = runs_of(ns) - live_run
        assert len(child_runs) == 1, (child_runs, live_run)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        killed = time.monotonic()

        def child_run_gone():
            return not (runs_of(ns) & child_runs)

        wait_for("removal of the killed session's run", child_run_gone, REAP_WITHIN_S)
        took = time.monotonic() - killed
        assert took <= REAP_WITHIN_S
        assert runs_of(ns) == live_run, "the reaper removed a run whose owner lives"
        assert helpers_and_toxics(ns) == ([], []), "helpers or toxics left"
    finally:
        if child is not None and child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        # The live owner ends without taking its stack down: its own reaper must remove it too.
        live.stdin.write("\n")
        live.stdin.close()
        live.wait(timeout=60)
    wait_for("removal of the live owner's run after it exited", lambda: not runs_of(ns), REAP_WITHIN_S)
    assert namespace_resources(ns) == ([], [])
