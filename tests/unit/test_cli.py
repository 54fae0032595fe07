"""User mistakes that need no Docker get one clear line and a non-zero exit."""

from __future__ import annotations

import socket

import pytest

from tests.cli_run import run_cli, single_error_line


def _dead_docker() -> dict[str, str]:
    """A DOCKER_HOST where nothing answers: a command that reached Docker would say so instead."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return {"DOCKER_HOST": f"tcp://127.0.0.1:{sock.getsockname()[1]}"}


def test_unknown_topology():
    line = single_error_line(run_cli("up", "--topology", "huge"))
    assert "unknown topology 'huge'" in line and "default" in line and "small" in line


def test_docker_daemon_not_reachable():
    result = run_cli("status", env=_dead_docker(), timeout=60)
    assert "Docker daemon not reachable at tcp://127.0.0.1" in single_error_line(result)


def test_check_of_a_missing_history_file(tmp_path):
    line = single_error_line(run_cli("check", str(tmp_path / "nope.jsonl")))
    assert "nope.jsonl" in line


def test_replay_refuses_a_bad_schedule_before_touching_docker(tmp_path):
    import json
    import time

    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"at": "x", "fault": "kill", "targets": ["worker1"]}]))
    started = time.monotonic()
    line = single_error_line(run_cli("replay", str(path), "--topology", "small", env=_dead_docker(), timeout=60))
    assert "'at' must be a non-negative number of seconds" in line, line
    assert time.monotonic() - started < 10


def test_replay_refuses_a_deploy_of_an_unknown_node_before_touching_docker(tmp_path):
    import json

    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "x", "deploy": {"worker9": {"CHAOS_SWITCHES": ""}}}))
    line = single_error_line(run_cli("replay", str(path), "--topology", "small", env=_dead_docker(), timeout=60))
    assert "worker9" in line and "small topology lacks" in line, line


def test_replay_refuses_a_bad_workload_before_touching_docker(tmp_path):
    import json

    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "x", "workload": {"rate": "fast"}}))
    line = single_error_line(run_cli("replay", str(path), "--topology", "small", env=_dead_docker(), timeout=60))
    assert "workload rate must be a number above 0" in line, line


def test_report_of_a_missing_directory(tmp_path):
    line = single_error_line(run_cli("report", str(tmp_path / "nope")))
    assert "no report directory at" in line and "nope" in line


def test_report_of_a_directory_without_history(tmp_path):
    (tmp_path / "empty_run").mkdir()
    result = run_cli("report", str(tmp_path))
    assert result.returncode == 3
    assert "holds no run" in single_error_line(result)


def test_report_of_a_malformed_history(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.jsonl").write_text('{"process": "c"}\n')
    result = run_cli("report", str(run))
    assert result.returncode == 3
    assert "malformed history line" in single_error_line(result)


def test_report_redraws_every_run_and_the_index_offline(tmp_path):
    from tests.report_runs import write_run

    write_run(tmp_path / "one")
    write_run(tmp_path / "two")
    result = run_cli("report", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(tmp_path / "one" / "report.html"),
                                     str(tmp_path / "two" / "report.html"),
                                     str(tmp_path / "index.html")]
    assert "Plotly.newPlot" in (tmp_path / "one" / "report.html").read_text()
    assert f"[report] drawing {tmp_path / 'two'}" in result.stderr.splitlines()   # progress, as it goes
    single = run_cli("report", str(tmp_path / "two"))
    assert single.returncode == 0 and single.stdout.split() == [str(tmp_path / "two" / "report.html")]


@pytest.mark.parametrize("args, message", [
    (("--examples", "0"), "--examples must be 1..100000, not 0"),
    (("--shrink-seconds", "-1"), "--shrink-seconds must be 0..86400, not -1.0")])
def test_search_refuses_a_bad_budget_before_touching_docker(args, message):
    line = single_error_line(run_cli("search", "--profile", "nightly", *args, env=_dead_docker(), timeout=60))
    assert message in line, line


def test_a_step_that_took_no_effect_is_said_with_the_verdict(capsys):
    """A soak or replay whose step missed still prints its verdict, and a warning naming the step."""
    from types import SimpleNamespace

    from harness.cli import say_missed

    say_missed(SimpleNamespace(missed=[{"step": "35", "fault": "redis-failover", "error": "timed out"}],
                               coverage=[{}] * 60))
    assert capsys.readouterr().out.splitlines() == [
        "warning: 1 of 61 steps took no effect; the verdict covers the others only",
        "warning: step 35 redis-failover took no effect: timed out (a verdict over faults that hit nothing "
        "proves nothing)"]
    say_missed(SimpleNamespace(missed=[], coverage=[{}] * 3))
    assert capsys.readouterr().out == ""
