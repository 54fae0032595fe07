"""How the dispatch services are deployed: one `NodeSpec` per service, its env naming every address.

Each client group (api, workers, scheduler) reaches the infrastructure through its own proxy links,
so a fault can hit one group's link to one node. `CHAOS_SERVICES_DIRECT=1` in the harness's
environment (read when the topology is built) deploys them straight at the nodes instead: the
baseline for measuring what the proxy costs.
"""

from __future__ import annotations

import os

from stack.topology import HTTP_PORT, NodeSpec, Topology

IMAGE = "services"
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
    return NodeSpec(name=name, role=role, image=IMAGE, command=("python3", "-m", f"stack.services.{module}"),
                    env={"SERVICE_NAME": name, "HTTP_PORT": str(HTTP_PORT), **env},
                    publish=publish, mem_limit=mem, start_after=start_after)


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
