"""`redis-failover`: make Sentinel promote the replica (SENTINEL FAILOVER, or SIGKILL of the primary).

Inject waits until every running Sentinel names a new master and that node says `role:master`, and
records who it was. Heal (after starting a killed primary again) waits until the old primary has
been turned into a replica of the new one with its link up. The new primary stays primary.
"""

from __future__ import annotations

from faults.base import Effect, Fault, Param, register
from faults.nodes import ensure_running, wait_status
from faults.roles import redis_primary
from harness.errors import HarnessError
from stack import health
from stack.topology import REDIS_MASTER_NAME, SENTINEL_PORT


def sentinel_views(stack) -> dict[str, str]:
    views = {}
    for sentinel in stack.topology.names("sentinel"):
        try:
            views[sentinel] = health.sentinel_master(stack, sentinel).get("ip", "?")
        except Exception as exc:
            views[sentinel] = f"? ({type(exc).__name__}: {str(exc)[:80]})"  # the message: what went wrong
    return views


@register
class RedisFailover(Fault):
    name = "redis-failover"
    summary = ("fail the Redis primary over to its replica (Sentinel failover or kill); waits for and records "
               "the new primary; heal waits until the old primary replicates from it")
    params = (Param("method", str, "sentinel", choices=("sentinel", "kill"),
                    help="sentinel: SENTINEL FAILOVER; kill: SIGKILL the primary and let Sentinel notice"),)
    targets_kind = "none"
    needs_targets = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.old: str | None = None
        self.new: str | None = None
        self.killed = False

    def inject(self) -> Effect:
        stack = self.ctx.stack
        self.old = old = redis_primary(stack)
        if self.p["method"] == "kill":
            self.killed = True
            stack.container(old).kill(signal="SIGKILL")
            wait_status(stack, old, ("exited", "dead"), self.ctx.deadline(20))
        else:
            self._sentinel_failover()

        def probe() -> tuple[bool, str]:
            views = sentinel_views(stack)
            named = set(views.values())
            if len(named) != 1 or old in named or not named <= set(stack.topology.names("redis")):
                return False, f"sentinels name {views}"
            new = named.pop()
            role = health.redis_info(stack, new).get("role")
            return role == "master", f"sentinels name {new}, its INFO role:{role}"

        health.wait_for(f"Sentinels to name a new Redis master instead of {old}", probe, self.ctx.deadline())
        self.new = redis_primary(stack)
        return Effect((old,), {"old_primary": old, "new_primary": self.new, "method": self.p["method"],
                               "roles": {old: "redis-primary"}})

    def _sentinel_failover(self) -> None:
        stack = self.ctx.stack
        last = "no Sentinel"
        deadline = self.ctx.deadline(30)

        def attempt() -> tuple[bool, str]:
            nonlocal last
            for sentinel in stack.topology.names("sentinel"):
                code, out = stack.exec(sentinel, ["redis-cli", "-p", str(SENTINEL_PORT), "sentinel", "failover",
                                                   REDIS_MASTER_NAME], timeout=5)
                if code == 0 and out.strip() == "OK":
                    return True, f"{sentinel}: OK"
                last = f"{sentinel}: {out.strip()[:120]}"
            # e.g. "NOGOODSLAVE" right after a previous failover, while the replica resyncs
            return False, last

        health.wait_for("a Sentinel to accept SENTINEL FAILOVER", attempt, deadline, interval=1.0)

    def heal(self) -> Effect:
        stack = self.ctx.stack
        if self.old is None:
            return Effect((), {})
        deadline = self.ctx.deadline()
        if self.killed:
            ensure_running(stack, self.old, deadline)
        new = self.new or redis_primary(stack)

        def probe() -> tuple[bool, str]:
            info = health.redis_info(stack, self.old)
            ok = info.get("role") == "slave" and info.get("master_host") == new \
                and info.get("master_link_status") == "up"
            return ok, f"{self.old}: role:{info.get('role')} master_host:{info.get('master_host')} " \
                       f"link:{info.get('master_link_status')}"

        if new == self.old:
            raise HarnessError(f"redis-failover heal: {self.old} is primary again; nothing to rejoin")
        health.wait_for(f"{self.old} to replicate from the new primary {new}", probe, deadline)
        return Effect((self.old,), {"old_primary": self.old, "now_replica_of": new})
