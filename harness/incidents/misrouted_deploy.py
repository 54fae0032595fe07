"""`misrouted-deploy`: a misconfigured deploy; the API answered 2xx while every message was discarded."""

from harness.incidents.base import DRAIN_S, STEADY, Incident, Story, register

INCIDENT = register(Incident(
    name="misrouted-deploy",
    title="Misconfigured deploy discarded silently",
    story=Story(
        incident="A deploy broke the API-to-queue link (wrong routing); the API published without confirms or the "
                 "mandatory flag, kept answering 2xx, and every message was discarded for 2.5 hours.",
        fault="mid-load, the api is redeployed with the misconfiguration for 20 s.",
        invariant="no message the API acknowledged is lost (a refusal is honest; a 2xx that loses is not)."),
    schedule=lambda slots, pushed: [{"at": 6, "fault": "deploy", "targets": [slots.nodes("api")],
                                     "params": {"env": pushed}, "duration": 20}],
    expect=frozenset({"lost"}),
    workload=STEADY, drain_s=DRAIN_S,
    slots={"api": "nodes"},
    inputs=("misconfig", "bug"),
))
