"""The reference app's own reset step, run inside its API node between runs (the stack file's
`x-chaos.reset`): deletes the campaign state the services keep in ZooKeeper, so no campaign of one run
is resumed in the next. Queues, Redis and the provider are reset by the harness's generic steps.

    python3 -m dispatch.reset [PATH...]
"""

from __future__ import annotations

import os
import sys

from dispatch.common import CAMPAIGNS_PATH, PROGRESS_PATH

STATE_PATHS = (CAMPAIGNS_PATH, PROGRESS_PATH)


def main(paths: list[str]) -> None:
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=os.environ["ZK_HOSTS"], timeout=10)
    zk.start(timeout=20)
    try:
        for path in paths or STATE_PATHS:
            if zk.exists(path):
                zk.delete(path, recursive=True)
    finally:
        zk.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
