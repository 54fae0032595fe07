"""What the incident modules share: one workload shape and the two variants of each incident."""

from __future__ import annotations

from harness.scenario import Scenario, WorkloadSpec

# About 30 s of steady load: long enough for a fault and its heal to land inside it.
WORKLOAD = WorkloadSpec(clients=4, rate=30.0, duration_s=30.0)
DRAIN_S = 35.0


def workers_with(stack, switches: list[str]) -> dict[str, dict[str, str]]:
    """A deploy of every sender worker with these incident switches on."""
    return {node: {"CHAOS_SWITCHES": ",".join(switches)} for node in stack.topology.names("worker")}


def scenario(name: str, schedule: list[dict], deploy: dict | None = None,
             workload: WorkloadSpec = WORKLOAD) -> Scenario:
    return Scenario(name=name, schedule=schedule, deploy=deploy or {}, workload=workload, drain_s=DRAIN_S)
