"""`sender-deploy`: a sender deploy that rejected failed deliveries instead of retrying or parking them."""

from harness.incidents.base import DRAIN_S, STEADY, Incident, Story, register

INCIDENT = register(Incident(
    name="sender-deploy",
    title="Sender deploy dropped messages",
    story=Story(
        incident="A new sender-worker version went out; when the provider failed a delivery it rejected the message "
                 "without requeue or dead-lettering, so those messages were gone (the rest were delayed and replayed "
                 "a day later by hand).",
        fault="a rolling deploy of the senders, then a provider outage failing 40% of deliveries for 8 s.",
        invariant="no accepted message is lost: a failed delivery is retried or parked, never dropped."),
    schedule=lambda slots, pushed: [
        {"at": 4, "fault": "rolling-deploy", "targets": [slots.nodes("senders")],
         "params": {"env": pushed, "gap": 1.0}, "duration": 22},
        {"at": 12, "fault": "provider-outage", "params": {"fail_rate": 0.4}, "duration": 8}],
    expect=frozenset({"lost"}),
    workload=STEADY, drain_s=DRAIN_S,
    slots={"senders": "nodes"},
))
