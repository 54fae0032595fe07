"""Stack files: a Compose-shaped YAML description of a run's nodes and proxy links, checked before anything
starts, every error one line naming the file, the line and the key.

    topology = load_stack_file("stack/stacks/default.yaml", RunParams(run_id="r1", cookie="c"))

The format is drafted in `docs/design/own-stack.md`: `services:` in Compose's keys (`image`, `command`,
`environment`, `ports`, `depends_on`, `deploy.replicas`, `mem_limit`), `x-kind` for infrastructure of a
built-in kind (rabbitmq, zookeeper, redis, sentinel, proxy), `x-role` to share a role between services,
`x-testcontainer` for a service a testcontainers definition gives (`stack/testcontainers.py`), and
`x-chaos.links` for the client groups' links through the proxy. Environment values may name addresses:
`{{ via GROUP SERVICE }}`, `{{ direct SERVICE }}`, `{{ routes GROUP SERVICE }}`, and `{{ node }}`; a variable
whose templates resolve to nothing is left out.
The shipped `stack/stacks/default.yaml` and `small.yaml` give exactly the topologies of `stack.topology`.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from stack.app import MODULE_NAME, parse_app
from stack.topology import (AMQP_PORT, REDIS_PORT, SENTINEL_PORT, ZK_PORT, NodeSpec, OwnBuild, ProxyLink, RunParams,
                            Readiness, Topology, PROXY_PORT_BASE, proxy_node, rabbitmq_node, redis_node, sentinel_node,
                            zookeeper_node)

STACKS_DIR = Path(__file__).resolve().parent / "stacks"
INFRA_KINDS = ("rabbitmq", "zookeeper", "redis", "sentinel", "proxy")
SERVICE_PORTS = {"rabbitmq": AMQP_PORT, "zookeeper": ZK_PORT, "redis": REDIS_PORT, "sentinel": SENTINEL_PORT}
TOP_KEYS = ("name", "services")
CHAOS_KEYS = ("links", "client", "provider", "parked", "queues", "setup", "reset", "incidents")
INFRA_KEYS = ("x-kind", "image", "deploy", "x-clock")
SERVICE_KEYS = ("image", "build", "command", "environment", "ports", "depends_on", "deploy", "mem_limit", "healthcheck",
                "x-role", "x-clock", "x-testcontainer")
BUILD_KEYS = ("context", "dockerfile", "args", "x-site")
HEALTH_KEYS = ("test", "x-http", "x-tcp", "x-log", "x-port", "x-deadline", "timeout", "interval", "retries",
               "start_period")
TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


class Located:
    """Where each value of a parsed YAML document came from, by its path of keys and indexes."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[tuple, int] = {}

    def where(self, path: tuple) -> str:
        """`file:line: key.path`, the start of every error about the value at `path`."""
        line = self.lines.get(path)
        where = f"{self.source}:{line}" if line else self.source
        key = ".".join(str(p) for p in path)
        return f"{where}: {key}" if key else where

    def error(self, path: tuple, message: str) -> HarnessError:
        return HarnessError(f"{self.where(path)}: {message}")


def _plain(node, path: tuple, located: Located, loader) -> Any:
    """A composed YAML node as plain data, recording the line of every key and item; `loader` (one
    SafeLoader for the document) builds the scalars and expands merge keys."""
    import yaml

    located.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        own = [k.value for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"]
        twice = next((k for i, k in enumerate(own) if k in own[:i]), None)
        if twice is not None:
            raise located.error(path + (twice,), "given twice")
        loader.flatten_mapping(node)  # merge keys (<<: *anchor) first, as Compose files use them
        out: dict = {}
        for key_node, value_node in node.value:  # a key of the mapping's own overrides a merged one
            key = loader.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, (str, int)):
                raise located.error(path, "keys must be names")
            located.lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _plain(value_node, path + (key,), located, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, path + (i,), located, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node)


@dataclass
class _Service:
    name: str
    data: dict
    kind: str  # an infrastructure kind, or "service"
    nodes: list[str] = field(default_factory=list)


