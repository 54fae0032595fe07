"""User mistakes that need no Docker get one clear line and a non-zero exit."""

from __future__ import annotations

import socket

from tests.cli_run import run_cli, single_error_line


def test_unknown_topology():
    line = single_error_line(run_cli("up", "--topology", "huge"))
    assert "unknown topology 'huge'" in line and "default" in line and "small" in line


def test_docker_daemon_not_reachable():
    with socket.socket() as sock:  # a port where nothing answers
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_cli("status", env={"DOCKER_HOST": f"tcp://127.0.0.1:{port}"}, timeout=60)
    assert "Docker daemon not reachable at tcp://127.0.0.1" in single_error_line(result)


def test_check_of_a_missing_history_file(tmp_path):
    line = single_error_line(run_cli("check", str(tmp_path / "nope.jsonl")))
    assert "nope.jsonl" in line
