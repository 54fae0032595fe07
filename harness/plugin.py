"""The pytest plugin: a thin translation between pytest and the harness library.

Options (each with an ini twin): --chaos-topology, --chaos-stack, --chaos-seed, --chaos-keep, --chaos-report-dir,
--chaos-replay. Fixtures: `chaos_stack` (one stack per session, reset before each scenario),
`chaos_run` (run a `Scenario`, write its history, schedule and verdict under the report directory),
`chaos_check` (fail the test with the verdict's human summary and the command that replays it),
`chaos_incident` (run and check a packaged incident: `chaos_incident("zk-blip", "vulnerable")`).
Each run leaves report.html in its directory and its verdict, violations, report and replay
command as test-case properties (`--junitxml`); the session ends with index.html at the root.

Tests marked `chaos` need Docker. Without Docker they are skipped with the reason, except under
CI=true, where a missing Docker is an error: the chaos suite must never pass by not running.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

_docker_problem: list[str | None] = []
RESULTS_KEY = pytest.StashKey[list]()


def pytest_addoption(parser) -> None:
    group = parser.getgroup("chaos", "dispatch chaos harness")
    options = [
        ("--chaos-topology", "chaos_topology", "stack topology: default or small (shipped stack files)", "default"),
        ("--chaos-stack", "chaos_stack", "a stack file of your own (YAML, see docs/design/own-stack.md); "
                                         "overrides --chaos-topology", ""),
        ("--chaos-seed", "chaos_seed", "seed for workloads, proxy randomness and generated schedules", "0"),
        ("--chaos-report-dir", "chaos_report_dir", "where histories, schedules and verdicts are written",
         "chaos-reports"),
        ("--chaos-replay", "chaos_replay", "a schedule or scenario file to replay (see tests marked chaos_replay)",
         ""),
    ]
    for flag, ini, help_text, default in options:
        group.addoption(flag, dest=ini, default=None, help=f"{help_text} (ini: {ini}; default {default!r})")
        parser.addini(ini, help_text, default=default)
    group.addoption("--chaos-docker-hosts", dest="chaos_docker_hosts", default=None,
                    help="comma-separated Docker hosts (unix://..., tcp://127.0.0.1:..., ssh://user@host); under "
                         "pytest-xdist worker i uses host i mod N (ini: chaos_docker_hosts; env: CHAOS_DOCKER_HOSTS)")
    parser.addini("chaos_docker_hosts", "Docker hosts the xdist workers spread over", default="")
    group.addoption("--chaos-keep", dest="chaos_keep", action="store_true", default=None,
                    help="keep the stack up after the session for debugging (ini: chaos_keep)")
    parser.addini("chaos_keep", "keep the stack up after the session", type="bool", default=False)


def option(config, name: str):
    value = config.getoption(name)
    return config.getini(name) if value is None else value


# Libraries whose INFO lines the harness' own probes set off by the dozen (pika logs 17 per
# connection, and every reset opens some): under log_cli they would drown the harness' progress.
QUIET_LOGGERS = ("pika",)


def worker_id(config) -> str | None:
    """The pytest-xdist worker this process is (gw0, gw1, ...), None in a plain run or the controller."""
    return getattr(config, "workerinput", {}).get("workerid")


def docker_hosts(config) -> list[str]:
    """--chaos-docker-hosts (ini, or CHAOS_DOCKER_HOSTS), each checked (`stack.transport`): a local
    socket, a TCP address on this machine, or ssh://[user@]host[:port], whose ports are tunnelled."""
    from stack.transport import check_docker_host

    raw = option(config, "chaos_docker_hosts") or os.environ.get("CHAOS_DOCKER_HOSTS", "")
    hosts = [h.strip() for h in raw.split(",") if h.strip()]
    for host in hosts:
        check_docker_host(host)
    return hosts


def _isolate_worker(config) -> None:
    """Under pytest-xdist each worker is a namespace of its own (its stack, sweep, clean and reaper touch
    only its runs) on its Docker host, and writes its runs under a report subdirectory of its own."""
    wid = worker_id(config)
    if wid is None:
        return
    os.environ["CHAOS_NAMESPACE"] = f"{os.environ.get('CHAOS_NAMESPACE', 'default')}-{wid}"
    hosts = docker_hosts(config)
    if hosts:
        os.environ["DOCKER_HOST"] = hosts[int(wid.removeprefix("gw") or 0) % len(hosts)]


