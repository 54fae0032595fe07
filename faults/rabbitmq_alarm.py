"""`rabbitmq-alarm`: raise a RabbitMQ memory or disk alarm on the target nodes; heal restores their limits.

An alarm blocks every publishing connection of the cluster (`connection.blocked`) until it clears:
publishers stall without an error, which is how a broker under pressure looks to a dispatch API. The
memory alarm sets `vm_memory_high_watermark` to one byte, the disk alarm `disk_free_limit` far above the
free space (the disk monitor raises it at its next check); both are what `rabbitmqctl` changes at run
time. Heal sets each node's previous value back and waits until `check_local_alarms` passes. The previous
values go to an undo record first (`faults.journal`), so a sweep restores them if the runner dies.
"""

from __future__ import annotations

import re

from faults import journal
from faults.base import Effect, Param, register
from faults.nodes import NodeFault
from harness.errors import HarnessError
from stack import health

READ = {"memory": "vm_memory_monitor:get_vm_memory_high_watermark().",
        "disk": "rabbit_disk_monitor:get_disk_free_limit()."}
EXABYTE = str(10 ** 18)


def _ctl(stack, node: str, *args: str, timeout: float = 60) -> tuple[int, str]:
    return stack.exec(node, ["rabbitmqctl", "-q", *args], user="rabbitmq", timeout=timeout)


def restore_command(kind: str, value: str) -> list[str]:
    """The rabbitmqctl command that sets back what `READ[kind]` printed (e.g. 0.4, {absolute,1073741824},
    {absolute,"1GB"})."""
    value = value.strip()
    size = r'"?(\d+[A-Za-z]*)"?'  # bytes, or a size as the config file gave it ("1GB")
    if kind == "disk":
        plain = re.fullmatch(size, value)
        if not plain:
            raise HarnessError(f"rabbitmq-alarm: unexpected disk_free_limit {value!r}")
        return ["rabbitmqctl", "-q", "set_disk_free_limit", plain.group(1)]
    absolute = re.fullmatch(r"\{absolute,\s*" + size + r"\}", value)
    if absolute:
        return ["rabbitmqctl", "-q", "set_vm_memory_high_watermark", "absolute", absolute.group(1)]
    if re.fullmatch(r"\d+(\.\d+)?(e-?\d+)?", value):
        return ["rabbitmqctl", "-q", "set_vm_memory_high_watermark", value]
    raise HarnessError(f"rabbitmq-alarm: unexpected vm_memory_high_watermark {value!r}")


@register
class RabbitmqAlarm(NodeFault):
    name = "rabbitmq-alarm"
    summary = "raise a memory or disk alarm on the target RabbitMQ nodes (publishers block); heal restores the limit"
    short = False  # the ci profile keeps the faults the hardened reference app is shown to survive in a short run
    narrow_targets = True  # generated steps aim at brokers only
    params = (Param("resource", str, "memory", choices=("memory", "disk"), help="which alarm"),)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.restore: dict[str, list[str]] = {}
        self.records: dict[str, object] = {}

    @classmethod
    def check_targets(cls, targets, params, topology, where):
        from faults.roles import possible_nodes

        nodes, _ = possible_nodes(list(targets), topology)
        wrong = sorted(n for n in nodes if topology.node(n).role != "rabbitmq")
        if wrong:
            raise HarnessError(f"{where}: rabbitmq-alarm: {', '.join(wrong)} may be targeted but is not a "
                               "RabbitMQ node")

    def resolve(self) -> list[str]:
        nodes = super().resolve()
        wrong = [n for n in nodes if self.ctx.stack.topology.node(n).role != "rabbitmq"]
        if wrong:
            raise HarnessError(f"rabbitmq-alarm: {wrong} are not RabbitMQ nodes")
        return nodes

    def inject(self) -> Effect:
        stack = self.ctx.stack
        kind = self.p["resource"]
        nodes = self.resolve()
        for node in nodes:
            code, out = _ctl(stack, node, "eval", READ[kind])
            if code != 0:
                raise HarnessError(f"rabbitmq-alarm: {node}: reading the {kind} limit failed: {out.strip()[-200:]}")
            command = restore_command(kind, out.strip().splitlines()[-1])
            self.records[node] = journal.record(self.ctx, node, self.name, {"exec": [command], "user": "rabbitmq"})
            self.restore[node] = command
            setting = (["set_vm_memory_high_watermark", "absolute", "1"] if kind == "memory"
                       else ["set_disk_free_limit", EXABYTE])
            code, out = _ctl(stack, node, *setting)
            if code != 0:
                raise HarnessError(f"rabbitmq-alarm: {node}: {' '.join(setting)} failed: {out.strip()[-200:]}")
        for node in nodes:
            health.wait_for(f"{node}: a {kind} alarm", lambda n=node: self._alarmed(n, True), self.ctx.deadline(60),
                            interval=1)
        return self.effect(nodes, resource=kind, restore={n: " ".join(c[2:]) for n, c in self.restore.items()})

    def _alarmed(self, node: str, want: bool) -> tuple[bool, str]:
        code, out = self.ctx.stack.exec(node, ["rabbitmq-diagnostics", "-q", "check_local_alarms"], user="rabbitmq",
                                        timeout=30)
        alarmed = code != 0 and self.p["resource"] in out.lower()
        return alarmed == want, out.strip()[-160:] or f"exit {code}"

    def heal(self) -> Effect:
        stack = self.ctx.stack
        healed = []
        for node, command in list(self.restore.items()):
            code, out = stack.exec(node, command, user="rabbitmq", timeout=60)
            if code != 0:
                raise HarnessError(f"rabbitmq-alarm heal: {node}: {' '.join(command)}: {out.strip()[-200:]}")
            journal.done(self.records.pop(node, None))
            self.restore.pop(node)
            healed.append(node)
        for node in healed:
            health.wait_for(f"{node}: no {self.p['resource']} alarm", lambda n=node: self._alarmed(n, False),
                            self.ctx.deadline(60), interval=1)
        return self.effect(healed)
