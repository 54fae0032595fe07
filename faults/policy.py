"""What `queue-limit` and `queue-ttl` share: a RabbitMQ policy applied at run time, as a misconfigured
broker has it; heal clears it.

`queue-limit` (`max_length`) with `overflow: drop-head` silently discards the oldest messages of a full
queue (the symptom of the discarded-for-2.5-hours incident, coming from the broker this time);
`reject-publish` refuses new ones (publishers with confirms see a nack). `queue-ttl` (`message_ttl`)
expires messages that wait too long: dead-lettered if the queue has a dead-letter exchange, else gone. RabbitMQ applies one policy
per queue, the highest priority's: for the window this one replaces any policy of the app on the matched
queues (queue arguments still hold; where both set a limit, the lower wins). The policy is named
`chaos-<step>`; an undo record (`faults.journal`) lets a sweep clear it if the runner dies.
"""

from __future__ import annotations

import json
import re

from faults import journal
from faults.base import Effect, Fault, Param

QUEUES = Param("queues", str, None, help="a regular expression of queue names (default: the stack file's "
                                         "x-chaos.queues, exactly)")
from faults.nodes import status
from harness.errors import HarnessError
from stack import health


class BrokerPolicy(Fault):
    """A policy named `chaos-<step>` on the queues `queues` matches; subclasses say its definition."""

    targets_kind = "none"
    needs_targets = False
    short = False  # the ci profile keeps the faults the hardened reference app is shown to survive in a short run

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.node: str | None = None
        self.record = None

    @classmethod
    def check_combination(cls, params, where):
        if params["queues"] is not None:
            try:
                re.compile(params["queues"])
            except re.error as exc:
                raise HarnessError(f"{where}: parameter 'queues' is not a regular expression: {exc}") from None

    @classmethod
    def check_topology(cls, params, topology, where: str) -> None:
        if not topology.names("rabbitmq"):
            raise HarnessError(f"{where}: {cls.name} needs a RabbitMQ node; the {topology.name} stack has none")
        cls.pattern(params, topology, where)

    @staticmethod
    def pattern(params, topology, where: str) -> str:
        if params.get("queues"):
            return params["queues"]
        queues = topology.app.queues if topology.app else ()
        if not queues:
            raise HarnessError(f"{where}: a policy fault needs params.queues: the {topology.name} stack file "
                               "declares no x-chaos.queues")
        return "^(" + "|".join(re.escape(q) for q in queues) + ")$"

    @property
    def policy(self) -> str:
        return f"chaos-{self.ctx.step}"

    def definition(self) -> dict:
        raise NotImplementedError

    def _ctl(self, *args: str) -> tuple[int, str]:
        return self.ctx.stack.exec(self.node, ["rabbitmqctl", "-q", *args], user="rabbitmq", timeout=60)

    def _applied(self) -> dict[str, str]:
        """Queue -> the policy in effect, as the broker lists it."""
        code, out = self._ctl("list_queues", "name", "policy", "--formatter", "json")
        if code != 0 or "[" not in out:
            raise HarnessError(f"{self.name}: list_queues on {self.node} failed: {out.strip()[-200:]}")
        return {q["name"]: q.get("policy") or "" for q in json.loads(out[out.index("["):])}

    def inject(self) -> Effect:
        stack = self.ctx.stack
        where = f"fault {self.name!r}"
        pattern = self.pattern(self.p, stack.topology, where)
        self.node = next((n for n in stack.topology.names("rabbitmq") if status(stack, n) == "running"), None)
        if self.node is None:
            raise HarnessError(f"{self.name}: no RabbitMQ node is running")
        matched = [q for q in self._applied() if re.search(pattern, q)]
        if not matched:
            raise HarnessError(f"{self.name}: pattern {pattern!r} matches no queue on {self.node}")
        self.record = journal.record(self.ctx, self.node, self.name, {
            "exec": [["rabbitmqctl", "-q", "clear_policy", self.policy]], "user": "rabbitmq"})
        definition = json.dumps(self.definition())
        code, out = self._ctl("set_policy", "--apply-to", "queues", "--priority", "999", self.policy, pattern,
                              definition)
        if code != 0:
            raise HarnessError(f"{self.name}: set_policy failed: {out.strip()[-200:]}")

        def applied() -> tuple[bool, str]:
            now = self._applied()
            missing = [q for q in matched if now.get(q) != self.policy]
            return not missing, f"not yet on {missing}" if missing else "applied"

        health.wait_for(f"policy {self.policy} on {matched}", applied, self.ctx.deadline(30), interval=0.5)
        return Effect(tuple(matched), {"policy": self.policy, "pattern": pattern, "definition": self.definition(),
                                       "node": self.node})

    def heal(self) -> Effect:
        if self.node is None:
            return Effect(())
        stack = self.ctx.stack
        if status(stack, self.node) != "running":  # a policy is the cluster's: any running node clears it
            self.node = next((n for n in stack.topology.names("rabbitmq") if status(stack, n) == "running"),
                             self.node)
        code, out = self._ctl("clear_policy", self.policy)
        if code != 0 and "not found" not in out.lower():
            raise HarnessError(f"{self.name} heal: clear_policy failed: {out.strip()[-200:]}")

        def cleared() -> tuple[bool, str]:
            still = [q for q, p in self._applied().items() if p == self.policy]
            return not still, f"still on {still}" if still else "cleared"

        health.wait_for(f"policy {self.policy} cleared", cleared, self.ctx.deadline(30), interval=0.5)
        journal.done(self.record)
        self.record = None
        return Effect((), {"policy": self.policy, "cleared": True})
