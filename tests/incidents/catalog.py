"""What the incident modules share: each runs a packaged incident (harness/incidents) on the session
stack, whose stack file binds the incident's slots and bug switches to the reference app."""

from __future__ import annotations

from harness.incidents import build


def run_incident(name: str, variant: str, chaos_stack, chaos_run, chaos_check) -> None:
    """Run `name` in `variant`: the vulnerable one must show the incident's violations, the hardened one none."""
    scenario, expect = build(name, chaos_stack.topology, variant)
    result = chaos_run(scenario)
    chaos_check(result, expect=set(expect) if variant == "vulnerable" else None)


def workers_with(stack, switches: list[str]) -> dict[str, dict[str, str]]:
    """A deploy of every sender worker with these incident switches on (the generated-schedule searches)."""
    return {node: {"CHAOS_SWITCHES": ",".join(switches)} for node in stack.topology.names("worker")}