def load_stack_file(path: str | Path, params: RunParams) -> Topology:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise HarnessError(f"cannot read stack file {path}: {exc.strerror}") from None
    return parse_stack(text, str(path), params)


def shipped_stack(name: str) -> Path:
    """The stack file shipped for a topology name (`default`, `small`)."""
    return STACKS_DIR / f"{name}.yaml"


def parse_stack(text: str, source: str, params: RunParams) -> Topology:
    import yaml

    located = Located(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise HarnessError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if root is None:
        raise HarnessError(f"{source}: empty stack file")
    loader = yaml.SafeLoader("")
    try:
        data = _plain(root, (), located, loader)
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise located.error((), "a stack file is a mapping with 'name' and 'services'")
    for key in data:
        if key not in TOP_KEYS and not str(key).startswith("x-"):
            raise located.error((key,), f"unknown key (known: {', '.join(TOP_KEYS)}, and x- extensions)")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise located.error(("name",), "a stack needs a name")
    here = os.path.dirname(os.path.abspath(source))
    services = _services(data.get("services"), located, here)
    chaos = data.get("x-chaos", {})
    links = _links(chaos, services, located)
    nodes = _nodes(services, params, links, located, here)
    app = parse_app(chaos, services, located, here)
    if not params.with_services:
        app = None  # the infrastructure alone: no client, provider or app steps to run
    return Topology(name=name, nodes=tuple(nodes), links=links, app=app)


def _services(raw: Any, located: Located, here: str) -> dict[str, _Service]:
    if not isinstance(raw, dict) or not raw:
        raise located.error(("services",), "must map service names to their definitions")
    services: dict[str, _Service] = {}
    taken: dict[str, str] = {}
    for name, spec in raw.items():
        path = ("services", name)
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9-]*", name):
            raise located.error(path, "a service name is lower-case letters, digits and '-'")
        if not isinstance(spec, dict):
            raise located.error(path, "must be a mapping")
        kind = spec.get("x-kind", "service")
        if kind != "service" and kind not in INFRA_KINDS:
            raise located.error(path + ("x-kind",), f"unknown kind {kind!r} (known: {', '.join(INFRA_KINDS)})")
        allowed = INFRA_KEYS if kind != "service" else SERVICE_KEYS
        for key in spec:
            if key not in allowed:
                raise located.error(path + (key,), f"not a key of a {kind} service (known: {', '.join(allowed)})")
        if "x-testcontainer" in spec:
            spec = _testcontainer(spec, path, located, here)
        service = _Service(name, spec, kind)
        deploy = spec.get("deploy", {})
        if not isinstance(deploy, dict) or set(deploy) - {"replicas"}:
            raise located.error(path + ("deploy",), "only deploy.replicas is read")
        if "replicas" in deploy:
            replicas = deploy["replicas"]
            if not isinstance(replicas, int) or isinstance(replicas, bool) or not 1 <= replicas <= 9:
                raise located.error(path + ("deploy", "replicas"), f"must be a whole number 1..9, not {replicas!r}")
            service.nodes = [f"{name}{i}" for i in range(1, replicas + 1)]
        else:
            service.nodes = [name]
        for node in service.nodes:
            if node in taken:
                raise located.error(path, f"node {node!r} is also a node of service {taken[node]!r}")
            taken[node] = name
        services[name] = service
    for kind in ("redis", "proxy"):
        found = [s.name for s in services.values() if s.kind == kind]
        if len(found) > 1:
            raise located.error(("services", found[1]), f"a stack has at most one {kind} service")
    return services


