"""What the services share: their env contract, logging, a Redis master found through Sentinel but
reached through the proxy, and a threaded `GET /health` server for the non-HTTP services."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from dispatch import switches

REDIS_MASTER_NAME = "mymaster"
CAMPAIGNS_PATH = "/dispatch/campaigns"
PROGRESS_PATH = "/dispatch/progress"
ELECTION_PATH = "/dispatch/scheduler-election"


def addresses(value: str) -> list[tuple[str, int]]:
    """"a:1,b:2" -> [("a", 1), ("b", 2)]."""
    out = []
    for item in value.split(","):
        item = item.strip()
        if item:
            host, _, port = item.rpartition(":")
            out.append((host, int(port)))
    return out


def routes(value: str) -> dict[tuple[str, int], tuple[str, int]]:
    """"redis1:6379=proxy:20011,..." -> {("redis1", 6379): ("proxy", 20011)}: real address -> how to reach it."""
    out = {}
    for item in value.split(","):
        if "=" in item:
            real, via = item.split("=", 1)
            out[addresses(real)[0]] = addresses(via)[0]
    return out


@dataclass(frozen=True)
class ServiceEnv:
    """The env every service reads (deploy.py writes it); a service uses the parts it needs."""

    name: str
    http_port: int
    amqp: list[tuple[str, int]]
    zk: list[tuple[str, int]]
    sentinels: list[tuple[str, int]]
    redis_routes: dict[tuple[str, int], tuple[str, int]]
    sink_url: str
    switches: frozenset[str]

    @classmethod
    def load(cls, service: str) -> "ServiceEnv":
        env = os.environ
        return cls(
            name=env.get("SERVICE_NAME", service),
            http_port=int(env.get("HTTP_PORT", "8080")),
            amqp=addresses(env.get("AMQP_ADDRS", "")),
            zk=addresses(env.get("ZK_HOSTS", "")),
            sentinels=addresses(env.get("REDIS_SENTINELS", "")),
            redis_routes=routes(env.get("REDIS_ROUTES", "")),
            sink_url=env.get("SINK_URL", "http://sink:8080"),
            switches=switches.active(service),
        )

    def zk_hosts(self) -> str:
        return ",".join(f"{h}:{p}" for h, p in self.zk)


def setup_logging(name: str) -> logging.Logger:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper()
                        if os.environ.get("LOG_LEVEL", "INFO").upper() in logging._nameToLevel else "INFO",
                        stream=sys.stdout,
                        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s")
    for noisy in ("pika", "kazoo", "aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logging.getLogger(name)


def load_env_or_exit(service: str, log: logging.Logger) -> ServiceEnv:
    try:
        return ServiceEnv.load(service)
    except (switches.UnknownSwitch, ValueError) as exc:
        log.error("bad configuration: %s", exc)
        raise SystemExit(2) from None


# ---------------------------------------------------------------------------------------------- Redis

def redis_sentinel(env: ServiceEnv, *, sticky: bool = False, timeout: float = 1.0):
    """A Redis client for the Sentinel-named master, connected through the proxy link of that master.

    Sentinel answers with the real master (redis1:6379); reaching it directly would bypass the proxy
    and so every fault on that link. `sticky` (incident switch) resolves the master once and never again.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    from redis.sentinel import Sentinel, SentinelConnectionPool

    route_map = env.redis_routes

    def via(address: tuple[str, int]) -> tuple[str, int]:
        return route_map.get((address[0], int(address[1])), address)

    class ProxiedPool(SentinelConnectionPool):
        def get_master_address(self):
            return via(super().get_master_address())

    sentinel = Sentinel(env.sentinels, socket_timeout=timeout, socket_connect_timeout=timeout,
                        sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout})
    kwargs = dict(socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))
    if sticky:
        host, port = via(sentinel.discover_master(REDIS_MASTER_NAME))
        return redis.Redis(host=host, port=port, **kwargs)
    return sentinel.master_for(REDIS_MASTER_NAME, connection_pool_class=ProxiedPool, **kwargs)


# ---------------------------------------------------------------------------------------------- health

HealthProbe = Callable[[], tuple[bool, dict]]


def serve_health(port: int, probe: HealthProbe, log: logging.Logger) -> ThreadingHTTPServer:
    """`GET /health` -> 200 when the probe says ok, 503 otherwise, with the probe's facts as JSON."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.split("?")[0] != "/health":
                self._reply(404, {"error": "not found"})
                return
            try:
                ok, facts = probe()
            except Exception as exc:  # a probe that breaks is a failed check, not a dead server
                ok, facts = False, {"error": repr(exc)}
            self._reply(200 if ok else 503, {"ok": ok, **facts})

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    log.info("health on :%d", port)
    return server
