"""What the plugin leaves for people and CI after chaos runs: test-case properties in
--junitxml, run.json beside each run, index.html at the report root. The stack and the run are
stood in for (no Docker): the run writes a synthetic report directory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = '''
from pathlib import Path

import pytest

import harness.scenario
from harness.history import load_history
from harness.scenario import RunResult, safe_name
from harness.verdict import check
from tests.report_runs import write_run


def fake_run_scenario(stack, scenario, report_root, *, seed=0, progress=None):
    run_dir = write_run(Path(report_root) / safe_name(scenario.name), seconds=None)
    return RunResult(scenario, check(load_history(run_dir / "history.jsonl")), run_dir, 12.5, [], {})


harness.scenario.run_scenario = fake_run_scenario


@pytest.fixture(scope="session")
def chaos_stack():
    return None
'''

TEST = '''
"""Workers drop messages."""

from harness.scenario import Scenario


def test_vulnerable(chaos_run, chaos_check):
    chaos_check(chaos_run(Scenario(name="x")), expect={"lost"})
'''


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    here = tmp_path_factory.mktemp("suite")
    (here / "conftest.py").write_text(CONFTEST)
    (here / "test_incident.py").write_text(textwrap.dedent(TEST))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--junitxml=out.xml",
         "--chaos-report-dir=reports", "test_incident.py"],
        cwd=here, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return here, result


def test_junit_properties_of_a_chaos_test(session):
    here, _ = session
    case = ET.parse(here / "out.xml").getroot().find(".//testcase[@name='test_vulnerable']")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    run_dir = here / "reports" / "test_incident.py_test_vulnerable"
    assert props == {"chaos_group": "Workers drop messages", "chaos_variant": "vulnerable", "chaos_seconds": "12.5",
                     "chaos_verdict": "invalid", "chaos_violations": "duplicated,lost",
                     "chaos_report": str(Path("reports") / run_dir.name / "report.html"),
                     "chaos_replay": f"chaos-harness replay reports/{run_dir.name}/scenario.json"}


def test_run_facts_and_index_at_the_end(session):
    here, result = session
    run_dir = here / "reports" / "test_incident.py_test_vulnerable"
    assert '"group": "Workers drop messages"' in (run_dir / "run.json").read_text()
    index = (here / "reports" / "index.html").read_text()
    assert "test_incident.py::test_vulnerable" in index and "Workers drop messages" in index
    assert f"index: {here.resolve() / 'reports' / 'index.html'}" in result.stdout


TEST_TWO = '''
"""Workers drop messages."""

import os
from pathlib import Path

from harness.scenario import Scenario


def test_vulnerable(chaos_run, chaos_check):
    Path(f"ns-vulnerable").write_text(os.environ.get("CHAOS_NAMESPACE", ""))
    chaos_check(chaos_run(Scenario(name="x")), expect={"lost"})


def test_hardened(chaos_run, chaos_check):
    Path(f"ns-hardened").write_text(os.environ.get("CHAOS_NAMESPACE", ""))
    chaos_check(chaos_run(Scenario(name="y")), expect={"lost"})
'''


def test_under_xdist_each_worker_has_its_namespace_and_report_subdirectory_and_one_index_merges_them(tmp_path):
    pytest.importorskip("xdist")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_incident.py").write_text(textwrap.dedent(TEST_TWO))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "CHAOS_NAMESPACE": "suite"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "2", "--chaos-report-dir=reports", "test_incident.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    namespaces = {(tmp_path / f"ns-{v}").read_text() for v in ("vulnerable", "hardened")}
    assert namespaces <= {"suite-gw0", "suite-gw1"}, namespaces
    runs = sorted(p.relative_to(tmp_path / "reports").as_posix() for p in (tmp_path / "reports").glob("gw*/*")
                  if p.is_dir())
    assert len(runs) == 2 and all(r.split("/")[0] in ("gw0", "gw1") for r in runs), runs
    index = (tmp_path / "reports" / "index.html").read_text()
    assert all(f"href='{r}/report.html'" in index for r in runs), runs
    # the controller's summary lists both workers' runs
    # the controller's summary has both workers' runs in one table
    table = result.stdout.split("chaos runs", 1)[1].splitlines()
    assert any(line.split() == ["Workers", "drop", "messages", "invalid", "(duplicated,", "lost)", "invalid",
                                "(duplicated,", "lost)", "25"] for line in table), result.stdout


def test_docker_hosts_refuse_a_remote_plain_tcp_daemon(tmp_path):
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                             "--chaos-docker-hosts", "unix:///run/a.sock,ssh://me@far,tcp://far:2375"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "'tcp://far:2375': a remote daemon over plain tcp:// is not supported" in result.stderr, result.stderr
    assert "use ssh://far" in result.stderr and "Traceback" not in result.stderr, result.stderr