def pytest_configure(config) -> None:
    import logging

    from harness.errors import HarnessError

    config.addinivalue_line("markers", "chaos: needs Docker and brings up the dispatch stack")
    config.stash[RESULTS_KEY] = []
    try:
        if worker_id(config) is None:
            docker_hosts(config)  # a bad list fails once, in the controller, before any worker starts
        _isolate_worker(config)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    for name in QUIET_LOGGERS:
        quiet = logging.getLogger(name)
        if quiet.level == logging.NOTSET:  # unless the user chose a level for it
            quiet.setLevel(logging.WARNING)


def _docker_unavailable() -> str | None:
    if not _docker_problem:
        from harness.errors import HarnessError
        from stack.docker_api import docker_client

        try:
            docker_client(timeout=10)
            _docker_problem.append(None)
        except HarnessError as exc:
            _docker_problem.append(str(exc))
    return _docker_problem[0]


def pytest_runtest_setup(item) -> None:
    if item.get_closest_marker("chaos") is None:
        return
    problem = _docker_unavailable()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"chaos test needs Docker, and CI=true forbids skipping it: {problem}", pytrace=False)
    pytest.skip(f"Docker unavailable: {problem}")


@pytest.fixture(scope="session")
def chaos_stack(request):
    """One stack for the session: brought up once, reset by every scenario run."""
    from harness.errors import HarnessError
    from stack.stack import Stack

    config = request.config
    keep = bool(option(config, "chaos_keep"))
    try:
        stack = Stack(option(config, "chaos_stack") or option(config, "chaos_topology"),
                      seed=int(option(config, "chaos_seed")), detached=keep)  # the file is checked here
    except HarnessError as exc:
        pytest.fail(f"bad stack: {exc}", pytrace=False)
    try:
        stack.up()
    except HarnessError as exc:
        pytest.fail(f"the stack did not come up: {exc}\n{exc.detail}", pytrace=False)
    yield stack
    if keep:
        sys.stderr.write(f"\n[chaos] keeping run {stack.run_id} up: `chaos-harness down {stack.run_id}`\n")
    else:
        stack.down()


@pytest.fixture
def chaos_report_dir(request) -> Path:
    root = Path(option(request.config, "chaos_report_dir"))
    wid = worker_id(request.config)
    if wid is not None:  # merged into the root's index by the controller (reports.index reads gw*/)
        root = root / wid
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def chaos_run(request, chaos_stack, chaos_report_dir):
    """`chaos_run(scenario)` runs it against the session stack and returns a `RunResult`."""
    from harness.scenario import run_scenario, safe_name

    seed = int(option(request.config, "chaos_seed"))

    def run(scenario):
        import dataclasses

        named = dataclasses.replace(scenario, name=safe_name(request.node.nodeid))
        # progress goes through logging (logger "harness"): `-o log_cli=true` shows it live
        result = run_scenario(chaos_stack, named, chaos_report_dir, seed=seed)
        row = _row(request.node, result)
        request.config.stash[RESULTS_KEY].append(row)
        _record_run(request.node, row, result)
        return result

    return run


def replay_command(result) -> str:
    from reports.run import replay_command as command

    return command(result.report_dir)


def _record_run(item, row, result) -> None:
    """The run's facts for the index (run.json beside its files) and, as test-case properties,
    for CI servers reading `--junitxml`: verdict, violated invariants, report and replay."""
    import json

    from reports.run import REPORT, RUN_FACTS

    (result.report_dir / RUN_FACTS).write_text(json.dumps(
        {"test": item.nodeid, "group": row.group, "variant": row.variant,
         "seconds": result.seconds, "replay": replay_command(result)}, indent=2))
    item.user_properties += [("chaos_group", row.group), ("chaos_variant", row.variant),
                             ("chaos_seconds", f"{result.seconds:.1f}"),
                             ("chaos_verdict", result.status),
                             ("chaos_violations", ",".join(sorted(result.violations()))),
                             ("chaos_report", str(result.report_dir / REPORT)),
                             ("chaos_replay", replay_command(result))]


