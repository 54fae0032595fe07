"""Run the proxy: `python3 -m faults.toxiproxy.server --host 0.0.0.0 --port 8474 --seed N [--config f.json]`.

Also `ToxiproxyServer` (an asyncio object) and `serve_in_thread` (for tests and in-process use).
Standard library only, so it runs on a bare Debian python3. Logs go to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys

if __name__ == "__main__" and os.environ.get("CHAOS_PROXY_NATIVE", "").strip() != "0":
    # The lean process that goes with the compiled data path (pump.py): OpenSSL is ~3.5 MiB of the process's
    # memory, loaded only because asyncio imports ssl to offer TLS (which the proxy never uses) and hashlib
    # prefers OpenSSL's md5 (the API's request ids; Python's built-in md5 gives the same digest).
    for _unused in ("ssl", "_hashlib"):
        sys.modules.setdefault(_unused, None)  # type: ignore[arg-type]

import asyncio
import json
import logging
import signal
import threading
from dataclasses import dataclass
from typing import Any, Sequence

from .api import VERSION, ToxiproxyApi
from .httpd import serve
from .metrics import Metrics
from .proxy import ApiError, ProxyCollection
from .pump import native

log = logging.getLogger("toxiproxy")


class ToxiproxyServer:
    """The HTTP API plus the proxies it manages, on one event loop."""

    def __init__(self, seed: int, metrics: Metrics | None = None) -> None:
        self.seed = seed
        self.metrics = metrics or Metrics()
        self.proxies: ProxyCollection | None = None
        self._http: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self, host: str, port: int, config: Any = None) -> None:
        self.proxies = ProxyCollection(asyncio.get_running_loop(), self.seed, self.metrics)
        if config is not None:
            populated = await self.proxies.populate(config)
            log.info("populated %d proxies from config", len(populated))
        self._http = await serve(ToxiproxyApi(self.proxies).handle, host, port)
        self.port = self._http.sockets[0].getsockname()[1]
        log.info("Toxiproxy-compatible API listening on %s:%d (seed=%d)", host, self.port, self.seed)

    async def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.proxies is not None:
            self.proxies.stop_all()
        await asyncio.sleep(0)


@dataclass
class ServerThread:
    """A server running on its own event loop in a daemon thread."""

    server: ToxiproxyServer
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    host: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.port}"

    def stop(self, timeout_s: float = 5.0) -> None:
        if not self.loop.is_closed() and self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(timeout_s)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout_s)

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(host: str = "127.0.0.1", port: int = 0, seed: int = 0, timeout_s: float = 5.0,
                    metrics: Metrics | None = None) -> ServerThread:
    """Start a server in a background thread and return once its API listens."""
    loop = asyncio.new_event_loop()
    server = ToxiproxyServer(seed, metrics)
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start(host, port))
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)
            started.set()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(server.stop())
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    thread = threading.Thread(target=run, name="toxiproxy", daemon=True)
    thread.start()
    if not started.wait(timeout_s):
        raise RuntimeError(f"toxiproxy server did not start within {timeout_s}s")
    if failure:
        raise failure[0]
    return ServerThread(server, loop, thread, host)


# the command line
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m faults.toxiproxy.server",
        description="Toxiproxy-2.x-compatible TCP fault proxy (HTTP API on --host:--port).")
    # Toxiproxy's own single-dash spellings (-host=0.0.0.0) work too, so the image can be a drop-in.
    parser.add_argument("--host", "-host", default="localhost", help="API address (default localhost)")
    parser.add_argument("--port", "-port", type=int, default=8474, help="API port (default 8474)")
    parser.add_argument("--seed", "-seed", type=int, default=None,
                        help="seed for all randomness (jitter, toxicity, slicer); default: random, logged")
    parser.add_argument("--config", "-config", default=None, help="JSON file of proxies to populate at startup")
    # Go's flag package takes a bool as -flag or -flag=true|false.
    parser.add_argument("--proxy-metrics", "-proxy-metrics", nargs="?", const=True, default=False, type=_go_bool,
                        help="serve toxiproxy_proxy_* byte counters on GET /metrics")
    parser.add_argument("--runtime-metrics", "-runtime-metrics", nargs="?", const=True, default=False,
                        type=_go_bool, help="serve process_* metrics on GET /metrics")
    parser.add_argument("--version", "-version", nargs="?", const=True, default=False, type=_go_bool,
                        help="print the version and exit")
    return parser.parse_args(argv)


def _go_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.version:
        print(f"toxiproxy-server version {VERSION}")  # Toxiproxy's words, for scripts that check them
        return 0
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(stream=sys.stdout, level=level if level in logging.getLevelNamesMapping() else "INFO",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    config = None
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as handle:
                config = json.load(handle)
        except (OSError, ValueError) as exc:
            print(f"toxiproxy: cannot read config {args.config}: {exc}", file=sys.stderr)
            return 2
    try:
        asyncio.run(_serve_forever(args.host, args.port, seed, config,
                                   Metrics(args.proxy_metrics, args.runtime_metrics)))
    except ApiError as exc:
        print(f"toxiproxy: config {args.config}: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"toxiproxy: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


async def _serve_forever(host: str, port: int, seed: int, config: Any, metrics: Metrics) -> None:
    server = ToxiproxyServer(seed, metrics)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await server.start(host, port, config)
    pump = native()
    if pump is not None:
        pump.trim()  # ~1 MiB of heap that importing and starting left free
    await stopping.wait()
    log.info("shutting down")
    await server.stop()


if __name__ == "__main__":
    sys.exit(main())
