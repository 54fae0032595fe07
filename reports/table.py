"""Plain-text tables of chaos runs: the incident catalog (one row per incident) and other runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunRow:
    group: str  # the incident (a test module's title) or the test id
    variant: str  # "vulnerable", "hardened" or "" for runs outside the catalog
    status: str
    violations: tuple[str, ...]
    seconds: float


def verdict_text(row: RunRow | None) -> str:
    if row is None:
        return "-"
    return row.status + (f" ({', '.join(row.violations)})" if row.violations else "")


def incident_groups(rows: list[RunRow]) -> tuple[dict[str, dict[str, RunRow]], list[RunRow]]:
    """The catalog's runs by incident then variant, in first-seen order; and the other runs."""
    incidents: dict[str, dict[str, RunRow]] = {}
    others: list[RunRow] = []
    for row in rows:
        if row.variant in ("vulnerable", "hardened"):
            incidents.setdefault(row.group, {})[row.variant] = row
        else:
            others.append(row)
    return incidents, others


def incident_table(rows: list[RunRow]) -> list[str]:
    """Incident | vulnerable verdict | hardened verdict | seconds; other runs one line each."""
    incidents, others = incident_groups(rows)
    lines: list[str] = []
    if incidents:
        width = max(len(g) for g in incidents)
        lines.append(f"{'incident':{width}}  {'vulnerable':28}  {'hardened':28}  {'seconds':>7}")
        for group, variants in incidents.items():
            seconds = sum(r.seconds for r in variants.values())
            lines.append(f"{group:{width}}  {verdict_text(variants.get('vulnerable')):28}  "
                         f"{verdict_text(variants.get('hardened')):28}  {seconds:7.0f}")
    for row in others:
        lines.append(f"{row.group}: {verdict_text(row)} in {row.seconds:.0f}s")
    return lines
