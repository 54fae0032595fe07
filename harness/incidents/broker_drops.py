"""`broker-drops`: the broker cluster dropped connections while the services hung instead of reconnecting."""

from harness.incidents.base import DRAIN_S, STEADY, Incident, Story, register

INCIDENT = register(Incident(
    name="broker-drops",
    title="Broker dropped connections, services hung",
    story=Story(
        incident="The RabbitMQ cluster kept dropping client connections; the sender workers had no heartbeat and "
                 "no reconnect, hung, and their health checks still said ok, so nothing surfaced the errors.",
        fault="the senders' links to every RabbitMQ node go down for 6 s, then come back.",
        invariant="every accepted message is delivered once the links are back (no loss, nothing stuck), and no "
                  "worker says it is healthy while it consumes nothing with messages waiting (health)."),
    schedule=lambda slots, pushed: [{"at": 8, "fault": "link-down", "targets": [f"{slots.links('senders')}:rabbitmq"],
                                     "duration": 6}],
    expect=frozenset({"lost", "health"}),  # and the workers say they are healthy while they consume nothing
    workload=STEADY, drain_s=DRAIN_S,
    slots={"senders": "both"},
    kinds=("rabbitmq",),
    link_kind="rabbitmq",
    bug_on="senders",
))
