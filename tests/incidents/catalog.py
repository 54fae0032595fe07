"""What the catalog's other users share (the incident modules themselves use the `chaos_incident` fixture)."""

from __future__ import annotations


def workers_with(stack, switches: list[str]) -> dict[str, dict[str, str]]:
    """A deploy of every sender worker with these incident switches on (the generated-schedule searches)."""
    return {node: {"CHAOS_SWITCHES": ",".join(switches)} for node in stack.topology.names("worker")}
