"""Run the proxy: `python3 -m faults.toxiproxy.server --host 0.0.0.0 --port 8474 --seed N [--config f.json]`.

Also `ToxiproxyServer` and `serve_in_thread` (for tests and in-process use).
Standard library only, so it runs on a bare Debian python3. Logs go to stdout.

The API runs on its own `selectors` loop (control.py) for as long as the compiled data path carries every
proxy, and moves onto asyncio (aio.py) when the first toxic needs Python's data path; without the compiled
data path, it is on asyncio from the start.
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

import json
import logging
import signal
import threading
from types import SimpleNamespace
from typing import Any, Coroutine, Sequence

from .api import VERSION, ToxiproxyApi
from .control import ControlLoop, Waker, run_now
from .metrics import Metrics
from .proxy import ApiError, LoopRef, ProxyCollection, _listening_socket
from .pump import native

log = logging.getLogger("toxiproxy")


class ToxiproxyServer:
    """The HTTP API plus the proxies it manages: `start` binds and populates, `run` serves until `stop`."""

    def __init__(self, seed: int, metrics: Metrics | None = None) -> None:
        self.seed = seed
        self.metrics = metrics or Metrics()
        self.loops = LoopRef()
        self.proxies = ProxyCollection(self.loops, seed, self.metrics)
        self.port = 0
        self._waker = Waker()
        self._control: ControlLoop | None = None

    def start(self, host: str, port: int, config: Any = None) -> None:
        """Bind the API (as Go's net.Listen: one socket; "localhost" is 127.0.0.1) and populate `config`."""
        try:
            if native() is None:
                self.loops.get()  # Python's data path runs every proxy: asyncio from the start
            if config is not None:
                populated = self._call(self.proxies.populate(config))
                log.info("populated %d proxies from config", len(populated))
            listener = _listening_socket(host, port)
        except BaseException:
            self.proxies.stop_all()
            self._waker.close()
            if self.loops.made:
                self.loops.get().close()
            raise
        self._control = ControlLoop(ToxiproxyApi(self.proxies).handle, listener, self._waker,
                                    lambda: self.loops.made)
        self.port = listener.getsockname()[1]
        log.info("Toxiproxy-compatible API listening on %s:%d (seed=%d)", host, self.port, self.seed)

    def run(self) -> None:
        """Serve until `stop()`, then stop every proxy and close everything. The calling thread serves."""
        control = self._control
        assert control is not None, "start() first"
        try:
            control.run()
            if not self.loops.made:
                control.close()
                self.proxies.stop_all()
                return
            # Also after a stop that came with the first toxic: its links are asyncio's to stop.
            from .aio import serve_api

            log.info("the API moves onto asyncio: Python's data path is in use")
            serve_api(self.loops.get(), control.handler, control.listener, list(control.clients.values()),
                      self._waker, self.proxies.stop_all)
        finally:
            self._waker.close()

    def stop(self) -> None:
        """Ask `run` to end: from any thread, or a signal handler."""
        self._waker.wake()

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self.loops.made:
            return self.loops.get().run_until_complete(coro)
        return run_now(coro)


class ServerThread:
    """A server serving from a daemon thread."""

    def __init__(self, server: ToxiproxyServer, thread: threading.Thread, host: str) -> None:
        self.server, self.thread, self.host = server, thread, host

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.port}"

    def stop(self, timeout_s: float = 5.0) -> None:
        self.server.stop()
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            raise RuntimeError(f"toxiproxy server did not stop within {timeout_s}s")

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(host: str = "127.0.0.1", port: int = 0, seed: int = 0, timeout_s: float = 5.0,
                    metrics: Metrics | None = None) -> ServerThread:
    """Start a server in a background thread; it listens when this returns."""
    server = ToxiproxyServer(seed, metrics)
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.start(host, port)
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)
            started.set()
            return
        started.set()
        server.run()

    thread = threading.Thread(target=run, name="toxiproxy", daemon=True)
    thread.start()
    if not started.wait(timeout_s):
        raise RuntimeError(f"toxiproxy server did not start within {timeout_s}s")
    if failure:
        raise failure[0]
    return ServerThread(server, thread, host)


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
    server = ToxiproxyServer(seed, Metrics(args.proxy_metrics, args.runtime_metrics))
    try:
        server.start(args.host, args.port, config)
    except ApiError as exc:
        print(f"toxiproxy: config {args.config}: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"toxiproxy: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.stop())
    pump = native()
    if pump is not None:
        pump.trim()  # ~1 MiB of heap that importing and starting left free
    server.run()
    log.info("shut down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
