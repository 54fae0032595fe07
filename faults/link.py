"""Link faults: one class per Toxiproxy toxic, applied through the stack's proxy to client links.

Every link fault takes `direction` (downstream = node to client, upstream = client to node, or both)
and `toxicity`, plus its toxic's attributes. Targets are link names (`workers-redis1`), groups
(`workers`), globs (`*-rmq2`), `<group>:<node target>`, or node targets (all links to those nodes).

Toxics are named `chaos.<pid>-<start>.<step>.<type>.<stream>`: the owner in the name lets
`faults.sweep` remove the toxics of a runner that died, and leaves other runners' toxics alone.
`link-down` disables the proxied link (connections refused, open ones closed) and marks the link
with a no-op latency toxic of the same naming, so a sweep knows whom the disabled link belongs to.
"""

from __future__ import annotations

from typing import Any

from faults.base import Effect, Fault, NoTarget, Param, register
from faults.roles import resolve_links
from faults.toxiproxy.client import ToxiproxyClient
from harness.errors import HarnessError
from stack.topology import PROXY_API_PORT

DIRECTIONS = ("downstream", "upstream", "both")
TOXIC_PREFIX = "chaos."
COMMON = (
    Param("direction", str, "downstream", choices=DIRECTIONS,
          help="downstream: node -> client; upstream: client -> node"),
    Param("toxicity", float, 1.0, help="share of connections the toxic applies to (0..1)",
          unit="fraction", bounds=(0, 1), search=(0.1, 1.0)),
)


def proxy_client(stack) -> ToxiproxyClient:
    return ToxiproxyClient(f"http://127.0.0.1:{stack.host_port('proxy', PROXY_API_PORT)}")


def toxic_name(owner: str, step, kind: str, stream: str) -> str:
    return f"{TOXIC_PREFIX}{owner}.{step}.{kind}.{stream}"


def toxic_owner(name: str) -> str | None:
    """The `<pid>-<start>` of a toxic this package named, else None."""
    if not name.startswith(TOXIC_PREFIX):
        return None
    return name[len(TOXIC_PREFIX):].split(".", 1)[0]


class LinkFault(Fault):
    """A fault on proxied links."""

    targets_kind = "links"
    toxic_type = ""
    attributes: tuple[Param, ...] = ()
    # Proxy features beyond Toxiproxy's public API this fault relies on, with why (see GET /faults/server).
    proxy_needs: dict[str, str] = {}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.applied: list[tuple[str, str]] = []  # (link, toxic name)
        self.links: list[str] = []

    def resolve(self) -> list[str]:
        self.picks: list = []  # what target modes picked (faults.modes.Pick), recorded with the effect
        links = [l.name for l in resolve_links(self.ctx.stack, self.targets, seed=f"{self.ctx.stack.seed}:"
                                               f"{self.ctx.step}", picks=self.picks)]
        if not links:
            raise NoTarget(f"targets {self.targets} matched no proxied link")
        return links

    def picked(self) -> dict[str, Any]:
        picks = getattr(self, "picks", None)
        return {"picks": [p.to_data() for p in picks]} if picks else {}

    def streams(self) -> list[str]:
        d = self.p["direction"]
        return ["downstream", "upstream"] if d == "both" else [d]

    def toxic_attributes(self) -> dict[str, Any]:
        return {a.name: self.p[a.name] for a in self.attributes}

    @classmethod
    def check_proxy(cls, client: ToxiproxyClient) -> None:
        """Refuse, naming the fault and the feature, when the proxy (say a real Toxiproxy) lacks what we need."""
        if not cls.proxy_needs:
            return
        features = client.server_features()
        for feature, why in cls.proxy_needs.items():
            if feature not in features:
                raise HarnessError(f"{cls.name}: the proxy at {client.url} lacks {feature!r} "
                                   f"(a real Toxiproxy has only its public API): {why}")

    @classmethod
    def check_stack(cls, stack) -> None:
        if cls.proxy_needs:
            with proxy_client(stack) as client:
                cls.check_proxy(client)

    def inject(self) -> Effect:
        links = self.resolve()
        self.links = links
        with proxy_client(self.ctx.stack) as client:
            self.check_proxy(client)
            for link in links:
                for stream in self.streams():
                    name = toxic_name(self.ctx.owner_tag, self.ctx.step, self.name, stream)
                    self.applied.append((link, name))
                    client.add_toxic(link, self.toxic_type, stream=stream, toxicity=self.p["toxicity"],
                                     name=name, **self.toxic_attributes())
            # Took effect = the proxy now lists the toxic on every link.
            present = {link: [t["name"] for t in client.toxics(link)] for link in links}
        missing = [(l, n) for l, n in self.applied if n not in present.get(l, [])]
        if missing:
            raise HarnessError(f"{self.name}: proxy does not list toxics {missing}")
        return Effect(tuple(links), {"toxic": self.toxic_type, "streams": self.streams(),
                                     "attributes": self.toxic_attributes(), **self.picked()})

    def heal(self) -> Effect:
        with proxy_client(self.ctx.stack) as client:
            for link, name in list(self.applied):
                try:
                    client.remove_toxic(link, name)
                except HarnessError as exc:
                    if "not found" not in str(exc):
                        raise
                self.applied.remove((link, name))
            left = [t["name"] for link in self.links for t in client.toxics(link)
                    if t["name"].startswith(toxic_name(self.ctx.owner_tag, self.ctx.step, self.name, ""))]
        if left:
            raise HarnessError(f"{self.name}: toxics still on the proxy after heal: {left}")
        return Effect(tuple(self.links), {"removed": True})


