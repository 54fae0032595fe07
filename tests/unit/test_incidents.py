"""The packaged incidents (harness/incidents): the shipped stack files bind them to the reference app with
the schedules and deploys the catalog has always run; a stack lacking what one needs is refused in one
line naming the incident and what is missing, before anything starts; `x-chaos.incidents` is checked
with file:line errors; `chaos-harness run` lists and refuses without Docker."""

from __future__ import annotations

import textwrap

import pytest

from harness.errors import HarnessError
from harness.incidents import all_incidents, build
from stack.model import load_stack_file, parse_stack, shipped_stack
from stack.topology import RunParams
from tests.cli_run import run_cli, single_error_line
from tests.unit.test_cli import _dead_docker

NAMES = ["broker-drops", "misrouted-deploy", "redis-failover", "sender-deploy", "zk-blip"]


def shipped(name: str):
    return load_stack_file(shipped_stack(name), RunParams(run_id="u", cookie="c"))


def parse(text: str):
    return parse_stack(textwrap.dedent(text), "stack.yaml", RunParams(run_id="u", cookie="c"))


def test_the_registry_holds_the_five_incidents_each_with_its_story():
    incidents = all_incidents()
    assert list(incidents) == NAMES
    for incident in incidents.values():
        assert incident.story.incident and incident.story.fault and incident.story.invariant
        assert incident.expect and "\n" not in incident.line()


# What tests/incidents ran before the incidents moved into the package, written out: the bindings in the
# shipped files must reproduce it exactly, so the verdicts cannot move (broker-drops now also expects the
# health violation the health checker finds: workers healthy while they consume nothing).
BEFORE = {
    "redis-failover": ([{"at": 8, "fault": "redis-failover", "params": {"method": "sentinel"}}],
                       ("worker", "CHAOS_SWITCHES", "redis-sticky-master"), {"lost"}),
    "broker-drops": ([{"at": 8, "fault": "link-down", "targets": ["workers:rabbitmq"], "duration": 6}],
                     ("worker", "CHAOS_SWITCHES", "broker-no-recovery"), {"lost", "health"}),
    "zk-blip": ([{"at": 6, "fault": "link-down", "targets": ["scheduler:zookeeper"], "duration": 14}],
                ("scheduler", "CHAOS_SWITCHES", "zk-unfenced-fanout"), {"unexpected"}),
}


@pytest.mark.parametrize("stack", ["default", "small"])
@pytest.mark.parametrize("name", list(BEFORE))
def test_pre_run_bugs_and_schedules_are_the_catalogs(stack, name):
    topology = shipped(stack)
    schedule, (role, key, switch), expect = BEFORE[name]
    scenario, expected = build(name, topology, "vulnerable")
    assert (scenario.schedule, expected) == (schedule, expect)
    assert scenario.deploy == {node: {key: switch} for node in topology.names(role)}
    hardened, nothing = build(name, topology, "hardened")
    assert (hardened.schedule, hardened.deploy, nothing) == (schedule, {}, frozenset())
    assert scenario.workload == hardened.workload and scenario.drain_s == 35.0
    assert (scenario.workload.campaign_share > 0) == (name == "zk-blip")


def test_deploy_steps_push_the_misconfiguration_and_the_bug():
    topology = shipped("default")
    vulnerable, expect = build("misrouted-deploy", topology, "vulnerable")
    assert vulnerable.deploy == {} and expect == {"lost"}
    assert vulnerable.schedule == [{"at": 6, "fault": "deploy", "targets": ["api"], "duration": 20, "params": {
        "env": {"DISPATCH_ROUTING_KEY": "messages", "CHAOS_SWITCHES": "api-fire-and-forget"}}}]
    hardened, _ = build("misrouted-deploy", topology, "hardened")
    assert hardened.schedule[0]["params"] == {"env": {"DISPATCH_ROUTING_KEY": "messages"}}
    rolling, _ = build("sender-deploy", topology, "vulnerable")
    assert rolling.schedule == [
        {"at": 4, "fault": "rolling-deploy", "targets": ["workers"],
         "params": {"env": {"CHAOS_SWITCHES": "worker-reject-drop"}, "gap": 1.0}, "duration": 22},
        {"at": 12, "fault": "provider-outage", "params": {"fail_rate": 0.4}, "duration": 8}]
    assert build("sender-deploy", topology, "hardened")[0].schedule[0]["params"]["env"] == {}