def _testcontainer(spec: dict, path: tuple, located: Located, here: str) -> dict:
    """`x-testcontainer: module:attribute`: the service a testcontainers definition gives
    (`stack/testcontainers.py`) is the base, and the keys written beside it override it; `environment`
    merges, the file's entries winning. The result is checked as any service is, and what came from the
    definition is located at the x-testcontainer line, so that an error about it names that line."""
    from stack.testcontainers import definition, service_of

    key = path + ("x-testcontainer",)
    target = spec["x-testcontainer"]
    if "build" in spec:
        raise located.error(key, "a definition names its image: give build or x-testcontainer, not both")
    if not isinstance(target, str) or not MODULE_NAME.fullmatch(target):
        raise located.error(key, f"module:attribute, not {target!r}")
    where = located.where(key)
    own = {k: v for k, v in spec.items() if k != "x-testcontainer"}
    base = service_of(definition(target, here, where), where, replaced=set(own) - {"environment"})
    _locate(located, path, base, located.lines[key])
    if "environment" in base and "environment" in own:
        given = _env_mapping(own["environment"], path + ("environment",), located)
        if isinstance(given, dict):
            own["environment"] = {**base["environment"], **given}
    return {**base, **own}


def _locate(located: Located, path: tuple, value: Any, line: int) -> None:
    """Give `value` and everything in it `line`, where the file has no line of its own for it."""
    located.lines.setdefault(path, line)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        _locate(located, path + (key,), item, line)


def _links(chaos: Any, services: dict[str, _Service], located: Located) -> tuple[ProxyLink, ...]:
    if not isinstance(chaos, dict):
        raise located.error(("x-chaos",), "must be a mapping")
    for key in chaos:
        if key not in CHAOS_KEYS:
            raise located.error(("x-chaos", key), f"unknown key (known: {', '.join(CHAOS_KEYS)})")
    groups = chaos.get("links", {})
    if not isinstance(groups, dict):
        raise located.error(("x-chaos", "links"), "must map client groups to lists of services")
    if groups and not any(s.kind == "proxy" for s in services.values()):
        raise located.error(("x-chaos", "links"), "links go through the proxy: add a service with x-kind: proxy")
    links: list[ProxyLink] = []
    port = PROXY_PORT_BASE
    for group, targets in groups.items():
        path = ("x-chaos", "links", group)
        if not isinstance(targets, list):
            raise located.error(path, "must be a list of service names")
        for i, target in enumerate(targets):
            if target not in services:
                raise located.error(path + (i,), f"unknown service {target!r} (services: {', '.join(services)})")
            service = services[target]
            service_port = _service_port(service, located)
            for node in service.nodes:
                port += 1
                links.append(ProxyLink(group=group, node=node, port=service_port, listen_port=port))
    return tuple(links)


def _service_port(service: _Service, located: Located) -> int:
    if service.kind in SERVICE_PORTS:
        return SERVICE_PORTS[service.kind]
    ports = _ports(service, located)
    if not ports:
        raise located.error(("services", service.name), "a link to it needs its port: give it ports")
    return ports[0]


def _ports(service: _Service, located: Located) -> tuple[int, ...]:
    raw = service.data.get("ports", [])
    path = ("services", service.name, "ports")
    if not isinstance(raw, list):
        raise located.error(path, "must be a list of container ports")
    ports = []
    for i, port in enumerate(raw):
        value = int(port) if isinstance(port, str) and port.isdigit() else port
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
            raise located.error(path + (i,), f"a container port 1..65535 (published on 127.0.0.1), not {port!r}")
        ports.append(value)
    if len(set(ports)) != len(ports):
        raise located.error(path, "a port is listed twice")
    return tuple(ports)


