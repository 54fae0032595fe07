"""How the harness talks to the app under test, as data from the stack file's `x-chaos` block.

The engine knows no particular app. A stack file says:

    x-chaos:
      client:                 # how the workload submits a message (HTTP, JSON body)
        node: api             # a service (one node) or a node, and its published port
        port: 8080
        send: {path: /messages, body: {id: "{id}", channel: "{channel}", to: "{to}", body: "{text}"}}
        campaign: {path: /campaigns, body: {campaign_id: "{campaign}", recipients: "{recipients}"},
                   ids: "{campaign}:{recipient}"}      # optional: one request, many message ids
        accepted: ["200-299"]  # statuses that accept; refused ones are a definite no; any other: unknown
        refused: ["400-499", 503]
      provider: {node: sink, port: 8080}   # the recording provider (GET /deliveries, POST /reset, /control)
      parked: {amqp_queue: app.parked}     # where the app parks what it gave up on (optional)
      queues: [app.work]      # quorum queues it works from: generated schedules target their leaders
      setup: [...]            # steps once the infrastructure is ready, before the services start
      reset:                  # between runs: these services stop, the steps run, they start again
        stop: [scheduler, worker]
        steps: [...]
      incidents:              # optional: what the packaged incidents (harness/incidents) need of this app
        slots: {senders: workers, leader: scheduler, api: api}   # or {nodes: ROLE, links: GROUP}
        sender-deploy: {bug: {APP_FLAGS: reject-drop}}           # input -> the env it deploys

A step is one of `{amqp_purge: [QUEUE...]}`, `{redis_flush: true}`, `{exec: {node: N, command: [...],
timeout: S}}`, `{http: {node: N, port: P, method: POST, path: /x}}`, or `{python: "module:function"}`
(the escape hatch: called with an `AppContext`; the module is looked up beside the stack file first).
Body templates: `{id}`, `{channel}`, `{to}`, `{text}`, `{campaign}`, `{recipients}` (a value that is
exactly `"{recipients}"` becomes the list); campaign ids: `{campaign}`, `{recipient}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

STEP_KINDS = ("amqp_purge", "redis_flush", "exec", "http", "python")
SEND_FIELDS = ("id", "channel", "to", "text")
CAMPAIGN_FIELDS = ("campaign", "recipients", "text")
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
MODULE_NAME = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")  # module:name, as a python step or x-testcontainer


@dataclass(frozen=True)
class Endpoint:
    path: str
    body: Any
    method: str = "POST"

    def render(self, values: dict[str, Any]) -> Any:
        return _render(self.body, values)


def _render(template: Any, values: dict[str, Any]) -> Any:
    if isinstance(template, dict):
        return {k: _render(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_render(v, values) for v in template]
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template)
        if whole:  # a lone placeholder keeps its value's type (a list of recipients)
            return values[whole.group(1)]
        return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)
    return template


@dataclass(frozen=True)
class StatusSet:
    ranges: tuple[tuple[int, int], ...]

    def __contains__(self, status: int) -> bool:
        return any(lo <= status <= hi for lo, hi in self.ranges)


@dataclass(frozen=True)
class Client:
    node: str
    port: int
    send: Endpoint
    campaign: Endpoint | None = None
    campaign_ids: str = "{campaign}:{recipient}"
    accepted: StatusSet = StatusSet(((200, 299),))
    refused: StatusSet = StatusSet(((400, 499), (503, 503)))

    def outcome(self, status: int) -> str:
        """ok (accepted), fail (a definite refusal) or info (unknown), for a response status."""
        if status in self.accepted:
            return "ok"
        if status in self.refused:
            return "fail"
        return "info"

    def campaign_id(self, campaign: str, recipient: str) -> str:
        return self.campaign_ids.format(campaign=campaign, recipient=recipient)


# The shape the workload uses when nobody says otherwise (unit tests, a bare `Workload`).
DEFAULT_CLIENT = Client(
    node="api", port=8080,
    send=Endpoint("/messages", {"id": "{id}", "channel": "{channel}", "to": "{to}", "body": "{text}"}),
    campaign=Endpoint("/campaigns", {"campaign_id": "{campaign}", "recipients": "{recipients}", "body": "{text}"}))


@dataclass(frozen=True)
class Provider:
    node: str
    port: int


@dataclass(frozen=True)
class Step:
    kind: str  # one of STEP_KINDS
    args: Any
    where: str  # file:line, for errors at run time


@dataclass(frozen=True)
class App:
    client: Client
    provider: Provider
    parked_queue: str | None = None
    setup: tuple[Step, ...] = ()
    reset_stop: tuple[str, ...] = ()  # node names stopped while the reset steps run
    reset: tuple[Step, ...] = ()
    base_dir: str = "."  # the stack file's directory: `python` steps' modules are looked up there first
    queues: tuple[str, ...] = ()  # quorum queues the app works from
    incidents: "IncidentBindings | None" = None  # x-chaos.incidents


@dataclass(frozen=True)
class SlotBinding:
    """What an incident's slot (`senders`, `leader`, `api`) names in this stack: a node target (a role, its
    plural, a service or a node) and a client group of `x-chaos.links`; `where` is file:line."""

    nodes: str
    links: str
    where: str = ""


@dataclass(frozen=True)
class IncidentBindings:
    """`x-chaos.incidents`: slot bindings, and per incident the env each of its inputs deploys."""

    slots: dict[str, SlotBinding] = field(default_factory=dict)
    inputs: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)  # incident -> input -> env


@dataclass
class _Ctx:
    services: dict  # name -> stack.model._Service
    located: Any  # stack.model.Located
    nodes: dict[str, str] = field(default_factory=dict)  # node -> service


def parse_app(chaos: dict, services: dict, located, base_dir: str) -> App | None:
    """The app block of `x-chaos`, checked against the file's services; None when it has none."""
    keys = ("client", "provider", "parked", "queues", "setup", "reset", "incidents")
    if not any(k in chaos for k in keys):
        return None
    ctx = _Ctx(services, located, {n: s.name for s in services.values() for n in s.nodes})
    for key in ("client", "provider"):
        if key not in chaos:
            raise located.error(("x-chaos",), f"an app block needs x-chaos.{key} (it has {', '.join(k for k in keys if k in chaos)})")
    client = _client(chaos["client"], ctx)
    provider_raw = _mapping(chaos["provider"], ("x-chaos", "provider"), ctx, ("node", "port"))
    node, port = _node_port(provider_raw, ("x-chaos", "provider"), ctx)
    parked = None
    if "parked" in chaos:
        raw = _mapping(chaos["parked"], ("x-chaos", "parked"), ctx, ("amqp_queue",))
        parked = raw.get("amqp_queue")
        if not isinstance(parked, str) or not parked:
            raise located.error(("x-chaos", "parked", "amqp_queue"), "a queue name")
        _needs_kind("rabbitmq", ("x-chaos", "parked"), ctx)
    queues = chaos.get("queues", [])
    if not isinstance(queues, list) or not all(isinstance(q, str) and q for q in queues):
        raise located.error(("x-chaos", "queues"), "a list of queue names")
    if queues:
        _needs_kind("rabbitmq", ("x-chaos", "queues"), ctx)
    setup = _steps(chaos.get("setup", []), ("x-chaos", "setup"), ctx)
    reset_raw = _mapping(chaos.get("reset", {}), ("x-chaos", "reset"), ctx, ("stop", "steps"))
    stop_raw = reset_raw.get("stop", [])
    if not isinstance(stop_raw, list):
        raise located.error(("x-chaos", "reset", "stop"), "a list of services")
    stop: list[str] = []
    for i, name in enumerate(stop_raw):
        stop += _service_nodes(name, ("x-chaos", "reset", "stop", i), ctx)
    steps = _steps(reset_raw.get("steps", []), ("x-chaos", "reset", "steps"), ctx)
    incidents = _incidents(chaos["incidents"], chaos.get("links", {}), ctx) if "incidents" in chaos else None
    return App(client, Provider(node, port), parked, setup, tuple(stop), steps, base_dir, tuple(queues), incidents)