# A stack of someone else's: its own names for the senders and the scheduler, bound in the file.
OWN = """\
name: notify
services:
  queue: {x-kind: rabbitmq, deploy: {replicas: 1}}
  coord: {x-kind: zookeeper, deploy: {replicas: 1}}
  cache: {x-kind: redis, deploy: {replicas: 2}}
  watch: {x-kind: sentinel, deploy: {replicas: 1}}
  proxy: {x-kind: proxy}
  gateway: {image: notify-gateway:3, ports: [9000]}
  mailer: {image: notify-mailer:3, deploy: {replicas: 2}}
  planner: {image: notify-planner:3}
  provider: {image: recorder:1, ports: [8080]}
x-chaos:
  links:
    out: [queue, cache, watch]
    plan: [coord]
  client:
    node: gateway
    port: 9000
    send: {path: /v1/notify, body: {ref: "{id}", to: "{to}"}}
    campaign: {path: /v1/blast, body: {ref: "{campaign}", to: "{recipients}"}}
  provider: {node: provider, port: 8080}
  incidents:
    slots: {senders: {nodes: mailer, links: out}, leader: {nodes: planner, links: plan}, api: gateway}
    redis-failover: {bug: {MAILER_FLAGS: sticky}}
    broker-drops: {bug: {MAILER_FLAGS: no-reconnect}}
    zk-blip: {bug: {PLANNER_FENCE: "off"}}
"""


def test_an_own_stack_binds_slots_to_its_names():
    topology = parse(OWN)
    broker, _ = build("broker-drops", topology, "vulnerable")
    assert broker.schedule[0]["targets"] == ["out:rabbitmq"]
    assert broker.deploy == {"mailer1": {"MAILER_FLAGS": "no-reconnect"}, "mailer2": {"MAILER_FLAGS": "no-reconnect"}}
    zk, _ = build("zk-blip", topology, "vulnerable")
    assert zk.schedule[0]["targets"] == ["plan:zookeeper"] and zk.deploy == {"planner": {"PLANNER_FENCE": "off"}}
    from stack.model import describe

    assert "  incidents: slots senders=mailer/out, leader=planner/plan, api=gateway; inputs redis-failover bug; " \
           "broker-drops bug; zk-blip bug" in describe(topology)
    # the command line overrides the file: a slot by one name, an input's env as a whole
    over, _ = build("redis-failover", topology, "vulnerable", bind={"senders": "planner"},
                    inputs={"bug": {"OTHER": "1"}})
    assert over.deploy == {"planner": {"OTHER": "1"}}


NO_ZK = ("  coord: {x-kind: zookeeper, deploy: {replicas: 1}}\n", "    plan: [coord]\n",
         "leader: {nodes: planner, links: plan}, ")
NO_SENTINEL = ("  watch: {x-kind: sentinel, deploy: {replicas: 1}}\n", ", watch")


def drop(text: str, *lines: str) -> str:
    for line in lines:
        assert line in text, line
        text = text.replace(line, "", 1)
    return text


@pytest.mark.parametrize("name, variant, edit, message", [
    ("zk-blip", "hardened", NO_ZK,
     "incident zk-blip needs a zookeeper node; the notify stack has none"),
    ("redis-failover", "hardened", NO_SENTINEL,
     "incident redis-failover needs a sentinel node; the notify stack has none"),
    ("zk-blip", "hardened", ('    campaign: {path: /v1/blast, body: {ref: "{campaign}", to: "{recipients}"}}\n',),
     "incident zk-blip needs a client that submits campaigns"),
    ("broker-drops", "hardened", ("senders: {nodes: mailer, links: out}, ",),
     "incident broker-drops needs slot senders to name nodes, and 'workers' names none in the notify stack "
     "(by default senders=workers"),
    ("broker-drops", "hardened", ("queue, ",),
     "incident broker-drops needs slot senders's client group 'out' to reach a rabbitmq node"),
    ("misrouted-deploy", "hardened", (),
     "incident misrouted-deploy (hardened) needs input 'misconfig'"),
    ("sender-deploy", "vulnerable", (),
     "incident sender-deploy (vulnerable) needs input 'bug'"),
])
def test_a_stack_lacking_what_an_incident_needs_is_refused_in_one_line(name, variant, edit, message):
    with pytest.raises(HarnessError) as caught:
        build(name, parse(drop(OWN, *edit)), variant)
    assert message in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def test_overrides_are_checked_too():
    topology = parse(OWN)
    for kwargs, message in [({"bind": {"leader": "nobody"}}, "needs slot leader to name nodes, and 'nobody'"),
                            ({"bind": {"senders": "mailer"}}, "has no slot 'senders' (slots: leader)"),
                            ({"inputs": {"misconfig": {"A": "1"}}}, "takes no input 'misconfig' (inputs: bug)")]:
        with pytest.raises(HarnessError, match=message.replace("(", r"\(").replace(")", r"\)")):
            build("zk-blip", topology, "vulnerable", **kwargs)
    with pytest.raises(HarnessError, match="unknown incident 'zk-blob' \\(did you mean 'zk-blip'"):
        build("zk-blob", topology)