@pytest.fixture
def chaos_check():
    """`chaos_check(result)` fails the test with the verdict's summary unless it is valid;
    `chaos_check(result, expect={"lost"})` requires exactly those violations instead."""

    def check(result, expect: set[str] | None = None) -> None:
        verdict = result.verdict
        found = result.violations()
        detail = f"{verdict.summary()}\nreport: {result.report_dir}\nreplay: {replay_command(result)}"
        if result.missed:
            # A verdict over faults that hit nothing proves nothing, whichever way it went.
            steps = ", ".join(f"step {m.get('step')} {m.get('fault')}: {m.get('error') or 'no effect'}"
                              for m in result.missed)
            pytest.fail(f"fault schedule did not take effect ({steps})\n{detail}", pytrace=False)
        if expect is None:
            if verdict.status != "valid":
                pytest.fail(f"chaos verdict {verdict.status}\n{detail}", pytrace=False)
        elif not expect <= found:
            pytest.fail(f"expected the harness to find {sorted(expect)}, it found {sorted(found) or 'nothing'} "
                        f"(verdict {verdict.status})\n{detail}", pytrace=False)

    return check


@pytest.fixture
def chaos_incident(chaos_stack, chaos_run, chaos_check):
    """`chaos_incident("zk-blip", "vulnerable")` runs a packaged incident (harness/incidents) on the session
    stack, bound by its stack file's x-chaos.incidents (`bind=`, `inputs=` override), and checks it: the
    vulnerable variant must show the incident's violations, the hardened one none. Returns the `RunResult`."""
    from harness.errors import HarnessError
    from harness.incidents import build

    def run(name: str, variant: str = "hardened", *, bind: dict[str, str] | None = None,
            inputs: dict[str, dict[str, str]] | None = None):
        try:
            scenario, expect = build(name, chaos_stack.topology, variant, bind=bind, inputs=inputs)
        except HarnessError as exc:
            pytest.fail(str(exc), pytrace=False)
        result = chaos_run(scenario)
        chaos_check(result, expect=set(expect) if variant == "vulnerable" else None)
        return result

    return run


def _row(item, result):
    """An incident module's runs are named after its title; `test_vulnerable`/`test_hardened` are variants."""
    from reports.table import RunRow

    title = (getattr(item.module, "__doc__", None) or "").strip().splitlines()
    variant = item.name.removeprefix("test_") if item.name in ("test_vulnerable", "test_hardened") else ""
    group = title[0].rstrip(".") if variant and title else item.nodeid
    return RunRow(group, variant, result.status, tuple(sorted(result.violations())), result.seconds)


def pytest_runtest_logreport(report) -> None:
    """In the pytest-xdist controller: the chaos runs of every worker, from their test-case properties."""
    config = _CONTROLLER.get("config")
    if config is None or report.when != "call":
        return
    props = dict(report.user_properties)
    if "chaos_verdict" in props:
        from reports.table import RunRow

        config.stash[RESULTS_KEY].append(RunRow(
            props.get("chaos_group") or report.nodeid, props.get("chaos_variant", ""), props["chaos_verdict"],
            tuple(v for v in props.get("chaos_violations", "").split(",") if v), float(props.get("chaos_seconds", 0))))


_CONTROLLER: dict = {}


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session) -> None:
    """Listen to the workers' reports only in an xdist controller (its own process runs no test)."""
    config = session.config
    if worker_id(config) is None and config.pluginmanager.has_plugin("dsession"):
        _CONTROLLER["config"] = config


def pytest_unconfigure(config) -> None:
    if _CONTROLLER.get("config") is config:
        _CONTROLLER.clear()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    from reports.table import incident_table

    rows = config.stash.get(RESULTS_KEY, [])
    if rows:
        terminalreporter.section("chaos runs")
        for line in incident_table(rows):
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"index: {_write_index(config)}")


def _write_index(config) -> str:
    from harness.errors import HarnessError
    from reports.index import write_index

    try:
        return str(write_index(Path(option(config, "chaos_report_dir"))).resolve())
    except HarnessError as exc:   # the runs' own pages stand; say why there is no index
        return f"not drawn: {exc}"


