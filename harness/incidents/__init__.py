"""Incidents as named scenarios, one module each, found through a registry: `get_incident("zk-blip")`.

Each incident is a post-mortem turned into a run: the story (incident, fault, invariant), the
workload and drain, a schedule written against **slots** (`senders`, `leader`, `api`) instead of an
app's names, what it needs of a stack (kinds, campaigns, slots that resolve), and which inputs the app
supplies (the env that switches its bug on, a misconfiguration a deploy pushes). A stack file binds
slots and inputs in `x-chaos.incidents`; `build(...)` turns the three into a `Scenario`.
"""

from harness.incidents.base import (INCIDENTS, VARIANTS, Incident, Slots, Story, all_incidents, build,
                                    get_incident, register)

__all__ = ["INCIDENTS", "VARIANTS", "Incident", "Slots", "Story", "all_incidents", "build", "get_incident",
           "register"]
