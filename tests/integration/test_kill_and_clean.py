"""A run whose process is SIGKILLed half-way leaks nothing: the next `up`, or `clean`, removes it."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys

import pytest

from stack import cleanup
from stack.docker_api import docker_client
from stack.stack import Stack
from tests.child_lines import wait_for_line

pytestmark = pytest.mark.chaos

# The child shows its progress on stderr as the CLI does (the harness logger, see harness.progress).
UP_SCRIPT = ("from harness.progress import show_progress; show_progress(); from stack.stack import Stack; "
             "Stack('small', with_services=False).up(); input()")


def namespace_resources(ns: str) -> tuple[list, list]:
    client = docker_client()
    label = {"label": f"{cleanup.LABEL_NAMESPACE}={ns}"}
    return client.containers.list(all=True, filters=label, ignore_removed=True), client.networks.list(filters=label)


def start_and_kill_midway(ns: str) -> None:
    """Start `up` in a child process and SIGKILL it as soon as it has started its first container."""
    env = dict(os.environ, CHAOS_NAMESPACE=ns, CHAOS_REAPER="0")  # these tests are about the next up and clean
    child = subprocess.Popen([sys.executable, "-c", UP_SCRIPT], env=env, stdin=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for_line(child.stderr, lambda line: line.startswith("[stack] started"), 300,
                      "saying it started a container", child)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    containers, networks = namespace_resources(ns)
    assert containers and networks, "the killed run should have left resources for this test to reap"


def test_next_up_reaps_a_sigkilled_run(monkeypatch):
    ns = "test-kill-" + secrets.token_hex(3)
    monkeypatch.setenv("CHAOS_NAMESPACE", ns)
    start_and_kill_midway(ns)
    leaked = {c.labels[cleanup.LABEL_RUN] for c in namespace_resources(ns)[0]}
    with Stack("small", with_services=False) as stack:
        runs = {c.labels[cleanup.LABEL_RUN] for c in namespace_resources(ns)[0]}
        assert runs == {stack.run_id} and not leaked & runs
    assert namespace_resources(ns) == ([], [])


def test_clean_removes_a_sigkilled_run(monkeypatch):
    ns = "test-kill-" + secrets.token_hex(3)
    monkeypatch.setenv("CHAOS_NAMESPACE", ns)
    start_and_kill_midway(ns)
    result = subprocess.run([sys.executable, "-m", "harness.cli", "clean"], capture_output=True, text=True,
                            env=dict(os.environ, CHAOS_NAMESPACE=ns), timeout=120)
    assert result.returncode == 0, result.stderr
    assert namespace_resources(ns) == ([], [])
