"""Stack speed: cold image build, cached image check, up and down of each topology. Prints JSON.

    python benchmarks/stack_up.py [--skip-cold] [--topologies default,small] [--repeat 1]

Targets (issue 2): default topology up from cached images < 30 s; cached check < 2 s; cold build < 5 min.
Issue 17 asks for the default topology up in < 20 s.

Per topology it also reports the CPU seconds the run's containers had used when `up` returned (`cpu_s`,
by role in `cpu_by_role_s`, from each container's cgroup counter), and `cpu_floor_s`, that divided by this
machine's CPUs: no ordering of the same work brings the stack up faster than that on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stack.docker_api import docker_client  # noqa: E402
from stack.images import ensure_images  # noqa: E402
from stack.stack import Stack  # noqa: E402


def quiet(_line: str) -> None:
    pass


def container_cpu_s(stack: Stack) -> dict[str, float]:
    """CPU seconds each role's containers have used since they started (their cgroup's counter)."""
    by_role: dict[str, float] = {}
    for node in stack.topology.nodes:
        stats = stack.container(node.name).stats(stream=False, one_shot=True)
        used = stats.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage", 0) / 1e9
        by_role[node.role] = by_role.get(node.role, 0.0) + used
    return by_role


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-cold", action="store_true", help="do not rebuild every image from scratch")
    parser.add_argument("--topologies", default="default,small")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-services", action="store_true")
    args = parser.parse_args()
    client = docker_client()
    result: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                    "targets_s": {"default_up": 30, "cached_check": 2, "cold_build": 300}}
    if not args.skip_cold:
        started = time.monotonic()
        ensure_images(client, progress=quiet, force=True)
        result["cold_build_s"] = round(time.monotonic() - started, 1)
    else:
        ensure_images(client, progress=quiet)
    checks = []
    for _ in range(3):
        started = time.monotonic()
        ensure_images(client, progress=quiet)
        checks.append(time.monotonic() - started)
    result["cached_check_s"] = round(statistics.median(checks), 3)
    result["topologies"] = {}
    for name in args.topologies.split(","):
        ups, downs, cpu = [], [], []
        for _ in range(args.repeat):
            stack = Stack(name, progress=quiet, with_services=not args.no_services)
            started = time.monotonic()
            stack.up()
            ups.append(time.monotonic() - started)
            cpu.append(container_cpu_s(stack))
            started = time.monotonic()
            stack.down(quiet=True)
            downs.append(time.monotonic() - started)
        result["topologies"][name] = {"nodes": len(stack.topology.nodes), "services": not args.no_services,
                                      "up_s": [round(u, 1) for u in ups], "down_s": [round(d, 1) for d in downs],
                                      "cpu_s": [round(sum(c.values()), 1) for c in cpu],
                                      "cpu_floor_s": [round(sum(c.values()) / (os.cpu_count() or 1), 1) for c in cpu],
                                      "cpu_by_role_s": {role: round(statistics.median(c.get(role, 0.0) for c in cpu), 1)
                                                        for role in sorted({r for c in cpu for r in c})}}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
