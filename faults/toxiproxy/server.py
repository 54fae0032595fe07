"""Run the proxy: `python3 -m faults.toxiproxy.server --host 0.0.0.0 --port 8474 --seed N [--config f.json]`.

Also `ToxiproxyServer` (an asyncio object) and `serve_in_thread` (for tests and in-process use).
Standard library only, so it runs on a bare Debian python3. Logs go to stdout.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # The proxy's own process leaves OpenSSL out, on either data path: it is ~3.5 MiB of the process's memory,
    # loaded only because asyncio imports ssl to offer TLS (which the proxy never uses) and hashlib prefers
    # OpenSSL's md5 (the API uses Python's built-in one, which gives the same digest).
    for _unused in ("ssl", "_hashlib"):
        sys.modules.setdefault(_unused, None)  # type: ignore[arg-type]

import asyncio
import json
import logging
import signal
import threading
from types import SimpleNamespace
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


class ServerThread:
    """A server running on its own event loop in a daemon thread."""

    def __init__(self, server: ToxiproxyServer, loop: asyncio.AbstractEventLoop, thread: threading.Thread,
                 host: str) -> None:
        self.server, self.loop, self.thread, self.host = server, loop, thread, host

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
# The flags and their defaults; Toxiproxy's own single-dash spellings (-host=0.0.0.0) work too, so the image
# can be a drop-in, and Go's flag package takes a bool as -flag or -flag=true|false.
VALUE_FLAGS = {"host": str, "port": int, "seed": int, "config": str}
BOOL_FLAGS = ("proxy-metrics", "runtime-metrics", "version")
DEFAULTS = {"host": "localhost", "port": 8474, "seed": None, "config": None, "proxy_metrics": False,
            "runtime_metrics": False, "version": False}
GO_BOOLS = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}


def parse_args(argv: Sequence[str] | None) -> SimpleNamespace:
    """The flags as attributes (host, port, seed, config, proxy_metrics, runtime_metrics, version).

    Flags spelled out in full are read here; anything else (-h, an abbreviation, an error) goes to argparse,
    which answers the same for these and writes the usage and error messages. Not importing it otherwise
    keeps ~0.9 MiB out of the proxy's memory (argparse, gettext, and shutil with bz2 and lzma for the help
    formatter it builds while parsing)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parsed = _parse_plain(argv)
    return parsed if parsed is not None else _parse_with_argparse(argv)


def _parse_plain(argv: list[str]) -> SimpleNamespace | None:
    """--flag value, --flag=value, -flag value, -flag=value and a bare --flag / -flag for a bool, or None."""
    values = dict(DEFAULTS)
    tokens = iter(argv)
    for token in tokens:
        name, sep, text = token.lstrip("-").partition("=")
        if not token.startswith("-") or token.startswith("---") or token in ("-", "--"):
            return None
        if name in VALUE_FLAGS:
            if not sep:
                text = next(tokens, "-")
            if text.startswith("-"):  # missing, an option, a negative number or "--": argparse's quirks decide
                return None
            try:
                values[name.replace("-", "_")] = VALUE_FLAGS[name](text)
            except ValueError:
                return None
        elif name in BOOL_FLAGS and (not sep or text.lower() in GO_BOOLS):
            values[name.replace("-", "_")] = GO_BOOLS[text.lower()] if sep else True
        else:
            return None
    return SimpleNamespace(**values)


def _parse_with_argparse(argv: list[str]) -> SimpleNamespace:
    import argparse

    def go_bool(text: str) -> bool:
        value = GO_BOOLS.get(text.lower())
        if value is None:
            raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")
        return value

    parser = argparse.ArgumentParser(
        prog="python3 -m faults.toxiproxy.server",
        description="Toxiproxy-2.x-compatible TCP fault proxy (HTTP API on --host:--port).")
    parser.add_argument("--host", "-host", default="localhost", help="API address (default localhost)")
    parser.add_argument("--port", "-port", type=int, default=8474, help="API port (default 8474)")
    parser.add_argument("--seed", "-seed", type=int, default=None,
                        help="seed for all randomness (jitter, toxicity, slicer); default: random, logged")
    parser.add_argument("--config", "-config", default=None, help="JSON file of proxies to populate at startup")
    parser.add_argument("--proxy-metrics", "-proxy-metrics", nargs="?", const=True, default=False, type=go_bool,
                        help="serve toxiproxy_proxy_* byte counters on GET /metrics")
    parser.add_argument("--runtime-metrics", "-runtime-metrics", nargs="?", const=True, default=False,
                        type=go_bool, help="serve process_* metrics on GET /metrics")
    parser.add_argument("--version", "-version", nargs="?", const=True, default=False, type=go_bool,
                        help="print the version and exit")
    return SimpleNamespace(**vars(parser.parse_args(argv)))


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
