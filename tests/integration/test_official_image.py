"""An infrastructure node on an image laid out as an official one: no python3, no iptables, no tini, and
an entrypoint that drops to its own user. The stack file names the image (`image:` beside `x-kind`); the
stack comes up, and faults act on it and heal, because every probe uses the product's own CLI or runs
from a helper container in the node's network namespace (issue #14: "a Redis image whose PATH holds no
python3 comes up and can be faulted")."""

from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path

import pytest

from faults.base import FaultContext, get_fault
from harness.errors import HarnessError
from stack import health
from stack.kinds.redis import primary
from stack.stack import Stack
from tests.integration.test_kill_and_clean import namespace_resources

pytestmark = pytest.mark.chaos

CONTEXT = Path(__file__).resolve().parents[1] / "images" / "redis-official"

STACK = """\
name: official
services:
  redis: {{x-kind: redis, deploy: {{replicas: 2}}, image: "{image}"}}
  sentinel: {{x-kind: sentinel, deploy: {{replicas: 1}}, image: "{image}"}}
"""


def official_redis_image(client) -> str:
    """The test image, built from the harness's base image; tagged by its inputs, so built once."""
    from stack.images import ensure_images, image_exists

    digest = hashlib.sha256()
    for path in sorted(CONTEXT.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    base = ensure_images(client)["base"]
    digest.update(base.encode())
    name = f"chaos-test/redis-official:{digest.hexdigest()[:12]}"
    if not image_exists(client, name):
        client.images.build(path=str(CONTEXT), tag=name, buildargs={"BASE": base}, rm=True)
    return name


def make(stack, name, targets, **params):
    return get_fault(name)(FaultContext(stack, step=f"t-{name}", wait_timeout=60), list(targets), params)


def pings(stack, source: str, target: str) -> bool:
    """`target` answers PING to redis-cli run in `source` (by the pinned name, bounded to 3 s)."""
    code, out = stack.exec(source, ["redis-cli", "-h", target, "-p", "6379", "ping"], timeout=3)
    return code == 0 and "PONG" in out


def test_an_official_layout_redis_comes_up_and_is_faulted(tmp_path, monkeypatch):
    ns = "test-official-" + secrets.token_hex(3)
    monkeypatch.setenv("CHAOS_NAMESPACE", ns)
    from stack.docker_api import docker_client

    image = official_redis_image(docker_client())
    path = tmp_path / "official.yaml"
    path.write_text(STACK.format(image=image))
    with Stack(str(path)) as stack:
        for node in ("redis1", "redis2", "sentinel1"):
            assert stack.container(node).image.tags == [image]
            code, out = stack.exec(node, ["sh", "-c", "command -v python3 iptables tini"])
            assert code != 0 and out.strip() == "", (node, code, out)
            # the entrypoint dropped to `redis`, and Redis writes its files all the same
            code, passwd = stack.exec(node, ["getent", "passwd", "redis"])
            uid = passwd.split(":")[2]
            code, status = stack.exec(node, ["cat", "/proc/1/status"])
            assert f"Uid:\t{uid}\t" in status, status
        code, out = stack.exec("redis1", ["redis-cli", "set", "written", "1"])
        assert code == 0 and "OK" in out, out
        code, out = stack.exec("redis1", ["ls", "/var/lib/chaos-redis/appendonlydir"])
        assert code == 0 and ".aof" in out, out  # its append-only file, in the folder the copy made
        assert primary(stack) == "redis1"

        # A partition: the replica cannot reach the primary while it lasts, and can again after heal.
        assert pings(stack, "redis2", "redis1")
        cut = make(stack, "partition", ["redis1", "redis2"], grouping="isolate", node="redis1")
        effect = cut.inject()
        assert effect.facts["method"] == "iptables" and effect.facts["probe"], effect.facts
        assert set(effect.facts["probe"].values()) == {"timeout"}, effect.facts
        assert not pings(stack, "redis2", "redis1")
        healed = cut.heal()
        assert healed.facts["connected"] is True
        assert pings(stack, "redis2", "redis1")
        assert not stack.client.containers.list(all=True, filters={"label": "chaos-harness.fault=partition"})

        # The replica restarts during the partition: its rules went with its old namespace, and heal
        # removes its stale helper and checks the pair from the primary's side. (The replica, so that
        # Sentinel, which watches the primary, has no reason to fail over.)
        cut = make(stack, "partition", ["redis1", "redis2"], grouping="isolate", node="redis1")
        cut.inject()
        stack.container("redis2").restart(timeout=5)
        assert cut.heal().facts["connected"] is True
        assert pings(stack, "redis2", "redis1")
        assert not stack.client.containers.list(all=True, filters={"label": "chaos-harness.fault=partition"})
        health.wait_for("redis2 to replicate again", lambda: (
            health.redis_info(stack, "redis2").get("master_link_status") == "up", "link down"),
            time.monotonic() + 30)

        # A failover by kill: Sentinel (on the same image) promotes the replica.
        old = primary(stack)
        failover = make(stack, "redis-failover", [], method="kill")
        failover.inject()
        new = primary(stack)
        assert {old, new} == {"redis1", "redis2"}
        failover.heal()
        assert health.redis_info(stack, old).get("role") == "slave"
        assert health.redis_info(stack, new).get("role") == "master"

        # A fault that needs a program the image lacks says so, naming the node, and changes nothing.
        with pytest.raises(HarnessError, match=r"memory-pressure: redis2 has no python3"):
            make(stack, "memory-pressure", ["redis2"], mib=16).inject()
    assert namespace_resources(ns) == ([], [])