def _nodes(services: dict[str, _Service], params: RunParams, links: tuple[ProxyLink, ...],
           located: Located, here: str) -> list[NodeSpec]:
    by_kind = {kind: [s for s in services.values() if s.kind == kind] for kind in INFRA_KINDS}
    redis_nodes = [n for s in by_kind["redis"] for n in s.nodes]
    nodes: list[NodeSpec] = []
    for service in services.values():
        if service.kind == "rabbitmq":
            nodes += [rabbitmq_node(n, service.nodes, params.cookie) for n in service.nodes]
        elif service.kind == "zookeeper":
            nodes += [zookeeper_node(n, i, service.nodes) for i, n in enumerate(service.nodes, 1)]
        elif service.kind == "redis":
            primary = service.nodes[0]
            nodes += [redis_node(n, "redis", None if n == primary else primary) for n in service.nodes]
        elif service.kind == "sentinel":
            if not redis_nodes:
                raise located.error(("services", service.name), "Sentinels watch a Redis service: add one")
            quorum = max(1, len(service.nodes) // 2 + 1)
            nodes += [sentinel_node(n, redis_nodes[0], quorum, redis_nodes) for n in service.nodes]
        elif service.kind == "proxy":
            nodes.append(proxy_node())
        elif params.with_services:
            nodes += _own_service(service, services, links, located, here)
    clock = _clock_nodes(services, located)
    nodes = [replace(n, clock=True) if n.name in clock else n for n in nodes]
    images = _infra_images(services, located)
    nodes = [replace(n, image=images[n.name]) if n.name in images else n for n in nodes]
    _check_start_order(nodes, located)
    return nodes


def _clock_nodes(services: dict[str, _Service], located: Located) -> set[str]:
    """`x-clock: true`: the service's nodes run under the harness's clock library, so that `clock-skew`
    can move their wall clock (faults/clock_skew.py); nodes that do not opt in are never skewed."""
    chosen: set[str] = set()
    for service in services.values():
        value = service.data.get("x-clock", False)
        if not isinstance(value, bool):
            raise located.error(("services", service.name, "x-clock"), f"true or false, not {value!r}")
        if value:
            chosen.update(service.nodes)
    return chosen


def _infra_images(services: dict[str, _Service], located: Located) -> dict[str, str]:
    """Node -> the image an infrastructure service names instead of the harness's own for its kind (an
    official image, say). It must be present locally (checked before anything starts); the kind's probes
    use only the product's own CLI or run from a helper, so the image needs no python3."""
    chosen = {}
    for service in services.values():
        image = service.data.get("image") if service.kind != "service" else None
        if image is None:
            continue
        if not isinstance(image, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._/:@-]*", image):
            raise located.error(("services", service.name, "image"), f"an image name, not {image!r}")
        chosen.update({node: image for node in service.nodes})
    return chosen


def _own_service(service: _Service, services: dict[str, _Service], links: tuple[ProxyLink, ...],
                 located: Located, here: str) -> list[NodeSpec]:
    path = ("services", service.name)
    data = service.data
    image = data.get("image")
    build = _build(service, located, here)
    if build is None and (not isinstance(image, str) or not image):
        raise located.error(path + ("image",), "a service needs an image, or a build")
    if build is not None:
        if image is not None and (not isinstance(image, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._/:-]*", image)):
            raise located.error(path + ("image",), f"an image name to tag the build with, not {image!r}")
        from stack.images import own_image_name

        build = OwnBuild(build.context, build.dockerfile, build.args, build.site, tag=image)
        image = own_image_name(build)
    command = data.get("command")
    if isinstance(command, str):
        command = tuple(shlex.split(command))
    elif isinstance(command, list) and all(isinstance(c, (str, int)) for c in command):
        command = tuple(str(c) for c in command)
    elif command is not None:
        raise located.error(path + ("command",), "a list of arguments or a string")
    mem = data.get("mem_limit")
    if mem is not None and not (isinstance(mem, str) and re.fullmatch(r"\d+[bkmg]?", mem.lower())):
        raise located.error(path + ("mem_limit",), f"a size such as 256m, not {mem!r}")
    after = _depends_on(service, services, located)
    env = _environment(service, located)
    ready = _healthcheck(service, located)
    role = data.get("x-role", service.name)
    if not isinstance(role, str) or not role:
        raise located.error(path + ("x-role",), "a role name")
    out = []
    for node in service.nodes:
        rendered = {k: _render(v, node, service, links, services, located, path + ("environment", k))
                    for k, v in env.items()}
        # A variable whose templates resolve to nothing is left out (routes when the proxy is bypassed).
        rendered = {k: v for k, v in rendered.items() if v or not TEMPLATE.search(env[k])}
        out.append(NodeSpec(name=node, role=role, image=image, command=command, env=rendered,
                            publish=_ports(service, located), mem_limit=mem, start_after=after, ready=ready,
                            build=build))
    return out


def _build(service: _Service, located: Located, here: str) -> OwnBuild | None:
    """Compose's `build`: a context folder (relative to the stack file), or {context, dockerfile, args},
    plus the harness's `x-site` (a requirements file in the context, installed on the host)."""
    path = ("services", service.name, "build")
    raw = service.data.get("build")
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"context": raw}
    if not isinstance(raw, dict):
        raise located.error(path, "a context folder, or a mapping with context, dockerfile, args, x-site")
    for key in raw:
        if key not in BUILD_KEYS:
            raise located.error(path + (key,), f"not read (known: {', '.join(BUILD_KEYS)})")
    context = raw.get("context", ".")
    if not isinstance(context, str) or not context:
        raise located.error(path + ("context",), "a folder, relative to the stack file")
    folder = Path(here, context).resolve()
    if not folder.is_dir():
        raise located.error(path + ("context",), f"no folder {folder}")
    dockerfile = raw.get("dockerfile", "Dockerfile")
    if not isinstance(dockerfile, str) or not (folder / dockerfile).is_file():
        raise located.error(path + ("dockerfile",) if "dockerfile" in raw else path,
                            f"no Dockerfile {folder / str(dockerfile)}")
    args = raw.get("args", {})
    if isinstance(args, list) and all(isinstance(a, str) and "=" in a for a in args):
        args = dict(a.split("=", 1) for a in args)
    if not isinstance(args, dict) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                             for v in args.values()):
        raise located.error(path + ("args",), "a mapping of build args to strings, or a list of KEY=value")
    if "BASE" in args:
        raise located.error(path + ("args", "BASE"), "BASE is the harness's base image; name the arg otherwise")
    site = raw.get("x-site")
    if site is not None and (not isinstance(site, str) or not (folder / site).is_file()):
        raise located.error(path + ("x-site",), f"a requirements file in the context, not {site!r}")
    if site is not None and (folder / "site").exists():
        raise located.error(path + ("x-site",), f"x-site fills the context's site/ folder, but {folder / 'site'} exists")
    return OwnBuild(str(folder), dockerfile, tuple(sorted((str(k), str(v)) for k, v in args.items())), site)


