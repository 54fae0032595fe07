"""Incident switches: named, off by default, turned on per service by `CHAOS_SWITCHES=a,b` at deploy time.

Each switch brings back the root cause of one seed incident (see SWITCHES.md). A switch name this
module does not know stops the service at start-up: a typo must not pass for a hardened deploy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Switch:
    name: str
    services: tuple[str, ...]  # the services whose code reads it
    incident: str


SWITCHES: dict[str, Switch] = {s.name: s for s in (
    Switch("redis-sticky-master", ("worker",),
           "Redis failover strands sends: first master kept, failed SET neither retried nor settled"),
    Switch("broker-no-recovery", ("worker", "api"),
           "Broker connection drops hang services: no heartbeat, no reconnect, health still ok"),
    Switch("zk-unfenced-fanout", ("scheduler",),
           "ZooKeeper incoherence sends twice: fan-out goes on after the session is lost, random ids"),
    Switch("api-fire-and-forget", ("api",),
           "Misconfigured deploy discards silently: no confirms, no mandatory, misrouted, still 202"),
    Switch("worker-reject-drop", ("worker",),
           "Sender deploy drops messages: a failed delivery is rejected without requeue or dead-lettering"),
    Switch("worker-crash-on-start", ("worker",),
           "Sender deploy breaks start-up: the new version exits before it consumes"),
)}


class UnknownSwitch(ValueError):
    pass


def active(service: str, env: str | None = None) -> frozenset[str]:
    """The switches turned on for `service`; raises UnknownSwitch for a name nobody knows."""
    raw = os.environ.get("CHAOS_SWITCHES", "") if env is None else env
    names = {n.strip() for n in raw.split(",") if n.strip()}
    unknown = sorted(names - SWITCHES.keys())
    if unknown:
        raise UnknownSwitch(f"unknown incident switch(es) {', '.join(unknown)}: "
                            f"known are {', '.join(sorted(SWITCHES))}")
    return frozenset(n for n in names if service in SWITCHES[n].services)
