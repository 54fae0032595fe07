"""`stack.stopping.stop`: SIGTERM, the grace, then SIGKILL, and an honest account of how a container ended.

Plain containers of the base image (no stack): one that exits on SIGTERM, one that ignores it (a shell
as PID 1 with TERM trapped to nothing), and a crash on purpose (grace 0).
"""

from __future__ import annotations

import pytest

from stack import cleanup
from stack.docker_api import docker_client
from stack.images import ensure_images
from stack.stopping import stop

pytestmark = pytest.mark.chaos

HONOURS_TERM = "trap 'exit 0' TERM; while true; do sleep 0.1; done"
IGNORES_TERM = "trap '' TERM; while true; do sleep 0.1; done"


@pytest.fixture
def start():
    client = docker_client()
    base = ensure_images(client)["base"]
    started = []

    def run(script: str):
        labels = {**cleanup.owner_labels(False), cleanup.LABEL_RUN: "stopping-test", cleanup.LABEL_KIND: "node"}
        container = client.containers.run(base, ["sh", "-c", script], detach=True, labels=labels)
        started.append(container)
        return container

    yield run
    for container in started:
        container.remove(force=True)


def test_a_container_that_honours_sigterm_exits_within_its_grace(start):
    stopped = stop(start(HONOURS_TERM), grace=10)
    assert stopped.exit_code == 0 and not stopped.killed and stopped.graceful
    assert stopped.seconds < 5


def test_a_container_that_ignores_sigterm_is_killed_after_its_grace(start):
    stopped = stop(start(IGNORES_TERM), grace=1)
    assert stopped.killed and stopped.exit_code == 137 and not stopped.graceful
    assert 1.0 <= stopped.seconds < 10


def test_grace_zero_is_a_crash(start):
    stopped = stop(start(HONOURS_TERM), grace=0)
    assert stopped.killed and stopped.exit_code == 137 and stopped.seconds < 5


def test_an_exited_container_is_reported_as_it_ended(start):
    container = start("exit 3")
    container.wait(timeout=30)
    stopped = stop(container, grace=10)
    assert not stopped.was_running and stopped.exit_code == 3 and not stopped.killed
