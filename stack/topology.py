"""Topologies as data: which nodes a run has, what each runs, and which links go through the proxy.

A `NodeSpec` reads like its `docker run` line. `build_topology(name, run)` returns the nodes for one
run (per-run Erlang cookie, per-run names); `stack.stack.Stack` brings them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

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


@dataclass(frozen=True)
class ConfigFile:
    path: str
    content: str
    mode: int = 0o644
    owner: str = "root"  # a user name inside the image; resolved when the file is copied in


@dataclass(frozen=True)
class NodeSpec:
    """One container: like `docker run --name <run>-<name> --hostname <name> <image> <command>`."""

    name: str
    role: str
    image: str  # an image key from stack.images (rabbitmq, zookeeper, redis, services)
    command: tuple[str, ...] | None = None
    env: dict[str, str] = field(default_factory=dict)
    files: tuple[ConfigFile, ...] = ()
    user: str | None = None
    publish: tuple[int, ...] = ()  # container ports published on 127.0.0.1
    mem_limit: str | None = None
    start_after: tuple[str, ...] = ()  # nodes whose containers must be running first (DNS names)
    ready_before: tuple[str, ...] = ()  # nodes that must answer their readiness probe first
    cap_add: tuple[str, ...] = ()


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
        files=(ConfigFile("/etc/chaos/redis/redis.conf", "\n".join(lines) + "\n"),),
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
        files=(ConfigFile("/etc/chaos/redis/sentinel.conf", "\n".join(lines) + "\n", mode=0o666),),
        mem_limit="128m",
        start_after=tuple(redis_nodes),
    )


def proxy_node(seed: int = 0) -> NodeSpec:
    return NodeSpec(
        name="proxy", role="proxy", image="services",
        command=("python3", "-m", "faults.toxiproxy.server", "--host", "0.0.0.0",
                 "--port", str(PROXY_API_PORT), "--seed", str(seed)),
        publish=(PROXY_API_PORT,),
        mem_limit="256m",
    )


# ----------------------------------------------------------------------------------------------
# Links through the proxy, per client group.

def _links(groups: dict[str, list[tuple[str, int]]]) -> tuple[ProxyLink, ...]:
    links: list[ProxyLink] = []
    port = PROXY_PORT_BASE
    for group, targets in groups.items():
        for node, service_port in targets:
            port += 1
            links.append(ProxyLink(group=group, node=node, port=service_port, listen_port=port))
    return tuple(links)


def _build(name: str, params: RunParams, rabbit: int, zk: int, sentinels: int) -> Topology:
    rmq = [f"rmq{i}" for i in range(1, rabbit + 1)]
    zks = [f"zk{i}" for i in range(1, zk + 1)]
    redis = ["redis1", "redis2"]
    sents = [f"sentinel{i}" for i in range(1, sentinels + 1)]
    nodes: list[NodeSpec] = [rabbitmq_node(n, rmq, params.cookie) for n in rmq]
    nodes += [zookeeper_node(n, i, zks) for i, n in enumerate(zks, 1)]
    nodes.append(redis_node("redis1", "redis", None))
    nodes.append(redis_node("redis2", "redis", "redis1"))
    nodes += [sentinel_node(n, "redis1", max(1, sentinels // 2 + 1), redis) for n in sents]
    nodes.append(proxy_node())
    amqp = [(n, AMQP_PORT) for n in rmq]
    zkp = [(n, ZK_PORT) for n in zks]
    red = [(n, REDIS_PORT) for n in redis] + [(n, SENTINEL_PORT) for n in sents]
    groups = {
        "api": amqp + zkp + red,
        "workers": amqp + red + [("sink", HTTP_PORT)],
        "scheduler": amqp + zkp + red,
    }
    links = _links(groups)
    topology = Topology(name=name, nodes=tuple(nodes), links=links)
    if params.with_services:
        from stack.services.deploy import service_nodes

        topology = Topology(name=name, nodes=topology.nodes + tuple(service_nodes(topology, name)),
                            links=links)
    return topology


TOPOLOGIES: dict[str, Callable[[RunParams], Topology]] = {
    "default": lambda p: _build("default", p, rabbit=3, zk=3, sentinels=3),
    "small": lambda p: _build("small", p, rabbit=1, zk=1, sentinels=1),
}


def build_topology(name: str, params: RunParams) -> Topology:
    try:
        factory = TOPOLOGIES[name]
    except KeyError:
        raise HarnessError(f"unknown topology {name!r}: choose one of {', '.join(sorted(TOPOLOGIES))}") from None
    return factory(params)