# ---------------------------------------------------------------------------------------------- generated schedules
# --chaos-replay FILE runs only the tests marked `chaos_replay` (tests/generated), on that file;
# without it those tests are skipped. --chaos-profile picks the search profile (harness.search.PROFILES).

@pytest.hookimpl(specname="pytest_addoption")
def pytest_addoption_generated(parser) -> None:
    group = parser.getgroup("chaos", "dispatch chaos harness")
    group.addoption("--chaos-profile", dest="chaos_profile", default=None,
                    help="schedule search profile: ci (few short schedules) or nightly (many, up to 10 steps "
                         "over 60 s, every fault) (ini: chaos_profile; default 'ci')")
    parser.addini("chaos_profile", "schedule search profile: ci or nightly", default="ci")


@pytest.hookimpl(specname="pytest_configure")
def pytest_configure_generated(config) -> None:
    config.addinivalue_line("markers", "chaos_replay: runs the scenario file given with --chaos-replay")


@pytest.hookimpl(specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_generated(config, items) -> None:
    # Without a file the replay test has nothing to run: deselect it rather than report a skipped
    # chaos test (in CI a skipped chaos test must mean something went wrong).
    replaying = bool(option(config, "chaos_replay"))
    keep = [item for item in items if (item.get_closest_marker("chaos_replay") is not None) == replaying]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


@pytest.fixture
def chaos_replay_file(request) -> Path:
    path = Path(option(request.config, "chaos_replay"))
    if not path.is_file():
        pytest.fail(f"--chaos-replay: no such file {path}", pytrace=False)
    return path


# ---------------------------------------------------------------------------------------------- soak runs
# `chaos_soak(...)` draws a nemesis package over a long run (harness.soak) and runs it on the session
# stack; its length comes from --chaos-soak-duration. tests/soak holds the nightly soak (not in testpaths).

@pytest.hookimpl(specname="pytest_addoption")
def pytest_addoption_soak(parser) -> None:
    group = parser.getgroup("chaos", "dispatch chaos harness")
    group.addoption("--chaos-soak-duration", dest="chaos_soak_duration", default=None,
                    help="how long chaos_soak runs (2h, 30m, 90s) (ini: chaos_soak_duration; default '30m')")
    parser.addini("chaos_soak_duration", "how long chaos_soak runs", default="30m")


@pytest.hookimpl(specname="pytest_configure")
def pytest_configure_soak(config) -> None:
    config.addinivalue_line("markers", "soak: a long soak run (tests/soak; not in the default test paths)")


@pytest.fixture
def chaos_soak(request, chaos_run, chaos_stack, chaos_report_dir):
    """`chaos_soak(faults=[...], interval=(10, 30), window=(5, 15), overlap=False, duration_s=None)` draws a
    soak schedule with the session's seed, saves it, runs it with the workload all along; a `RunResult`."""
    import json

    from harness.scenario import Scenario, WorkloadSpec, safe_name
    from harness.soak import DEFAULT_FAULTS, parse_duration, soak_schedule

    seed = int(option(request.config, "chaos_seed"))

    def soak(faults=DEFAULT_FAULTS, interval=(10, 30), window=(5, 15), overlap=False, duration_s=None,
             rate=20.0, clients=4, drain_s=90.0):
        duration = duration_s or parse_duration(option(request.config, "chaos_soak_duration"),
                                                "--chaos-soak-duration")
        steps = soak_schedule(chaos_stack.topology, list(faults), duration, interval, window, seed=seed,
                              overlap=overlap)
        scenario = Scenario(name="soak", schedule=steps, drain_s=drain_s,
                            workload=WorkloadSpec(clients=clients, rate=rate, duration_s=duration))
        saved = chaos_report_dir / f"{safe_name(request.node.nodeid)}.scenario.json"
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(scenario.to_data(), indent=2) + "\n")
        return chaos_run(scenario)

    return soak


@pytest.fixture
def chaos_seed(request) -> int:
    return int(option(request.config, "chaos_seed"))


@pytest.fixture
def chaos_profile(request) -> str:
    return option(request.config, "chaos_profile")
