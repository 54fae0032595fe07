"""The reference app's own reset step (the stack file's `x-chaos.reset`): deletes the campaign state the
services keep in ZooKeeper, so no campaign of one run is resumed in the next. Queues, Redis and the
provider are reset by the harness's generic steps.

The stack file runs `clear` in the harness's process (`python: dispatch.reset:clear`), asking ZooKeeper
at its nodes' addresses: as an `exec` step in the API node it started a Python and imported kazoo there,
0.19 s of each reset's 2.2 s. By hand, inside a node:

    python3 -m dispatch.reset [PATH...]
"""

from __future__ import annotations

import os
import sys

from dispatch.common import CAMPAIGNS_PATH, PROGRESS_PATH

STATE_PATHS = (CAMPAIGNS_PATH, PROGRESS_PATH)
ZK_CLIENT_PORT = 2181


def delete(hosts: str, paths) -> None:
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=20)
    try:
        for path in paths:
            if zk.exists(path):
                zk.delete(path, recursive=True)
    finally:
        zk.stop()
        zk.close()


def clear(ctx) -> None:
    """The `python` reset step: `ctx` is the harness's AppContext (stack/appsteps.py)."""
    delete(",".join("%s:%d" % ctx.address(node, ZK_CLIENT_PORT) for node in ctx.nodes("zookeeper")),
           STATE_PATHS)


def main(paths: list[str]) -> None:
    delete(os.environ["ZK_HOSTS"], paths or STATE_PATHS)


if __name__ == "__main__":
    main(sys.argv[1:])
