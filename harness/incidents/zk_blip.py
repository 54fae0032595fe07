"""`zk-blip`: a ZooKeeper network blip left the scheduler unfenced, and campaign sends went out twice."""

from harness.incidents.base import DRAIN_S, Incident, Story, register
from harness.scenario import WorkloadSpec

INCIDENT = register(Incident(
    name="zk-blip",
    title="ZooKeeper blip sent twice",
    story=Story(
        incident="A network blip cost the campaign scheduler its ZooKeeper session; it kept fanning out while a new "
                 "leader took over from stale progress, and ids were not derived from (campaign, recipient), so "
                 're-submitted sends "will certainly be sent twice".',
        fault="the leader's ZooKeeper links go down for 14 s, longer than its session timeout.",
        invariant="each campaign recipient gets exactly the one message whose id the campaign promised."),
    schedule=lambda slots, pushed: [{"at": 6, "fault": "link-down", "targets": [f"{slots.links('leader')}:zookeeper"],
                                     "duration": 14}],
    expect=frozenset({"unexpected"}),
    workload=WorkloadSpec(clients=4, rate=20.0, duration_s=30.0, campaign_share=0.3, campaign_size=20),
    drain_s=DRAIN_S,
    slots={"leader": "both"},
    kinds=("zookeeper",),
    link_kind="zookeeper",
    campaigns=True,
    bug_on="leader",
))