def _incidents(raw: Any, groups: dict, ctx: _Ctx) -> IncidentBindings:
    """`x-chaos.incidents`: `slots` (slot -> a name, or {nodes, links}) and, per packaged incident, its
    inputs (input -> env). Names are checked against the file here; what an incident needs of them
    (nodes to deploy to, links to a kind) is checked when it is run."""
    from harness.incidents import all_incidents

    path = ("x-chaos", "incidents")
    known = all_incidents()
    raw = _mapping(raw, path, ctx, ("slots", *known))
    slot_names = sorted({s for i in known.values() for s in i.slots})
    roles = {s.data.get("x-role", s.name) for s in ctx.services.values() if s.kind == "service"}
    kinds = {s.kind for s in ctx.services.values()}
    node_names = set(ctx.services) | set(ctx.nodes) | roles | {r + "s" for r in roles} | kinds
    slots: dict[str, SlotBinding] = {}
    for slot, value in _mapping(raw.get("slots", {}), path + ("slots",), ctx, tuple(slot_names)).items():
        where = path + ("slots", slot)
        line = ctx.located.lines.get(where)
        label = f"{ctx.located.source}:{line}" if line else ctx.located.source
        if isinstance(value, str):
            if value not in node_names and value not in groups:
                raise ctx.located.error(where, f"{value!r} is no service, role, node or client group of this file")
            slots[slot] = SlotBinding(value, value, label)
            continue
        value = _mapping(value, where, ctx, ("nodes", "links"))
        if set(value) != {"nodes", "links"}:
            raise ctx.located.error(where, "a name, or a mapping with both nodes (a role or service) and links "
                                           "(a client group)")
        if value["nodes"] not in node_names:
            raise ctx.located.error(where + ("nodes",), f"{value['nodes']!r} is no service, role or node of this file")
        if value["links"] not in groups:
            raise ctx.located.error(where + ("links",), f"{value['links']!r} is no client group of x-chaos.links "
                                                        f"(groups: {', '.join(groups) or 'none'})")
        slots[slot] = SlotBinding(value["nodes"], value["links"], label)
    inputs: dict[str, dict[str, dict[str, str]]] = {}
    for name, given in raw.items():
        if name == "slots":
            continue
        incident = known[name]
        given = _mapping(given if given is not None else {}, path + (name,), ctx, tuple(incident.inputs))
        inputs[name] = {key: _env(env, path + (name, key), ctx) for key, env in given.items()}
    return IncidentBindings(slots, inputs)


