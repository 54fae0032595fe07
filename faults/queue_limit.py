"""`queue-limit`: a RabbitMQ policy caps the matched queues at `max_length` messages; heal clears it.

`overflow: reject-publish` (the default) refuses what a full queue cannot take: a publisher that uses
confirms sees a nack and can refuse the request honestly. `drop-head` discards the oldest messages with
no signal to anyone, as the broker in a misconfigured deploy does: no app keeps its messages through
that, so generated schedules leave it to schedules written by hand. See `faults.policy`.
"""

from __future__ import annotations

from faults.base import Param, register
from faults.policy import QUEUES, BrokerPolicy


@register
class QueueLimit(BrokerPolicy):
    name = "queue-limit"
    summary = "a RabbitMQ policy caps the queues' length (reject-publish, or drop-head discarding the oldest); heal clears it"
    params = (
        QUEUES,
        Param("max_length", int, 10, help="messages a queue keeps", unit="messages", bounds=(0, 10_000_000),
              search=(0, 50)),
        Param("overflow", str, "reject-publish", choices=("reject-publish", "drop-head"),
              help="what a full queue does with one more message", search=("reject-publish",)),
    )

    def definition(self) -> dict:
        return {"max-length": self.p["max_length"], "overflow": self.p["overflow"]}
