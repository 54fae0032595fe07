"""Undo what dead fault runners left behind: network helpers (and their iptables rules or qdiscs), proxy
toxics, and the undo records of faults that change a node's settings (`faults.journal`).

A runner that is SIGKILLed cannot heal. Its partition helpers carry `chaos-harness.fault-owner`
(`<pid>-<start>` of the runner) and its toxics carry the same tag in their names
(`chaos.<pid>-<start>.<step>.<fault>.<stream>`), so a sweep removes exactly the faults whose runner is
gone, in every run of this namespace, and leaves live runners' faults alone. `clean` calls `sweep`.
Not covered: a container a dead runner paused or killed stays so (nothing marks who did it).
"""

from __future__ import annotations

from typing import Callable

from faults.base import LABEL_FAULT_OWNER, LABEL_FAULT_OWNER_HOST
from stack import cleanup

Progress = Callable[[str], None]


def owner_alive(tag: str, host: str | None = None) -> bool:
    """Whether the process `<pid>-<start>` (on `host`, default this one) still runs."""
    pid, _, start = tag.partition("-")
    return cleanup.process_alive(pid, start, host)


def sweep_helpers(client, progress: Progress | None = None, everything: bool = False) -> list[str]:
    """Remove partition helpers of dead runners (all of them with `everything`), deleting their rules first."""
    from faults.partition import remove_helper

    selector = [f"{cleanup.LABEL_KIND}=helper", f"{cleanup.LABEL_NAMESPACE}={cleanup.namespace()}"]
    removed = []
    for helper in client.containers.list(all=True, filters={"label": selector}, ignore_removed=True):
        labels = helper.labels
        tag = labels.get(LABEL_FAULT_OWNER, "")
        if everything or not tag or not owner_alive(tag, labels.get(LABEL_FAULT_OWNER_HOST)):
            problem = remove_helper(helper)
            removed.append(helper.name)
            if progress:
                progress(f"[sweep] removed {labels.get('chaos-harness.fault', 'partition')} helper {helper.name}" + (f" ({problem})" if problem else ""))
    return removed


def sweep_toxics(client, progress: Progress | None = None, everything: bool = False) -> list[str]:
    """In every run's proxy: remove toxics of dead runners and re-enable links they disabled."""
    from faults.link import toxic_owner
    from faults.toxiproxy.client import ToxiproxyClient
    from harness.errors import HarnessError
    from stack.topology import PROXY_API_PORT

    removed = []
    selector = [f"{cleanup.LABEL_NODE}=proxy", f"{cleanup.LABEL_NAMESPACE}={cleanup.namespace()}"]
    for proxy in client.containers.list(filters={"label": selector}, ignore_removed=True):
        binding = (proxy.attrs["NetworkSettings"]["Ports"] or {}).get(f"{PROXY_API_PORT}/tcp")
        if not binding:
            continue
        try:
            with ToxiproxyClient(f"http://127.0.0.1:{binding[0]['HostPort']}", timeout=3) as api:
                for link, spec in api.proxies().items():
                    for toxic in spec.get("toxics", []):
                        tag = toxic_owner(toxic["name"])
                        if tag is None or (not everything and owner_alive(tag)):
                            continue
                        if ".link-down." in toxic["name"]:
                            api.set_enabled(link, True)
                        api.remove_toxic(link, toxic["name"])
                        removed.append(f"{link}/{toxic['name']}")
                        if progress:
                            progress(f"[sweep] removed toxic {toxic['name']} from {link}")
        except HarnessError as exc:
            if progress:
                progress(f"[sweep] skipped proxy {proxy.name}: {exc}")
    return removed


def sweep(client, progress: Progress | None = None, everything: bool = False) -> list[str]:
    """Everything a dead fault runner left in this namespace's runs; returns what was removed."""
    from faults.journal import sweep_records

    return (sweep_helpers(client, progress, everything) + sweep_toxics(client, progress, everything)
            + sweep_records(client, owner_alive, progress, everything))
