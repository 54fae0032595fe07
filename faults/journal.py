"""Undo records for faults whose effect lives in a node's settings (`docker update`, a broker's runtime
configuration) rather than in a helper container or a toxic that `faults.sweep` can find by its labels.

Before such a fault changes anything it writes a record of how to undo it: the container, the process
that applied it (`<pid>-<start>` and host, as helpers carry), and the undo itself, either `update`
(keyword arguments of the Docker API's container update) or `exec` (commands run in the node). Heal
removes the record once the undo is done; `faults.sweep` applies the records of runners that died.
A third form, `amqp_bind`, binds an exchange to a queue again over AMQP from the host, through the
node's published port; a fourth, `clock`, writes a node's clock offset back (`stack.clock`); a fifth,
`connect`, attaches a node that a partition disconnected to the run's network again, at its own address.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from faults.base import FaultContext


def _folder() -> Path:
    from stack.images import cache_dir

    folder = cache_dir() / "undo"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def record(ctx: "FaultContext", node: str, fault: str, undo: dict[str, Any]) -> Path:
    """Write the undo of a change to `node` before making it; returns the record's path."""
    from stack import cleanup

    container = ctx.stack.container(node)
    data = {"fault": fault, "node": node, "container": container.id, "namespace": cleanup.namespace(),
            "owner": ctx.owner_tag, "host": socket.gethostname(), "step": str(ctx.step), "undo": undo}
    path = _folder() / f"{ctx.owner_tag}-{container.id[:12]}-{fault}-{secrets.token_hex(3)}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
    return path


def apply(client, data: dict[str, Any]) -> str:
    """Run one record's undo; '' or what went wrong (a container that is gone needs no undo)."""
    import docker.errors

    undo = data.get("undo", {})
    try:
        container = client.containers.get(data["container"])
        if "update" in undo:
            client.api.update_container(container.id, **undo["update"])
        if "clock" in undo:
            from stack.clock import set_offset

            set_offset(container, int(undo["clock"]))
        if "amqp_bind" in undo:
            from faults.amqp_unbind import bind

            b = undo["amqp_bind"]
            container.reload()
            published = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{b['port']}/tcp") or []
            if not published:
                return f"port {b['port']} of {data.get('node')} is not published"
            bind(f"amqp://guest:guest@127.0.0.1:{published[0]['HostPort']}/%2F", b["exchange"], b["queue"],
                 b["routing_key"], b.get("arguments"), unbind=False)
        if "connect" in undo:
            c = undo["connect"]
            try:
                client.networks.get(c["network"]).connect(container, aliases=c.get("aliases"),
                                                          ipv4_address=c.get("ip"))
            except docker.errors.APIError as exc:
                if "already exists" not in str(exc):  # still or again attached: nothing to undo
                    raise
        for command in undo.get("exec", []):
            result = container.exec_run(command, user=undo.get("user") or "")
            if result.exit_code != 0:
                return f"{' '.join(command)}: exit {result.exit_code}"
    except docker.errors.NotFound:
        return ""
    except docker.errors.APIError as exc:
        return str(exc.explanation or exc)[:200]
    except Exception as exc:  # an undo that cannot run is said, and the sweep goes on
        return str(exc)[:200]
    return ""


def done(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def sweep_records(client, alive: Callable[[str, str | None], bool], progress=None,
                  everything: bool = False) -> list[str]:
    """Apply and remove the records this namespace's dead runners left (all of them with `everything`)."""
    from stack import cleanup

    undone = []
    for path in sorted(_folder().glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if data.get("namespace") != cleanup.namespace():
            continue
        if not everything and alive(data.get("owner", ""), data.get("host")):
            continue
        problem = apply(client, data)
        path.unlink(missing_ok=True)
        undone.append(f"{data.get('fault')} on {data.get('node')}")
        if progress:
            progress(f"[sweep] undid {data.get('fault')} on {data.get('node')}" + (f" ({problem})" if problem else ""))
    return undone
