"""`queue-ttl`: a RabbitMQ policy expires messages that wait longer than `message_ttl` in the matched
queues; heal clears it. An expired message is dead-lettered if its queue has a dead-letter exchange
(the app then sees it parked), else it is gone. See `faults.policy`.
"""

from __future__ import annotations

from faults.base import Param, register
from faults.policy import QUEUES, BrokerPolicy


@register
class QueueTtl(BrokerPolicy):
    name = "queue-ttl"
    summary = "a RabbitMQ policy expires messages waiting longer than message_ttl in the queues; heal clears it"
    params = (
        QUEUES,
        Param("message_ttl", int, 1000, help="how long a message may wait in the queue", unit="ms",
              bounds=(0, 86_400_000), search=(0, 5000)),
    )

    def definition(self) -> dict:
        return {"message-ttl": self.p["message_ttl"]}
