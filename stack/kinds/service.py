"""An app service (any role no other kind claims): ready as its stack file's `healthcheck` says (HTTP or
TCP from the host to the node's address on the run network, a command in the node, or a log line);
with no healthcheck, ready once its container runs."""

from __future__ import annotations

import re
import socket

from stack.kinds.base import Kind, register_kind


def node_address(stack, node: str) -> str:
    """The node's IP address on the run's network, as the host reaches it."""
    container = stack.container(node)
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"] or {}
    address = (networks.get(stack.network_name) or next(iter(networks.values()), {})).get("IPAddress")
    if not address:
        raise OSError(f"{node} has no address on {stack.network_name}")
    return address


@register_kind
class Service(Kind):
    name = "service"
    service = True

    def serving(self, stack, node: str) -> tuple[bool, str]:
        ready = stack.topology.node(node).ready
        if ready is None:
            container = stack.container(node)
            container.reload()
            return container.status == "running", f"container {container.status}"
        if ready.how == "http":
            import requests

            host, port = stack.reach(node_address(stack, node), ready.port)
            url = f"http://{host}:{port}{ready.target}"
            response = requests.get(url, timeout=ready.probe_timeout_s)
            return 200 <= response.status_code < 300, f"GET {ready.target}: {response.status_code} {response.text[:150]}"
        if ready.how == "tcp":
            with socket.create_connection(stack.reach(node_address(stack, node), ready.port),
                                          timeout=ready.probe_timeout_s):
                return True, f"port {ready.port} accepts"
        if ready.how == "exec":
            code, out = stack.exec(node, list(ready.target), timeout=ready.probe_timeout_s)
            tail = out.strip().splitlines()[-1][:200] if out.strip() else ""
            return code == 0, f"exit {code}" + (f": {tail}" if tail else "")
        container = stack.container(node)  # log
        container.reload()
        started = container.attrs["State"]["StartedAt"]
        import datetime

        since = datetime.datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00")
        text = container.logs(since=since).decode(errors="replace")
        found = re.search(ready.target, text, re.M)
        return bool(found), f"log line {found.group(0)[:100]!r}" if found else f"no log line matches {ready.target!r}"

    def checks(self, stack, nodes):
        from stack.health import Check

        out = []
        for n in nodes:
            ready = n.ready
            what = {None: "runs", "http": f"answers GET {ready.target if ready else ''}",
                    "tcp": f"accepts on port {ready.port if ready else ''}", "exec": "passes its healthcheck test",
                    "log": "logged its ready line"}[ready.how if ready else None]
            who = n.name if n.role == n.name else f"{n.role} {n.name}"
            out.append(Check(f"{who} {what}", n.name, lambda s, name=n.name: self.serving(s, name),
                             timeout_s=ready.deadline_s if ready else None,
                             interval_s=ready.interval_s if ready else 0.5))
        return out
