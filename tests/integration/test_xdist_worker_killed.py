"""Under pytest-xdist, a worker SIGKILLed in the middle of a run leaves nothing behind (#17).

A child `pytest -n 2` runs two long chaos tests, one per worker; each worker brings up its own `small`
stack in its own namespace (`<ns>-gw0`, `<ns>-gw1`), on its own Docker host when several are given.
Once both stacks run, worker gw0 alone gets SIGKILL. Within 30 s its reaper must have removed every
container and network of gw0's run from gw0's Docker host, and gw1's run, whose worker lives, must still
be there. Then the whole child session is killed, and gw1's run must go the same way.

The Docker hosts are CHAOS_TEST_DOCKER_HOSTS (comma-separated, as --chaos-docker-hosts takes them; e.g.
this daemon and `scripts/docker2 start`'s) or, by default, the one daemon the tests use.
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

from stack import cleanup
from tests.integration.test_reaper import wait_for

pytestmark = pytest.mark.chaos

CHILD_TEST = textwrap.dedent('''
    import os

    import pytest

    from harness.scenario import Scenario, WorkloadSpec


    @pytest.mark.chaos
    @pytest.mark.parametrize("n", [0, 1])
    def test_long_run(chaos_run, chaos_stack, n):
        # the stack is up (chaos_stack): say which worker this is, its pid and its Docker host
        worker = os.environ["PYTEST_XDIST_WORKER"]
        with open(os.path.join(os.environ["CHILD_DIR"], worker + ".pid"), "w") as out:
            out.write(f"{os.getpid()} {os.environ.get('DOCKER_HOST', '')}")
        chaos_run(Scenario(name=f"long-{n}", workload=WorkloadSpec(clients=1, rate=5, duration_s=600)))
''')
REAP_WITHIN_S = 30.0


def client_for(host: str | None):
    import docker

    return docker.DockerClient(base_url=host, timeout=30) if host else docker.from_env(timeout=30)


def runs_on(host: str | None, ns: str) -> set[str]:
    client = client_for(host)
    try:
        label = {"label": f"{cleanup.LABEL_NAMESPACE}={ns}"}
        containers = client.containers.list(all=True, filters=label, ignore_removed=True)
        networks = client.networks.list(filters=label)
        return ({c.labels[cleanup.LABEL_RUN] for c in containers}
                | {n.attrs["Labels"][cleanup.LABEL_RUN] for n in networks})
    finally:
        client.close()


def test_a_sigkilled_xdist_worker_is_reaped_on_its_own_host_and_the_other_runs_on(tmp_path):
    pytest.importorskip("xdist")
    hosts = [h.strip() for h in os.environ.get("CHAOS_TEST_DOCKER_HOSTS", "").split(",") if h.strip()]
    ns = "test-xdist-kill-" + secrets.token_hex(3)
    env = dict(os.environ, CHAOS_NAMESPACE=ns, CHILD_DIR=str(tmp_path))
    env.pop("CHAOS_REAPER", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    (tmp_path / "test_child.py").write_text(CHILD_TEST)
    log = tmp_path / "child.log"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "load",
               "--max-worker-restart", "0", "--chaos-topology", "small",
               "--chaos-report-dir", str(tmp_path / "reports"), "--rootdir", str(tmp_path),
               str(tmp_path / "test_child.py")]
    if hosts:
        command[command.index("-n"):command.index("-n")] = ["--chaos-docker-hosts", ",".join(hosts)]
    with open(log, "w") as out:
        child = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    try:
        pids = {}
        for worker in ("gw0", "gw1"):
            line = wait_for(f"worker {worker}'s stack up", lambda w=worker: (tmp_path / f"{w}.pid").exists()
                            and (tmp_path / f"{w}.pid").read_text(), 600, child, log)
            pid, _, host = line.partition(" ")
            pids[worker] = (int(pid), host or None)
        if hosts:  # worker i on host i mod N
            assert [pids[w][1] for w in ("gw0", "gw1")] == [hosts[i % len(hosts)] for i in range(2)]
        (pid0, host0), (pid1, host1) = pids["gw0"], pids["gw1"]
        run0, run1 = runs_on(host0, f"{ns}-gw0"), runs_on(host1, f"{ns}-gw1")
        assert len(run0) == 1 and len(run1) == 1, (run0, run1)

        os.kill(pid0, signal.SIGKILL)
        killed = time.monotonic()
        wait_for("removal of the killed worker's run", lambda: not runs_on(host0, f"{ns}-gw0"), REAP_WITHIN_S)
        assert time.monotonic() - killed <= REAP_WITHIN_S
        assert runs_on(host1, f"{ns}-gw1") == run1, "the other worker's run went with the killed one's"
        os.kill(pid1, 0)  # and its worker still runs

        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        wait_for("removal of the second worker's run once the session was killed",
                 lambda: not runs_on(host1, f"{ns}-gw1"), REAP_WITHIN_S)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
    for host in set(hosts) or {None}:
        for worker in ("gw0", "gw1"):
            assert runs_on(host, f"{ns}-{worker}") == set(), f"{ns}-{worker} left on {host or 'the default host'}"
