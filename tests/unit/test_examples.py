"""The example apps' stack files, read and bound without Docker: mailer (examples/email) resolves to
its own nodes and links, and the packaged incidents bind to it, its bug deployed only when vulnerable."""

from pathlib import Path

import pytest

from harness.incidents.base import build
from stack.model import load_stack_file
from stack.topology import RunParams

MAILER = Path(__file__).resolve().parents[2] / "examples" / "email" / "stack.yaml"


def mailer():
    return load_stack_file(str(MAILER), RunParams(run_id="u", cookie="c"))


def test_mailer_is_its_own_stack():
    topo = mailer()
    assert [n.name for n in topo.nodes] == ["rmq1", "redis1", "redis2", "sentinel1", "proxy", "relay", "api",
                                           "sender1", "sender2"]
    assert not topo.names("zookeeper")
    assert topo.app.client.send.path == "/v1/emails" and 201 in topo.app.client.accepted
    assert topo.app.provider.node == "relay" and topo.app.parked_queue is None
    assert [l.name for l in topo.links if l.group == "sender"] == [
        "sender-rmq1", "sender-redis1", "sender-redis2", "sender-sentinel1", "sender-relay"]
    assert {l.port for l in topo.links if l.node == "relay"} == {2525}  # the relay's first port: SMTP


@pytest.mark.parametrize("incident, bug", [("redis-failover", "stale-redis"), ("broker-drops", "no-reconnect")])
def test_the_incidents_bind_to_mailer_with_its_own_bugs(incident, bug):
    topo = mailer()
    vulnerable, expect = build(incident, topo, "vulnerable")
    hardened, none = build(incident, topo, "hardened")
    assert expect and not none
    assert vulnerable.deploy == {"sender1": {"MAILER_BUGS": bug}, "sender2": {"MAILER_BUGS": bug}}
    assert not hardened.deploy