def _env(raw: Any, path: tuple, ctx: _Ctx) -> dict[str, str]:
    if not isinstance(raw, dict) or not raw:
        raise ctx.located.error(path, "a mapping of environment variables to values")
    env = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ctx.located.error(path + (key,), "an environment variable name")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ctx.located.error(path + (key,), "a string or a number")
        env[key] = str(value)
    return env


def _mapping(raw: Any, path: tuple, ctx: _Ctx, allowed: tuple[str, ...]) -> dict:
    if not isinstance(raw, dict):
        raise ctx.located.error(path, "must be a mapping")
    for key in raw:
        if key not in allowed:
            raise ctx.located.error(path + (key,), f"unknown key (known: {', '.join(allowed)})")
    return raw


def _service_nodes(name: Any, path: tuple, ctx: _Ctx) -> list[str]:
    if name in ctx.services:
        return list(ctx.services[name].nodes)
    if name in ctx.nodes:
        return [name]
    raise ctx.located.error(path, f"unknown service or node {name!r} (services: {', '.join(ctx.services)})")


def _one_node(name: Any, path: tuple, ctx: _Ctx) -> str:
    nodes = _service_nodes(name, path, ctx)
    if len(nodes) != 1:
        raise ctx.located.error(path, f"service {name!r} has {len(nodes)} nodes: name one of {', '.join(nodes)}")
    return nodes[0]


def _node_port(raw: dict, path: tuple, ctx: _Ctx) -> tuple[str, int]:
    from stack.model import _ports

    if "node" not in raw:
        raise ctx.located.error(path, "needs node (a service or node of this file)")
    node = _one_node(raw["node"], path + ("node",), ctx)
    service = ctx.services[ctx.nodes[node]]
    port = raw.get("port")
    published = _ports(service, ctx.located) if service.kind == "service" else ()
    if port not in published:
        raise ctx.located.error(path + ("port",), f"must be a port service {service.name!r} publishes "
                                                  f"(ports: {', '.join(map(str, published)) or 'none'}), not {port!r}")
    return node, port


def _needs_kind(kind: str, path: tuple, ctx: _Ctx) -> None:
    if not any(s.kind == kind for s in ctx.services.values()):
        raise ctx.located.error(path, f"needs a {kind} service in the stack")


def _endpoint(raw: Any, path: tuple, ctx: _Ctx, fields: tuple[str, ...]) -> Endpoint:
    raw = _mapping(raw, path, ctx, ("method", "path", "body", "ids"))
    url = raw.get("path")
    if not isinstance(url, str) or not url.startswith("/"):
        raise ctx.located.error(path + ("path",), f"a path starting with '/', not {url!r}")
    method = raw.get("method", "POST")
    if method not in ("POST", "PUT"):
        raise ctx.located.error(path + ("method",), f"POST or PUT, not {method!r}")
    body = raw.get("body")
    if not isinstance(body, dict):
        raise ctx.located.error(path + ("body",), "a JSON object, with placeholders such as \"{id}\"")
    used = set()

    def scan(value: Any, where: tuple) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                scan(v, where + (k,))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                scan(v, where + (i,))
        elif isinstance(value, str):
            for name in PLACEHOLDER.findall(value):
                if name not in fields:
                    raise ctx.located.error(where, f"unknown placeholder {{{name}}} (known: "
                                                   + ", ".join(f"{{{f}}}" for f in fields) + ")")
                used.add(name)

    scan(body, path + ("body",))
    key = fields[0]
    if key not in used:
        raise ctx.located.error(path + ("body",), f"the body must carry {{{key}}}: the provider tells messages apart by it")
    return Endpoint(url, body, method)