def _duration(value: Any) -> float | None:
    """Compose's durations ("1m30s", "500ms", "60s"), or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if value > 0 else None
    if not isinstance(value, str) or not re.fullmatch(r"(\d+(\.\d+)?(h|ms|m|s|us))+", value):
        return None
    unit = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    total = sum(float(n) * unit[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)(h|ms|m|s|us)", value))
    return total or None


def _healthcheck(service: _Service, located: Located) -> Readiness | None:
    """`healthcheck`: Compose's `test` (a command in the node), or `x-http` (a path, GET from the host
    on `x-port`), `x-tcp` (a port), `x-log` (a pattern of the node's log). `x-deadline` bounds the whole
    wait (default: the stack's boot timeout); Compose's `timeout` bounds one probe and `interval` spaces
    them (default 0.1 s for x-http and x-tcp, 0.5 s for test and x-log); `retries` and `start_period` are read as Compose files have them and not used: the deadline
    decides."""
    path = ("services", service.name, "healthcheck")
    raw = service.data.get("healthcheck")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise located.error(path, "a mapping (test, x-http, x-tcp or x-log, and timeout)")
    for key in raw:
        if key not in HEALTH_KEYS:
            raise located.error(path + (key,), f"not read (known: {', '.join(HEALTH_KEYS)})")
    given = [k for k in ("test", "x-http", "x-tcp", "x-log") if k in raw]
    if len(given) != 1:
        raise located.error(path, "give exactly one of test, x-http, x-tcp, x-log")
    how = given[0]
    times: dict[str, float | None] = {}
    for key in ("x-deadline", "timeout", "interval", "start_period"):
        if key in raw:
            value = _duration(raw[key])
            if value is None or value > 3600:
                raise located.error(path + (key,), f"a duration such as 60s or 1m30s, not {raw[key]!r}")
            times[key] = value
    if "retries" in raw and (not isinstance(raw["retries"], int) or isinstance(raw["retries"], bool)):
        raise located.error(path + ("retries",), f"a whole number, not {raw['retries']!r}")
    # Unless the file says: an HTTP or TCP probe from the host is cheap, so every 0.1 s (a reset waits
    # on the services it restarted, and each 0.5 s poll cost it 0.25 s on average); an exec or a log
    # read goes through the Docker API, so every 0.5 s.
    deadline = times.get("x-deadline")
    interval = times.get("interval") or (0.5 if how in ("test", "x-log") else 0.1)
    probe = min(times.get("timeout") or 5.0, 60.0)
    ports = _ports(service, located)
    if how == "test":
        test = raw["test"]
        if isinstance(test, str):
            command: tuple[str, ...] = ("sh", "-c", test)
        elif isinstance(test, list) and len(test) >= 2 and test[0] in ("CMD", "CMD-SHELL") \
                and all(isinstance(t, str) for t in test):
            command = tuple(test[1:]) if test[0] == "CMD" else ("sh", "-c", " ".join(test[1:]))
        else:
            raise located.error(path + ("test",), 'a command: ["CMD", "prog", "arg"], ["CMD-SHELL", "line"] or a string')
        return Readiness("exec", command, None, deadline, probe, interval)
    if how == "x-log":
        pattern = raw["x-log"]
        try:
            re.compile(pattern if isinstance(pattern, str) else "(")
        except re.error:
            pattern = None
        if not isinstance(pattern, str) or not pattern:
            raise located.error(path + ("x-log",), "a regular expression a line of the node's log matches")
        return Readiness("log", pattern, None, deadline, probe, interval)
    if how == "x-tcp":
        port = raw["x-tcp"]
        target = ""
    else:
        target = raw["x-http"]
        if not isinstance(target, str) or not target.startswith("/"):
            raise located.error(path + ("x-http",), f"a path starting with '/', not {target!r}")
        port = raw.get("x-port", ports[0] if len(ports) == 1 else None)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        key = "x-tcp" if how == "x-tcp" else "x-port"
        raise located.error(path + (key,), f"a container port 1..65535, not {port!r}")
    return Readiness("http" if how == "x-http" else "tcp", target, port, deadline, probe, interval)


def _depends_on(service: _Service, services: dict[str, _Service], located: Located) -> tuple[str, ...]:
    path = ("services", service.name, "depends_on")
    raw = service.data.get("depends_on", [])
    names = list(raw) if isinstance(raw, dict) else raw  # Compose's long form: {svc: {condition: ...}}
    if not isinstance(names, list):
        raise located.error(path, "a list of service names")
    after: list[str] = []
    for i, name in enumerate(names):
        if name not in services:
            raise located.error(path + (i,), f"unknown service {name!r}")
        after += services[name].nodes
    return tuple(after)


def _env_mapping(raw: Any, path: tuple, located: Located) -> Any:
    """Compose's list form of `environment` (["KEY=value", ...]) as a mapping, each variable at its
    item's line; any other value as it is."""
    if not isinstance(raw, list):
        return raw
    pairs = {}
    for i, item in enumerate(raw):
        if not isinstance(item, str) or "=" not in item:
            raise located.error(path + (i,), "KEY=value")
        key, value = item.split("=", 1)
        pairs[key] = value
        located.lines[path + (key,)] = located.lines.get(path + (i,), 0)
    return pairs


def _environment(service: _Service, located: Located) -> dict[str, str]:
    path = ("services", service.name, "environment")
    raw = _env_mapping(service.data.get("environment", {}), path, located)
    if not isinstance(raw, dict):
        raise located.error(path, "a mapping of variables, or a list of KEY=value")
    env = {}
    for key, value in raw.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise located.error(path + (key,), "a string or a number")
        env[str(key)] = str(value)
    return env


def _render(value: str, node: str, service: _Service, links: tuple[ProxyLink, ...],
            services: dict[str, _Service], located: Located, path: tuple) -> str:
    direct = os.environ.get("CHAOS_SERVICES_DIRECT", "") == "1"

    def one(match: re.Match) -> str:
        words = match.group(1).split()
        if words == ["node"]:
            return node
        verb = words[0] if words else ""
        if verb == "direct" and len(words) == 2:
            target = _target(words[1], services, located, path)
            return ",".join(f"{n}:{_service_port(target, located)}" for n in target.nodes)
        if verb in ("via", "routes") and len(words) == 3:
            group, target = words[1], _target(words[2], services, located, path)
            chosen = [l for l in links if l.group == group and l.node in target.nodes]
            if not any(l.group == group for l in links):
                raise located.error(path, f"no client group {group!r} in x-chaos.links")
            if not chosen:
                raise located.error(path, f"group {group!r} has no link to service {target.name!r}")
            if verb == "via":
                return ",".join(f"{l.node}:{l.port}" if direct else l.address for l in chosen)
            return "" if direct else ",".join(f"{l.node}:{l.port}={l.address}" for l in chosen)
        raise located.error(path, f"unknown template {match.group(0)!r} (known: {{{{ node }}}}, "
                                  "{{ direct SERVICE }}, {{ via GROUP SERVICE }}, {{ routes GROUP SERVICE }})")

    return TEMPLATE.sub(one, value)


def _target(name: str, services: dict[str, _Service], located: Located, path: tuple) -> _Service:
    if name not in services:
        raise located.error(path, f"unknown service {name!r} (services: {', '.join(services)})")
    return services[name]


def _check_start_order(nodes: list[NodeSpec], located: Located) -> None:
    """Every node's start_after and ready_before name nodes of the stack, with no cycle."""
    after = {n.name: set(n.start_after) | set(n.ready_before) for n in nodes}
    done: set[str] = set()
    pending = dict(after)
    while pending:
        free = [n for n, deps in pending.items() if deps <= done]
        if not free:
            missing = sorted({d for deps in pending.values() for d in deps} - set(after))
            what = f"they wait on nodes the stack does not run: {missing}" if missing else "a cycle"
            raise located.error(("services",), f"start order of {', '.join(sorted(pending))}: {what}")
        for n in free:
            done.add(n)
            del pending[n]


def describe(topology: Topology) -> list[str]:
    """The resolved nodes and links, one line each, for `chaos-harness stack check`."""
    lines = [f"stack {topology.name}: {len(topology.nodes)} nodes, {len(topology.links)} proxy links"]
    for n in topology.nodes:
        extra = [f"after {','.join(n.start_after)}"] if n.start_after else []
        extra += [f"publishes {','.join(map(str, n.publish))}"] if n.publish else []
        lines.append(f"  node {n.name}: role {n.role}, image {n.image}" + (f"; {'; '.join(extra)}" if extra else ""))
    for l in topology.links:
        lines.append(f"  link {l.name}: {l.group} -> {l.node}:{l.port} via {l.address}")
    app = topology.app
    if app is not None:
        c = app.client

        def statuses(s) -> str:
            return ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in s.ranges)

        lines.append(f"  client: {c.send.method} {c.node}:{c.port}{c.send.path}"
                     + (f", campaigns {c.campaign.method} {c.campaign.path}" if c.campaign else "")
                     + f"; accepted {statuses(c.accepted)}, refused {statuses(c.refused)}, else unknown")
        lines.append(f"  provider: {app.provider.node}:{app.provider.port}; parked: {app.parked_queue or 'none'}")
        lines.append(f"  setup: {', '.join(s.kind for s in app.setup) or 'none'}; reset: stop "
                     f"{','.join(app.reset_stop) or 'nothing'}, then {', '.join(s.kind for s in app.reset) or 'nothing'}")
        if app.incidents is not None:
            slots = ", ".join(f"{k}={b.nodes}" if b.nodes == b.links else f"{k}={b.nodes}/{b.links}"
                              for k, b in app.incidents.slots.items())
            given = "; ".join(f"{name} {', '.join(inputs)}" for name, inputs in app.incidents.inputs.items())
            lines.append(f"  incidents: slots {slots or 'by default'}; inputs {given or 'none'}")
    return lines
