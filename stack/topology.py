"""Topologies as data: which nodes a run has, what each runs, and which links go through the proxy.

A `NodeSpec` reads like its `docker run` line. `build_topology(name_or_file, run)` returns the nodes for
one run (per-run Erlang cookie, per-run names) from a stack file (`stack/model.py`: `default` and `small`
are shipped in `stack/stacks/`); the node builders of the built-in kinds live here; `stack.stack.Stack`
brings them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.errors import HarnessError

AMQP_PORT = 5672
ZK_PORT = 2181
REDIS_PORT = 6379
SENTINEL_PORT = 26379
PROXY_API_PORT = 8474
HTTP_PORT = 8080
# Proxy listen ports stay below the ephemeral range (Toxiproxy's README advice).
PROXY_PORT_BASE = 20000
REDIS_MASTER_NAME = "mymaster"

if TYPE_CHECKING:
    from stack.app import App


@dataclass(frozen=True)
class ConfigFile:
    path: str
    content: str | bytes
    mode: int = 0o644
    owner: str = "root"  # a user name inside the image; resolved when the file is copied in


@dataclass(frozen=True)
class Readiness:
    """When an app service is ready, from its stack file's `healthcheck`: `http` (GET path on port, 2xx),
    `tcp` (port accepts), both from the host to the node's address on the run network; `exec` (the
    command exits 0 in the node); `log` (a line of the node's log matches)."""

    how: str  # http | tcp | exec | log
    target: str | tuple[str, ...] = ""  # the path, the command, or the log pattern
    port: int | None = None
    deadline_s: float | None = None  # None: the stack's boot timeout
    probe_timeout_s: float = 5.0  # one probe
    interval_s: float = 0.5


@dataclass(frozen=True)
class OwnBuild:
    """A stack file's `build:` (Compose's keys): the image is built from `context` (an absolute folder)
    with `dockerfile` in it and `args` as build args, plus BASE, the harness's base image. `site` is the
    harness's `x-site`: a requirements file in the context, installed on the host into its site/ folder.
    `tag` is the service's `image:` when it gives one: the built image gets that name too."""

    context: str
    dockerfile: str = "Dockerfile"
    args: tuple[tuple[str, str], ...] = ()
    site: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class NodeSpec:
    """One container: like `docker run --name <run>-<name> --hostname <name> <image> <command>`."""

    name: str
    role: str
    image: str  # an image key of stack.images (rabbitmq, zookeeper, redis, proxy, provider) or a name
    command: tuple[str, ...] | None = None
    env: dict[str, str] = field(default_factory=dict)
    files: tuple[ConfigFile, ...] = ()
    user: str | None = None
    publish: tuple[int, ...] = ()  # container ports published on 127.0.0.1
    mem_limit: str | None = None
    start_after: tuple[str, ...] = ()  # nodes whose containers must be running first (DNS names)
    ready_before: tuple[str, ...] = ()  # nodes that must answer their readiness probe first
    cap_add: tuple[str, ...] = ()
    ready: Readiness | None = None  # app services only; None: ready once its container runs
    build: OwnBuild | None = None  # built from the stack file's `build:` (image is then its hashed tag)
    clock: bool = False  # `x-clock: true`: runs under the clock library clock-skew works through (stack.clock)


@dataclass(frozen=True)
class ProxyLink:
    """A client group's link to one service node, through the proxy: `<group>-<node>`."""

    group: str
    node: str
    port: int  # the node's service port
    listen_port: int

    @property
    def name(self) -> str:
        return f"{self.group}-{self.node}"

    @property
    def address(self) -> str:
        return f"proxy:{self.listen_port}"


@dataclass(frozen=True)
class Topology:
    name: str
    nodes: tuple[NodeSpec, ...]
    links: tuple[ProxyLink, ...]
    app: "App | None" = None  # how the harness talks to the app (stack.app); None: no app services

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def by_role(self, role: str) -> list[NodeSpec]:
        return [n for n in self.nodes if n.role == role]

    def names(self, role: str) -> list[str]:
        return [n.name for n in self.by_role(role)]

    def links_of(self, group: str, role: str | None = None) -> list[ProxyLink]:
        wanted = set(self.names(role)) if role else None
        return [l for l in self.links if l.group == group and (wanted is None or l.node in wanted)]


@dataclass(frozen=True)
class RunParams:
    run_id: str
    cookie: str
    with_services: bool = True


# ----------------------------------------------------------------------------------------------
# Per-service configuration.

def rabbitmq_node(name: str, peers: list[str], cookie: str) -> NodeSpec:
    # The first node is the seed: it lists only itself, so it boots at once instead of waiting out
    # the discovery retries of a cluster where every node is new; the others join it.
    discover = [name] if name == peers[0] else peers
    lines = [
        "cluster_formation.peer_discovery_backend = classic_config",
        *[f"cluster_formation.classic_config.nodes.{i} = rabbit@{p}" for i, p in enumerate(discover, 1)],
        "cluster_formation.discovery_retry_limit = 60",
        "cluster_formation.discovery_retry_interval = 1000",
        "cluster_partition_handling = pause_minority" if len(peers) > 2 else "cluster_partition_handling = ignore",
        "loopback_users.guest = false",
        "log.console = true",
        "log.console.level = info",
        "log.file = false",
        # The host has 24 GiB but the default stack shares it; a fixed budget keeps alarms predictable.
        "vm_memory_high_watermark.absolute = 1GB",
        "disk_free_limit.absolute = 50MB",
        "heartbeat = 10",
        "collect_statistics_interval = 30000",
    ]
    return NodeSpec(
        name=name, role="rabbitmq", image="rabbitmq",
        env={
            "RABBITMQ_NODENAME": f"rabbit@{name}",
            "RABBITMQ_ERLANG_COOKIE": cookie,
            "RABBITMQ_CONFIG_FILE": "/etc/rabbitmq/rabbitmq.conf",
            # Two cores for the whole stack: no busy-waiting schedulers, fewer of them.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none",
            "RABBITMQ_CTL_ERL_ARGS": "+S 1:1 +sbwt none",
        },
        files=(ConfigFile("/etc/rabbitmq/rabbitmq.conf", "\n".join(lines) + "\n", owner="rabbitmq"),),
        publish=(AMQP_PORT,),
        mem_limit="1536m",
        # New nodes that boot together fight over discovery's global lock while the seed has no
        # tables yet; joining a seed that already serves is quick and certain.
        ready_before=() if name == peers[0] else (peers[0],),
    )


def zookeeper_node(name: str, myid: int, ensemble: list[str]) -> NodeSpec:
    lines = [
        "tickTime=1000", "initLimit=10", "syncLimit=5",
        "dataDir=/var/lib/chaos-zookeeper", f"clientPort={ZK_PORT}",
        "4lw.commands.whitelist=ruok,srvr,mntr,stat,conf,isro,envi",
        "admin.enableServer=false",
        "maxSessionTimeout=20000",
    ]
    if len(ensemble) > 1:
        lines.append("standaloneEnabled=false")
        for i, peer in enumerate(ensemble, 1):
            host = "0.0.0.0" if peer == name else peer
            lines.append(f"server.{i}={host}:2888:3888")
    log4j = "\n".join([
        "log4j.rootLogger=INFO, CONSOLE",
        "log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender",
        "log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout",
        "log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n",
    ]) + "\n"
    return NodeSpec(
        name=name, role="zookeeper", image="zookeeper",
        files=(
            ConfigFile("/etc/chaos/zookeeper/zoo.cfg", "\n".join(lines) + "\n"),
            ConfigFile("/etc/chaos/zookeeper/log4j.properties", log4j),
            ConfigFile("/var/lib/chaos-zookeeper/myid", f"{myid}\n"),
        ),
        mem_limit="512m",
    )


def redis_node(name: str, role: str, primary: str | None) -> NodeSpec:
    lines = [
        "bind 0.0.0.0", "protected-mode no", f"port {REDIS_PORT}", "dir /var/lib/chaos-redis",
        "appendonly yes", "appendfsync everysec",
        # Sentinel and clients see names, not container IPs that change on restart.
        f"replica-announce-ip {name}",
    ]
    if primary:
        lines.append(f"replicaof {primary} {REDIS_PORT}")
    return NodeSpec(
        name=name, role=role, image="redis",
        command=("redis-server", "/etc/chaos/redis/redis.conf"),
        # Owned by `redis` (Debian's package and the official image both have that user), with the data
        # folder made by the copy: an image whose entrypoint drops to that user (the official one does)
        # can write both, and the image needs no folder of ours.
        files=(ConfigFile("/etc/chaos/redis/redis.conf", "\n".join(lines) + "\n", owner="redis"),
               ConfigFile("/var/lib/chaos-redis/.chaos", "", owner="redis")),
        mem_limit="512m",
        start_after=(primary,) if primary else (),
    )


def sentinel_node(name: str, primary: str, quorum: int, redis_nodes: list[str]) -> NodeSpec:
    # No `sentinel myid` line: each Sentinel must pick its own id, or they never see each other.
    lines = [
        f"port {SENTINEL_PORT}", "protected-mode no", "dir /tmp",
        "sentinel resolve-hostnames yes", "sentinel announce-hostnames yes",
        f"sentinel announce-ip {name}",
        f"sentinel monitor {REDIS_MASTER_NAME} {primary} {REDIS_PORT} {quorum}",
        f"sentinel down-after-milliseconds {REDIS_MASTER_NAME} 3000",
        f"sentinel failover-timeout {REDIS_MASTER_NAME} 10000",
        f"sentinel parallel-syncs {REDIS_MASTER_NAME} 1",
    ]
    return NodeSpec(
        name=name, role="sentinel", image="redis",
        command=("redis-sentinel", "/etc/chaos/redis/sentinel.conf"),
        # Sentinel rewrites its file (a new one beside it, renamed): its folder must be its user's.
        files=(ConfigFile("/etc/chaos/redis/sentinel.conf", "\n".join(lines) + "\n", mode=0o666, owner="redis"),),
        mem_limit="128m",
        start_after=tuple(redis_nodes),
    )


def proxy_node(seed: int = 0) -> NodeSpec:
    return NodeSpec(
        name="proxy", role="proxy", image="proxy",
        command=("python3", "-m", "faults.toxiproxy.server", "--host", "0.0.0.0",
                 "--port", str(PROXY_API_PORT), "--seed", str(seed)),
        publish=(PROXY_API_PORT,),
        mem_limit="256m",
    )


# ----------------------------------------------------------------------------------------------
# Topologies come from stack files (stack/model.py): shipped ones by name, a team's own by path.

def topology_names() -> list[str]:
    from stack.model import STACKS_DIR

    return sorted(p.stem for p in STACKS_DIR.glob("*.yaml"))


def stack_file_of(name_or_path: str) -> str:
    """The stack file a topology name (`default`, `small`) or a path names; one error line if neither."""
    from pathlib import Path

    from stack.model import shipped_stack

    if name_or_path in topology_names():
        return str(shipped_stack(name_or_path))
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise HarnessError(f"no stack file {name_or_path}")
        return str(path.resolve())
    raise HarnessError(f"unknown topology {name_or_path!r}: choose one of {', '.join(topology_names())}, "
                       "or give a stack file (.yaml)")


def build_topology(name: str, params: RunParams) -> Topology:
    """The topology of a shipped stack (by name) or of a stack file (by path), for one run."""
    from stack.model import load_stack_file

    return load_stack_file(stack_file_of(name), params)
