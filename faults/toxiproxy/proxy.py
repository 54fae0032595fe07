"""Proxies and their toxics, as the API sees them: create, update, enable/disable, populate, reset.

Errors carry Toxiproxy's status codes and messages (`ApiError`), so the HTTP layer only renders them.
"""

from __future__ import annotations

import errno
import logging
import socket
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from .metrics import Metrics
from .pump import native
from .streams import DOWNSTREAM, STREAMS, UPSTREAM

if TYPE_CHECKING:
    import asyncio

    from .link import Connection, ConnectionContext
    from .toxics import Toxic

# Python's data path (link.py) and the toxics are imported where they are first used, not here: with the
# compiled one (pump.py), a proxy that never gets a toxic never needs them, and they are ~0.6 MiB of the
# process's memory.

log = logging.getLogger("toxiproxy")


class LoopRef:
    """The asyncio loop Python's data path runs on, made when first asked for. Until then the process has no
    asyncio at all (control.py serves the API); asking for it is what moves the API onto it."""

    __slots__ = ("_loop",)

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def made(self) -> bool:
        return self._loop is not None

    def get(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            import asyncio

            self._loop = asyncio.new_event_loop()
            log.debug("Python's data path is needed: the API moves onto asyncio")
        return self._loop


class ApiError(Exception):
    """An error with the HTTP status Toxiproxy would answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_body(detail: str) -> ApiError:
    return ApiError(400, f"bad request body: {detail}")


PROXY_NOT_FOUND = (404, "proxy not found")
PROXY_EXISTS = (409, "proxy already exists")
TOXIC_NOT_FOUND = (404, "toxic not found")
TOXIC_EXISTS = (409, "toxic already exists")
INVALID_STREAM = (400, "stream was invalid, can be either upstream or downstream")
INVALID_TOXIC_TYPE = (400, "invalid toxic type")


class ToxicSpec:
    """One toxic of a proxy as created through the API; `serial` tells a re-created toxic from the old one.
    Never changed once made: an update makes a new one (`replace`)."""

    __slots__ = ("name", "type", "stream", "toxicity", "toxic", "serial")

    def __init__(self, name: str, type: str, stream: str, toxicity: float, toxic: Toxic, serial: int) -> None:
        self.name, self.type, self.stream, self.toxicity, self.toxic, self.serial = \
            name, type, stream, toxicity, toxic, serial

    def replace(self, toxic: Toxic, toxicity: float) -> ToxicSpec:
        return ToxicSpec(self.name, self.type, self.stream, toxicity, toxic, self.serial)

    def to_json(self) -> dict[str, Any]:
        # Toxiproxy's field order (its ToxicWrapper embeds the attributes first)
        return {"attributes": self.toxic.attributes(), "name": self.name, "type": self.type,
                "stream": self.stream, "toxicity": _go_number(self.toxicity)}


def _go_number(value: float) -> float | int:
    """Go's encoding/json writes a whole float as 1, not 1.0."""
    return int(value) if float(value).is_integer() else value


def split_host_port(address: str, field: str) -> tuple[str, int]:
    """'host:port', '[v6]:port' or ':port' -> (host, port); an ApiError 400 otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ApiError(400, f"invalid {field} address {address!r}: want host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


WILDCARDS = ("", "0.0.0.0", "::")


def resolve_listen(listen: str) -> str:
    """`listen` as Go's net.ResolveTCPAddr spells it: a host name becomes its first IPv4 address
    ("localhost:N" -> "127.0.0.1:N"); IP literals and an empty host stay as they are (":N")."""
    host, port = split_host_port(listen, "listen")
    if host in WILDCARDS:
        return join_host_port(host, port) if host else f":{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return listen
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return join_host_port(infos[0][4][0], port)


def go_errno_text(exc: OSError) -> str:
    """Go's spelling of an errno: the C library's message with a lower-case first letter."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_body(f"{field} must be a number, got {value!r}")
    return float(value)


def _toxicity(value: Any) -> float:
    # Any number, as Toxiproxy takes it: above 1 the toxic always applies, below 0 never (a draw in [0, 1))
    return _number(value, "toxicity")


class ToxicCollection:
    """A proxy's toxics in creation order; every change is pushed to the proxy's open connections."""

    def __init__(self, proxy_name: str, on_change: Callable[[str], None]) -> None:
        self.proxy_name = proxy_name
        self._on_change = on_change
        self._specs: list[ToxicSpec] = []
        self._serial = 0

    def for_stream(self, stream: str) -> list[ToxicSpec]:
        return [spec for spec in self._specs if spec.stream == stream]

    def all(self) -> list[ToxicSpec]:
        """Upstream chain first, then downstream, like Toxiproxy's listing."""
        return [spec for stream in STREAMS for spec in self.for_stream(stream)]

    def get(self, name: str) -> ToxicSpec:
        for spec in self._specs:
            if spec.name == name:
                return spec
        raise ApiError(*TOXIC_NOT_FOUND)

    def add(self, body: Any) -> ToxicSpec:
        if not isinstance(body, dict):
            raise bad_body("want a JSON object")
        stream = _given(body, "stream", "downstream")
        if stream not in STREAMS:
            raise ApiError(*INVALID_STREAM)
        type_name = body.get("type")
        name = body.get("name") or f"{type_name}_{stream}"
        if not isinstance(name, str):
            raise bad_body(f"name must be a string, got {name!r}")
        from .toxics import toxic_type

        kind = toxic_type(type_name) if isinstance(type_name, str) else None
        if kind is None:
            raise ApiError(*INVALID_TOXIC_TYPE)
        if any(spec.name == name for spec in self._specs):
            raise ApiError(*TOXIC_EXISTS)
        toxicity = _toxicity(_given(body, "toxicity", 1.0))
        attributes = body.get("attributes")
        toxic = self._build(kind, attributes, None, name)
        self._serial += 1
        spec = ToxicSpec(name, type_name, stream, toxicity, toxic, self._serial)
        self._specs.append(spec)
        log.info("proxy=%s: added toxic %s", self.proxy_name, spec.to_json())
        self._on_change(stream)
        return spec

    def update(self, name: str, body: Any) -> ToxicSpec:
        old = self.get(name)
        if not isinstance(body, dict):
            raise bad_body("want a JSON object")
        toxicity = _toxicity(_given(body, "toxicity", old.toxicity))
        toxic = self._build(type(old.toxic), body.get("attributes"), old.toxic, name)
        new = old.replace(toxic, toxicity)
        self._specs = [new if spec is old else spec for spec in self._specs]
        log.info("proxy=%s: updated toxic %s", self.proxy_name, new.to_json())
        self._on_change(new.stream)
        return new

    def remove(self, name: str) -> None:
        spec = self.get(name)
        self._specs.remove(spec)
        log.info("proxy=%s: removed toxic %s", self.proxy_name, name)
        self._on_change(spec.stream)

    def reset(self) -> None:
        if self._specs:
            self._specs = []
            for stream in STREAMS:
                self._on_change(stream)

    def _build(self, kind: type[Toxic], attributes: Any, base: Toxic | None, name: str) -> Toxic:
        from .toxics import BadAttributes

        try:
            toxic = kind.from_attributes(attributes, base)
        except BadAttributes as exc:
            raise bad_body(str(exc)) from None
        unknown = kind.unknown_attributes(attributes if isinstance(attributes, dict) else None)
        if unknown:
            log.warning("proxy=%s toxic=%s: ignoring unknown attributes %s (a %s has %s)", self.proxy_name,
                        name, unknown, kind.type_name, sorted(toxic.attributes()))
        return toxic


class Proxy:
    """A listener that dials `upstream` for each client and links the two through the toxics."""

    def __init__(self, loops: LoopRef, seed: int, name: str, listen: str, upstream: str,
                 metrics: Metrics | None = None) -> None:
        self._loops = loops
        self.seed = seed
        self.metrics = metrics or Metrics()
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics = ToxicCollection(name, self._toxics_changed)
        self.connections: set[Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._serial = 0
        # With the compiled data path (pump.py): the listening socket, kept here, and the pump's handle
        # while the pump serves it (no toxic), else None (Python accepts on it).
        self._pump = native()
        self._sock: socket.socket | None = None
        self._pumped: int | None = None
        self._python_accepts = False
        self._pump_serial = 0  # self._serial when the pump took the listener (it counts on from there)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """Python's data path's loop: asking for it is what brings asyncio in (LoopRef)."""
        return self._loops.get()

    def to_json(self) -> dict[str, Any]:
        # Toxiproxy 2.12's fields, its internal logger included: it serializes as an empty object
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream, "enabled": self.enabled,
                "Logger": {}, "toxics": [spec.to_json() for spec in self.toxics.all()]}

    async def start(self) -> None:
        if self.enabled:
            return
        split_host_port(self.listen or ":0", "listen")
        split_host_port(self.upstream, "upstream")
        address = resolve_listen(self.listen or ":0")
        try:
            sock = _listening_socket(*split_host_port(address, "listen"))
        except OSError as exc:
            # Go's words: "listen tcp 127.0.0.1:3310: bind: address already in use"
            raise ApiError(500, f"listen tcp {address}: bind: {go_errno_text(exc)}") from None
        if self._pump is not None:
            self._sock = sock
            self._serve()
        else:
            self._server = await self.loop.create_server(self._accept, sock=sock)
        bound_host, bound_port = sock.getsockname()[:2]
        # What Go's listener.Addr() answers: a wildcard listens on both stacks and reads "[::]:N".
        self.listen = join_host_port(bound_host, bound_port)
        self.enabled = True
        log.info("proxy=%s: started, listen=%s upstream=%s", self.name, self.listen, self.upstream)

    def stop(self) -> None:
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._sock is not None:
            self._unserve(drop=True)
            self._sock.close()
            self._sock = None
        for connection in list(self.connections):
            connection.abort()
        log.info("proxy=%s: stopped, listen=%s upstream=%s", self.name, self.listen, self.upstream)

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        """Toxiproxy's rules: a new listen or upstream restarts the proxy; `enabled` starts or stops it."""
        if resolve_listen(listen) != self.listen or upstream != self.upstream:
            split_host_port(listen, "listen")
            split_host_port(upstream, "upstream")
            self.stop()
            self.listen, self.upstream = listen, upstream
        if enabled and not self.enabled:
            await self.start()
        elif not enabled:
            self.stop()

    def _accept(self) -> asyncio.Protocol:
        from .link import Connection

        self._serial += 1
        connection = Connection(self.loop, self._context(self._serial), split_host_port(self.upstream, "upstream"))
        self.connections.add(connection)
        return connection.client

    def _context(self, serial: int) -> ConnectionContext:
        from .link import ConnectionContext

        listen, upstream, metrics = self.listen, self.upstream, self.metrics
        return ConnectionContext(self.name, serial, self.seed, self.toxics.for_stream,
                                 self.connections.discard,
                                 lambda stream: metrics.counters((stream, self.name, listen, upstream)))

    def _toxics_changed(self, stream: str) -> None:
        if self._sock is not None:
            self._serve()  # the first toxic takes the pump's connections back; the last one gives it the listener
        for connection in list(self.connections):
            connection.sync_toxics(stream)

    # the compiled data path (pump.py)
    def _serve(self) -> None:
        """Serve the listening socket from the pump while the proxy has no toxic, else from Python."""
        assert self._pump is not None and self._sock is not None
        if not self.toxics.all():
            if self._pumped is None:
                self._unserve(drop=False)
                host, port = split_host_port(self.upstream, "upstream")
                self._pump_serial = self._serial
                self._pumped = self._pump.listen(self._sock.fileno(), host, port)
                if self.metrics.proxy_metrics:
                    self.metrics.add_live(self, partial(self._pumped_counts, self._pumped))
        elif not self._python_accepts:
            self._unserve(drop=False)
            self.loop.add_reader(self._sock.fileno(), self._accept_ready)
            self._python_accepts = True

    def _unserve(self, drop: bool) -> None:
        """Take the listener back from the pump: its connections are closed (`drop`) or adopted by Python."""
        assert self._pump is not None and self._sock is not None
        if self._python_accepts:
            self.loop.remove_reader(self._sock.fileno())
            self._python_accepts = False
        if self._pumped is None:
            return
        pumped, self._pumped = self._pumped, None
        if drop:
            accepted, counts = self._pump.drop(pumped)
            self._serial = self._pump_serial + accepted
            self._fold_counts(counts)
            return
        # Each connection keeps the serial it would have had from Python's accept (toxics' random streams).
        accepted, handed, counts = self._pump.detach(pumped)
        self._fold_counts(counts)
        for serial, client_fd, server_fd, to_server, to_client in sorted(handed):
            client = socket.socket(fileno=client_fd)
            server = socket.socket(fileno=server_fd) if server_fd >= 0 else None
            self._adopt(self._pump_serial + serial, client, server, to_server, to_client)
        self._serial = self._pump_serial + accepted

    def _pumped_counts(self, pumped: int) -> dict[tuple[str, str, str, str], list[int]]:
        up_received, up_sent, down_received, down_sent = self._pump.counters(pumped)  # type: ignore[union-attr]
        return {(UPSTREAM, self.name, self.listen, self.upstream): [up_received, up_sent],
                (DOWNSTREAM, self.name, self.listen, self.upstream): [down_received, down_sent]}

    def _fold_counts(self, counts: tuple[int, int, int, int]) -> None:
        """The pump's final counts join the ones Python's links keep (-proxy-metrics)."""
        if not self.metrics.proxy_metrics:
            return
        self.metrics.remove_live(self)
        for stream, received, sent in ((UPSTREAM, *counts[:2]), (DOWNSTREAM, *counts[2:])):
            totals = self.metrics.counters((stream, self.name, self.listen, self.upstream))
            totals[0] += received
            totals[1] += sent

    def _accept_ready(self) -> None:
        assert self._sock is not None
        for _ in range(64):
            try:
                client, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: as asyncio's own server, wait a second before trying again
                log.warning("proxy=%s: accept failed: %s", self.name, exc)
                self.loop.remove_reader(self._sock.fileno())
                self.loop.call_later(1.0, self._accept_again, self._sock)
                return
            self._serial += 1
            self._adopt(self._serial, client, None, b"", b"")

    def _accept_again(self, sock: socket.socket) -> None:
        if self._sock is sock and self._python_accepts:
            self.loop.add_reader(sock.fileno(), self._accept_ready)

    def _adopt(self, serial: int, client: socket.socket, server: socket.socket | None, to_server: bytes,
               to_client: bytes) -> None:
        """A connection accepted outside asyncio (by the pump, or `_accept_ready`), dialled already or not."""
        from .link import Connection

        client.setblocking(False)
        if server is not None:
            server.setblocking(False)
        connection = Connection(self.loop, self._context(serial), split_host_port(self.upstream, "upstream"),
                                adopted=server is not None)
        self.connections.add(connection)
        self.loop.create_task(connection.adopt(client, server, to_server, to_client))


def _listening_socket(host: str, port: int) -> socket.socket:
    """Bind the way Go's net.Listen("tcp", ...) does: a wildcard (empty, 0.0.0.0 or ::) gets one dual-stack
    IPv6 socket on "::" where the machine has IPv6, otherwise IPv4 "0.0.0.0"; a name means its IPv4 address."""
    if host in WILDCARDS:
        if socket.has_ipv6:
            try:
                return _bound(socket.AF_INET6, ("::", port), dual_stack=True)
            except OSError as exc:
                if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                    raise
        return _bound(socket.AF_INET, ("0.0.0.0", port))
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    infos.sort(key=lambda info: info[0] != socket.AF_INET)  # like Go, "localhost" means 127.0.0.1
    family, _, _, _, address = infos[0]
    return _bound(family, address)


def _bound(family: int, address: tuple, dual_stack: bool = False) -> socket.socket:
    # IPPROTO_TCP, not 0: accepted sockets inherit the proto, and asyncio sets TCP_NODELAY only on a socket
    # whose proto reads IPPROTO_TCP. Without it Nagle holds a reply's second piece (aiohttp writes headers,
    # then body) until the client's delayed ACK, ~40 ms later. Go sets TCP_NODELAY on every connection too.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if dual_stack:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(511)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class ProxyCollection:
    """All proxies by name; the API's entry point."""

    def __init__(self, loops: LoopRef, seed: int, metrics: Metrics | None = None) -> None:
        self.loops = loops
        self.seed = seed
        self.metrics = metrics or Metrics()
        self.proxies: dict[str, Proxy] = {}

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise ApiError(*PROXY_NOT_FOUND)
        return proxy

    async def create(self, body: Any) -> Proxy:
        name, listen, upstream, enabled = _proxy_fields(body, 0)
        if name in self.proxies:
            raise ApiError(*PROXY_EXISTS)
        proxy = Proxy(self.loops, self.seed, name, listen, upstream, self.metrics)
        if enabled:
            await proxy.start()
        else:
            split_host_port(listen or ":0", "listen")
            split_host_port(upstream, "upstream")
        self.proxies[name] = proxy
        return proxy

    async def populate(self, body: Any) -> list[Proxy]:
        """Create or replace; an existing proxy with the same listen and upstream is kept as it is."""
        if not isinstance(body, list):
            raise bad_body("want a JSON array of proxies")
        wanted = [_proxy_fields(item, index + 1) for index, item in enumerate(body)]
        names = [name for name, *_ in wanted]
        for name in names:
            if names.count(name) > 1:
                raise bad_body(f"duplicate proxy name {name!r}")
        result = []
        for name, listen, upstream, enabled in wanted:
            existing = self.proxies.get(name)
            if existing is not None and existing.listen == resolve_listen(listen or ":0") \
                    and existing.upstream == upstream:
                result.append(existing)
                continue
            if existing is not None:
                existing.stop()
                del self.proxies[name]
            proxy = Proxy(self.loops, self.seed, name, listen, upstream, self.metrics)
            if enabled:
                await proxy.start()
            self.proxies[name] = proxy
            result.append(proxy)
        return result

    async def update(self, name: str, body: Any) -> Proxy:
        proxy = self.get(name)
        if not isinstance(body, dict):
            raise bad_body("want a JSON object")
        # Go decodes into a copy of the proxy: a missing or null field keeps the current value.
        listen = _given(body, "listen", proxy.listen) or ":0"
        upstream = _given(body, "upstream", proxy.upstream)
        enabled = _given(body, "enabled", proxy.enabled)
        if not isinstance(listen, str) or not isinstance(upstream, str) or not isinstance(enabled, bool):
            raise bad_body("listen and upstream must be strings, enabled a boolean")
        await proxy.update(listen, upstream, enabled)
        return proxy

    def delete(self, name: str) -> None:
        self.get(name).stop()
        del self.proxies[name]
        log.info("proxy=%s: deleted", name)

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        for proxy in list(self.proxies.values()):
            await proxy.start()
            proxy.toxics.reset()
        log.info("reset: all proxies enabled, all toxics removed")

    def stop_all(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()


def _proxy_fields(body: Any, index: int) -> tuple[str, str, str, bool]:
    where = f" at proxy {index}" if index else ""
    if not isinstance(body, dict):
        raise bad_body(f"want a JSON object{where}")
    # As Go's decoder: null is the same as leaving the field out (toxiproxy-ruby sends "enabled": nil).
    name, listen = _given(body, "name", ""), _given(body, "listen", "")
    upstream, enabled = _given(body, "upstream", ""), _given(body, "enabled", True)
    if not all(isinstance(v, str) for v in (name, listen, upstream)) or not isinstance(enabled, bool):
        raise bad_body(f"name, listen and upstream must be strings, enabled a boolean{where}")
    if not name:
        raise ApiError(400, f"missing required field: name{where}")
    if not upstream:
        raise ApiError(400, f"missing required field: upstream{where}")
    return name, listen, upstream, enabled


def _given(body: dict[str, Any], key: str, default: Any) -> Any:
    value = body.get(key)
    return default if value is None else value
