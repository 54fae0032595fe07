"""`redis-failover`: a Redis failover that stranded sends for an hour."""

from harness.incidents.base import DRAIN_S, STEADY, Incident, Story, register

INCIDENT = register(Incident(
    name="redis-failover",
    title="Redis failover stranded sends",
    story=Story(
        incident="A Redis primary/replica failover flipped roles; the sender workers kept the old primary's "
                 "address and their error callback neither retried nor settled the message, so sends sat stuck "
                 "for an hour.",
        fault="a Sentinel failover of the Redis primary under steady load.",
        invariant="every accepted message is delivered (no loss, nothing stuck), exactly once."),
    schedule=lambda slots, pushed: [{"at": 8, "fault": "redis-failover", "params": {"method": "sentinel"}}],
    expect=frozenset({"lost"}),
    workload=STEADY, drain_s=DRAIN_S,
    slots={"senders": "nodes"},
    kinds=("redis", "sentinel"),
    bug_on="senders",
))
