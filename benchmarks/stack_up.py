"""Stack speed: cold image build, cached image check, up and down of each topology. Prints JSON.

    python benchmarks/stack_up.py [--skip-cold] [--topologies default,small] [--repeat 1]

Targets (issue 2): default topology up from cached images < 30 s; cached check < 2 s; cold build < 5 min.
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
        ups, downs = [], []
        for _ in range(args.repeat):
            stack = Stack(name, progress=quiet, with_services=not args.no_services)
            started = time.monotonic()
            stack.up()
            ups.append(time.monotonic() - started)
            started = time.monotonic()
            stack.down(quiet=True)
            downs.append(time.monotonic() - started)
        result["topologies"][name] = {"nodes": len(stack.topology.nodes), "services": not args.no_services,
                                      "up_s": [round(u, 1) for u in ups], "down_s": [round(d, 1) for d in downs]}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