def _attr(name: str, default: int, help: str, unit: str, search: tuple[int, int]) -> Param:
    return Param(name, int, default, help=help, unit=unit, search=search)


def link_fault(name: str, toxic: str, summary: str, *attributes: Param) -> type[LinkFault]:
    cls = type(toxic.title().replace("_", ""), (LinkFault,), {
        "name": name, "toxic_type": toxic, "summary": summary, "attributes": attributes,
        "params": COMMON + attributes, "__module__": __name__,
    })
    return register(cls)


Latency = link_fault("latency", "latency", "delay data on the links by latency ± jitter ms",
                     _attr("latency", 1000, "ms added to each chunk", "ms", (100, 3000)),
                     _attr("jitter", 0, "± ms, uniform", "ms", (0, 500)))
Bandwidth = link_fault("bandwidth", "bandwidth", "limit the links to rate KB/s",
                       _attr("rate", 10, "KB/s (1 KB = 1000 B)", "KB/s", (1, 100)))
Timeout = link_fault("timeout", "timeout", "black-hole the links: drop all data, close after timeout ms "
                                           "(0: never)", _attr("timeout", 0, "ms before closing; 0 = never", "ms", (0, 5000)))
ResetPeer = link_fault("reset-peer", "reset_peer", "reset (RST) connections timeout ms after data arrives",
                       _attr("timeout", 0, "ms before the RST", "ms", (0, 5000)))
# Toxiproxy sets SO_LINGER 0 only when a connection starts, so the open connections this fault is meant for
# would get a FIN, not the RST it promises.
ResetPeer.proxy_needs = {"reset-peer-on-open-connections":
                         "Toxiproxy resets only connections opened after the toxic is added; open ones get a FIN"}
SlowClose = link_fault("slow-close", "slow_close", "delay the close of connections by delay ms",
                       _attr("delay", 1000, "ms", "ms", (0, 3000)))
Slicer = link_fault("slicer", "slicer", "cut data into small pieces with delays between them",
                    _attr("average_size", 16, "bytes", "B", (1, 64)),
                    _attr("size_variation", 8, "bytes", "B", (0, 32)),
                    _attr("delay", 1000, "µs between pieces", "µs", (0, 3000)))
LimitData = link_fault("limit-data", "limit_data", "close connections after bytes bytes",
                       _attr("bytes", 1024, "bytes per connection and direction", "B", (0, 4096)))


@register
class LinkDown(LinkFault):
    name = "link-down"
    summary = "disable the proxied links (new connections refused, open ones closed); heal enables them"
    params = ()
    toxic_type = "latency"  # the no-op marker toxic that names the owner

    def streams(self) -> list[str]:
        return ["downstream"]

    def toxic_attributes(self) -> dict[str, Any]:
        return {"latency": 0}

    def inject(self) -> Effect:
        self.p = {**self.p, "toxicity": 1.0}
        super().inject()
        with proxy_client(self.ctx.stack) as client:
            for link in self.links:
                client.set_enabled(link, False)
            disabled = [l for l in self.links if not client.get_proxy(l)["enabled"]]
        return Effect(tuple(self.links), {"disabled": disabled, **self.picked()})

    def heal(self) -> Effect:
        with proxy_client(self.ctx.stack) as client:
            for link in self.links:
                client.set_enabled(link, True)
        super().heal()
        return Effect(tuple(self.links), {"enabled": True})
