"""User mistakes that involve Docker: one clear line, a non-zero exit, nothing left running."""

from __future__ import annotations

import os
import secrets
import socket

import pytest

from stack import cleanup
from stack.docker_api import docker_client
from tests.cli_run import run_cli, single_error_line

pytestmark = pytest.mark.chaos


def leftovers(ns: str) -> list:
    client = docker_client()
    label = {"label": f"{cleanup.LABEL_NAMESPACE}={ns}"}
    return client.containers.list(all=True, filters=label) + client.networks.list(filters=label)


def test_port_already_in_use_is_one_line_and_leaves_nothing():
    ns = "test-cli-" + secrets.token_hex(3)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("up", "--topology", "small", "--no-services", "--port-base", str(port),
                         env={"CHAOS_NAMESPACE": ns})
    assert f"port 127.0.0.1:{port} is already in use" in single_error_line(result)
    assert leftovers(ns) == []


def test_debootstrap_missing_is_one_line(tmp_path):
    # A suite nobody built forces a base build; a PATH without debootstrap makes it impossible.
    env = {"CHAOS_DEBIAN_SUITE": "chaos-test-" + secrets.token_hex(3), "PATH": str(tmp_path),
           "CHAOS_NAMESPACE": "test-cli-" + secrets.token_hex(3)}
    line = single_error_line(run_cli("images", "build", env=env))
    assert "debootstrap is not installed" in line