@pytest.mark.parametrize("edit, message", [
    (("zk-blip: {bug", "zk-blop: {bug"), "stack.yaml:26: x-chaos.incidents.zk-blop: unknown key (known: slots, broker-drops"),
    (("slots: {senders", "slots: {sender"), "stack.yaml:23: x-chaos.incidents.slots.sender: unknown key (known: api, leader, senders)"),
    (("api: gateway}", "api: gatway}"), "x-chaos.incidents.slots.api: 'gatway' is no service, role, node or client group"),
    (("links: plan}", "links: planning}"), "x-chaos.incidents.slots.leader.links: 'planning' is no client group"),
    (("{nodes: planner, links: plan}", "{nodes: planner}"), "x-chaos.incidents.slots.leader: a name, or a mapping with both"),
    (("{bug: {MAILER_FLAGS: sticky}}", "{bugs: {MAILER_FLAGS: sticky}}"), "x-chaos.incidents.redis-failover.bugs: unknown key (known: bug)"),
    (("{MAILER_FLAGS: sticky}", "sticky"), "stack.yaml:24: x-chaos.incidents.redis-failover.bug: a mapping of environment variables"),
    (("PLANNER_FENCE: \"off\"", "PLANNER_FENCE: off"), "x-chaos.incidents.zk-blip.bug.PLANNER_FENCE: a string or a number"),
])
def test_a_bad_incidents_block_gets_one_line_naming_the_key(edit, message):
    old, new = edit
    assert old in OWN
    with pytest.raises(HarnessError) as caught:
        parse(OWN.replace(old, new, 1))
    assert message in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def test_the_engine_package_names_nothing_of_the_reference_app():
    """The incidents' app-specific parts are inputs: the reference app's switches and its routing key
    live in its stack files, never in harness/incidents."""
    from pathlib import Path

    import harness.incidents

    words = ("CHAOS_SWITCHES", "DISPATCH_", "redis-sticky-master", "broker-no-recovery", "zk-unfenced-fanout",
             "api-fire-and-forget", "worker-reject-drop", "dispatch.")
    for path in Path(harness.incidents.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert not [w for w in words if w in text], path


def test_run_lists_the_incidents_one_line_each():
    result = run_cli("run", "--list", timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == NAMES


@pytest.mark.parametrize("args, message", [
    (["incident:zk-blip", "--stack", "NOZK"], "incident zk-blip needs a zookeeper node; the notify stack has none"),
    (["incident:redis-failover", "--topology", "NOSENTINEL"], "incident redis-failover needs a sentinel node"),
    (["incident:zk-blip", "--stack", "small", "--bind", "leader=nobody"], "needs slot leader to name nodes"),
    (["incident:zk-blip", "--stack", "small", "--input", "bug=x"], "--input 'bug=x': expected NAME:KEY=VALUE"),
    (["incident:zk-blop", "--stack", "small"], "unknown incident 'zk-blop'"),
    (["zk-blip", "--stack", "small"], "run 'zk-blip': expected incident:NAME"),
    (["incident:zk-blip", "--stack", "nope.yaml"], "no stack file nope.yaml"),
])
def test_run_refuses_in_one_line_before_touching_docker(tmp_path, args, message):
    nozk = tmp_path / "nozk.yaml"
    nozk.write_text(drop(OWN, *NO_ZK))
    nosentinel = tmp_path / "nosentinel.yaml"
    nosentinel.write_text(drop(OWN, *NO_SENTINEL))
    args = [str(nozk) if a == "NOZK" else str(nosentinel) if a == "NOSENTINEL" else a for a in args]
    result = run_cli("run", *args, env=_dead_docker(), timeout=60)
    assert result.returncode == 3
    assert message in single_error_line(result)