def _statuses(raw: Any, path: tuple, ctx: _Ctx, default: StatusSet) -> StatusSet:
    if raw is None:
        return default
    if not isinstance(raw, list) or not raw:
        raise ctx.located.error(path, "a list of statuses or ranges such as \"200-299\"")
    ranges = []
    for i, item in enumerate(raw):
        m = re.fullmatch(r"(\d{3})(?:-(\d{3}))?", str(item))
        if not m or int(m.group(2) or m.group(1)) < int(m.group(1)):
            raise ctx.located.error(path + (i,), f"a status (503) or a range (\"400-499\"), not {item!r}")
        ranges.append((int(m.group(1)), int(m.group(2) or m.group(1))))
    return StatusSet(tuple(ranges))


def _client(raw: Any, ctx: _Ctx) -> Client:
    path = ("x-chaos", "client")
    raw = _mapping(raw, path, ctx, ("node", "port", "send", "campaign", "accepted", "refused"))
    node, port = _node_port(raw, path, ctx)
    if "send" not in raw:
        raise ctx.located.error(path, "needs send: {path, body}")
    send = _endpoint(raw["send"], path + ("send",), ctx, SEND_FIELDS)
    campaign, ids = None, DEFAULT_CLIENT.campaign_ids
    if "campaign" in raw:
        campaign = _endpoint(raw["campaign"], path + ("campaign",), ctx, CAMPAIGN_FIELDS)
        ids = raw["campaign"].get("ids", ids)
        if (not isinstance(ids, str) or "{campaign}" not in ids or "{recipient}" not in ids
                or set(PLACEHOLDER.findall(ids)) != {"campaign", "recipient"} or ids.count("{") != ids.count("}")):
            raise ctx.located.error(path + ("campaign", "ids"), "a template with {campaign} and {recipient}, and no other")
    accepted = _statuses(raw.get("accepted"), path + ("accepted",), ctx, DEFAULT_CLIENT.accepted)
    refused = _statuses(raw.get("refused"), path + ("refused",), ctx, DEFAULT_CLIENT.refused)
    both = [s for s in range(100, 600) if s in accepted and s in refused]
    if both:
        raise ctx.located.error(path + ("refused",), f"status {both[0]} is both accepted and refused")
    return Client(node, port, send, campaign, ids, accepted, refused)


def _steps(raw: Any, path: tuple, ctx: _Ctx) -> tuple[Step, ...]:
    if not isinstance(raw, list):
        raise ctx.located.error(path, "a list of steps")
    steps = []
    for i, item in enumerate(raw):
        where = path + (i,)
        if not isinstance(item, dict) or len(item) != 1:
            raise ctx.located.error(where, f"a step is one of {', '.join(STEP_KINDS)}")
        (kind, args), = item.items()
        if kind not in STEP_KINDS:
            raise ctx.located.error(where + (kind,), f"unknown step (known: {', '.join(STEP_KINDS)})")
        line = ctx.located.lines.get(where + (kind,))
        label = f"{ctx.located.source}:{line}" if line else ctx.located.source
        steps.append(Step(kind, _step_args(kind, args, where + (kind,), ctx), label))
    return tuple(steps)


def _step_args(kind: str, args: Any, path: tuple, ctx: _Ctx) -> Any:
    error = ctx.located.error
    if kind == "amqp_purge":
        _needs_kind("rabbitmq", path, ctx)
        if not isinstance(args, list) or not args or not all(isinstance(q, str) and q for q in args):
            raise error(path, "a list of queue names")
        return tuple(args)
    if kind == "redis_flush":
        _needs_kind("redis", path, ctx)
        if args is not True:
            raise error(path, "true")
        return True
    if kind == "exec":
        args = _mapping(args, path, ctx, ("node", "command", "timeout"))
        node = _one_node(args.get("node"), path + ("node",), ctx)
        command = args.get("command")
        if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
            raise error(path + ("command",), "a list of arguments")
        timeout = args.get("timeout", 30)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 1 <= timeout <= 600:
            raise error(path + ("timeout",), f"seconds within 1..600, not {timeout!r}")
        return {"node": node, "command": tuple(command), "timeout": float(timeout)}
    if kind == "http":
        args = _mapping(args, path, ctx, ("node", "port", "method", "path"))
        node, port = _node_port(args, path, ctx)
        method = args.get("method", "POST")
        if method not in ("GET", "POST", "PUT", "DELETE"):
            raise error(path + ("method",), f"GET, POST, PUT or DELETE, not {method!r}")
        url = args.get("path")
        if not isinstance(url, str) or not url.startswith("/"):
            raise error(path + ("path",), f"a path starting with '/', not {url!r}")
        return {"node": node, "port": port, "method": method, "path": url}
    # python
    if not isinstance(args, str) or not MODULE_NAME.fullmatch(args):
        raise error(path, f"module:function, not {args!r}")
    return args
