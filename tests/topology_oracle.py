"""The topologies as the Python builders made them before stack files: the frozen reference that the
shipped `stack/stacks/*.yaml` must reproduce node by node (tests/unit/test_stack_file.py), so that moving
the runtime onto the files changed no verdict. Not used by the harness."""

from __future__ import annotations

import os

from stack.images import own_image_name
from stack.model import STACKS_DIR
from stack.topology import (OwnBuild, AMQP_PORT, HTTP_PORT, PROXY_PORT_BASE, REDIS_PORT, SENTINEL_PORT, ZK_PORT, NodeSpec,
                            ProxyLink, Readiness, RunParams, Topology, proxy_node, rabbitmq_node, redis_node, sentinel_node,
                            zookeeper_node)

# The reference app is built from its folder beside the shipped stack files; the sink runs from the
# harness's provider image.
APP_BUILD = OwnBuild(str(STACKS_DIR / "dispatch"), site="requirements.txt")
WORKERS = {"default": 2, "small": 1}


def _join(items) -> str:
    return ",".join(items)


def group_env(topology: Topology, group: str, direct: bool) -> dict[str, str]:
    """AMQP_ADDRS, ZK_HOSTS, REDIS_SENTINELS, REDIS_ROUTES (real master -> proxy), SINK_URL for a group."""
    def reach(role: str) -> list[str]:
        return [f"{l.node}:{l.port}" if direct else l.address for l in topology.links_of(group, role)]

    env = {"AMQP_ADDRS": _join(reach("rabbitmq")), "ZK_HOSTS": _join(reach("zookeeper")),
           "REDIS_SENTINELS": _join(reach("sentinel"))}
    if not direct:
        # Sentinel names the real master (redis1:6379): the service maps it to its proxy link.
        env["REDIS_ROUTES"] = _join(f"{l.node}:{l.port}={l.address}" for l in topology.links_of(group, "redis"))
    sink = [l for l in topology.links_of(group) if l.node == "sink"]
    if sink:
        env["SINK_URL"] = f"http://sink:{HTTP_PORT}" if direct else f"http://{sink[0].address}"
    return {k: v for k, v in env.items() if v}


def _service(name: str, role: str, module: str, env: dict[str, str], mem: str,
             publish: tuple[int, ...] = (), start_after: tuple[str, ...] = ()) -> NodeSpec:
    if module == "sink":
        image, build, command = "provider", None, ("python3", "-m", "stack.provider.sink")
    else:
        image, build, command = own_image_name(APP_BUILD), APP_BUILD, ("python3", "-m", f"dispatch.{module}")
    return NodeSpec(name=name, role=role, image=image, command=command,
                    env={"SERVICE_NAME": name, "HTTP_PORT": str(HTTP_PORT), **env},
                    publish=publish, mem_limit=mem, start_after=start_after,
                    ready=Readiness("http", "/health", HTTP_PORT, interval_s=0.1), build=build)


def service_nodes(topology: Topology, topology_name: str, direct: bool | None = None) -> list[NodeSpec]:
    if direct is None:
        direct = os.environ.get("CHAOS_SERVICES_DIRECT", "") == "1"
    workers = WORKERS.get(topology_name, 2)
    nodes = [
        _service("sink", "sink", "sink", {"SINK_LOG": "/var/lib/chaos-sink/deliveries.jsonl"}, "256m",
                 publish=(HTTP_PORT,)),
        _service("api", "api", "api", group_env(topology, "api", direct), "256m", publish=(HTTP_PORT,)),
        _service("scheduler", "scheduler", "scheduler", group_env(topology, "scheduler", direct), "192m"),
        # The standby reaches ZooKeeper straight, not through the scheduler group's links: a fault on
        # those links then takes the leader's session away while the standby can take over.
        _service("scheduler2", "scheduler", "scheduler",
                 {**group_env(topology, "scheduler", direct),
                  "ZK_HOSTS": group_env(topology, "scheduler", True)["ZK_HOSTS"]}, "192m",
                 start_after=("scheduler",)),
    ]
    nodes += [_service(f"worker{i}", "worker", "worker", group_env(topology, "workers", direct), "192m",
                       start_after=("sink",))
              for i in range(1, workers + 1)]
    return nodes


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
        topology = Topology(name=name, nodes=topology.nodes + tuple(service_nodes(topology, name)),
                            links=links)
    return topology



def legacy_topology(name: str, params: RunParams) -> Topology:
    sizes = {"default": dict(rabbit=3, zk=3, sentinels=3), "small": dict(rabbit=1, zk=1, sentinels=1)}[name]
    return _build(name, params, **sizes)
