"""One proxied TCP connection: two sockets (`Side`s) and two one-way `Link`s, each with its live toxic chain.

With no toxic applying, a link writes each read straight to the other socket (no copies, no tasks): that is
the fast path the throughput benchmark sees. Otherwise chunks go through a pump task that runs them through
the toxics in order; toxics can be added, updated and removed while the connection is open.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Callable, cast

from .streams import DOWNSTREAM, STREAMS, UPSTREAM
from .toxics.base import Chunk, ToxicStub

if TYPE_CHECKING:
    from .proxy import ToxicSpec

log = logging.getLogger("toxiproxy")

# Bytes a toxic chain may hold queued before the proxy stops reading that socket (back-pressure).
QUEUE_HIGH = 1 << 20
QUEUE_LOW = 256 << 10
WRITE_HIGH = 1 << 20
WRITE_LOW = 256 << 10
DIAL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ConnectionContext:
    """What a connection needs from its proxy, without depending on the proxy itself."""

    proxy_name: str
    serial: int
    seed: int
    toxic_specs: Callable[[str], list["ToxicSpec"]]
    forget: Callable[["Connection"], None]
    counters: Callable[[str], list[int]] = lambda stream: [0, 0]  # [received, sent] bytes, for GET /metrics


def toxic_random(seed: int, proxy: str, connection: int, stream: str, toxic: str, toxic_serial: int) -> random.Random:
    """The random stream of one toxic on one connection: a pure function of the seed and counters, so a run
    replays (the toxicity draw comes first, then jitter or slicer sizes chunk by chunk)."""
    return random.Random(f"{seed}/{proxy}/{connection}/{stream}/{toxic}/{toxic_serial}")


class Side(asyncio.Protocol):
    """One of the connection's two sockets: `reader` is the link reading from it, `writer` the one writing to it."""

    def __init__(self, connection: Connection, role: str) -> None:
        self.connection = connection
        self.role = role
        self.transport: asyncio.Transport | None = None
        self.reader: Link | None = None
        self.writer: Link | None = None
        self.lost = False
        self.write_paused = False
        self._pauses: set[str] = set()
        self._drain_waiters: list[asyncio.Future[None]] = []
        # Bytes written before this socket is connected. Python < 3.11.4 ignores pause_reading() called
        # from connection_made, so a client's first bytes can arrive while the upstream is still dialling.
        self._early: list[bytes] = []

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio.Transport
        transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        if self._pauses:
            transport.pause_reading()
        early, self._early = self._early, []
        for data in early:
            transport.write(data)
        self.connection.side_made(self)

    def data_received(self, data: bytes) -> None:
        assert self.reader is not None
        self.reader.feed(data)

    def eof_received(self) -> bool:
        assert self.reader is not None
        self.reader.feed_eof(lost=False)
        return True  # keep the socket open for the other direction (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._wake_drain_waiters()
        if self.writer is not None:
            self.writer.stop()
        if self.reader is not None:
            self.reader.feed_eof(lost=True)
        self.connection.side_lost(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.writer is not None:
            self.writer.source.pause("peer-buffer-full")

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.writer is not None:
            self.writer.source.resume("peer-buffer-full")
        self._wake_drain_waiters()

    # used by links and the connection
    def pause(self, reason: str) -> None:
        if not self._pauses and self.transport is not None:
            self.transport.pause_reading()
        self._pauses.add(reason)

    def resume(self, reason: str) -> None:
        if reason not in self._pauses:
            return
        self._pauses.discard(reason)
        if not self._pauses and self.transport is not None:
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is None and not self.lost:
            self._early.append(data)
        elif self.transport is not None and not self.lost and not self.transport.is_closing():
            self.transport.write(data)

    async def drained(self) -> None:
        if not self.write_paused or self.lost:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def write_eof(self) -> None:
        if self.transport is not None and not self.transport.is_closing() and self.transport.can_write_eof():
            self.transport.write_eof()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self, rst: bool = False) -> None:
        if self.transport is None:
            return
        if rst:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
        self.transport.abort()

    def _wake_drain_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class Link:
    """One direction of a connection: reads from `source`, runs the toxic chain, writes to `dest`."""

    def __init__(self, connection: Connection, stream: str, source: Side, dest: Side) -> None:
        self.connection = connection
        self.stream = stream
        self.source = source
        self.dest = dest
        source.reader = self
        dest.writer = self
        self.stubs: dict[str, tuple[ToxicSpec, ToxicStub]] = {}
        self.active: tuple[ToxicStub, ...] = ()
        self.done = False
        self._source_lost = False
        self._eof_seen = False
        self._queue: deque[Chunk] = deque()
        self._queued = 0
        self._pump: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self.counts = connection.context.counters(stream)

    # input from the source socket
    def feed(self, data: bytes) -> None:
        if self.done:
            return
        counts = self.counts
        counts[0] += len(data)
        if self._pump is None and not self.active:
            self.dest.write(data)  # fast path
            counts[1] += len(data)
            return
        self._queue.append(Chunk(data, self.connection.loop.time()))
        self._queued += len(data)
        if self._queued > QUEUE_HIGH:
            self.source.pause("toxic-queue-full")
        self._kick()

    def feed_eof(self, lost: bool) -> None:
        self._source_lost = self._source_lost or lost
        if self.done or self._eof_seen:
            return
        self._eof_seen = True
        if self._pump is None and not self.active:
            self._finish()
            return
        self._queue.append(Chunk(b"", self.connection.loop.time(), eof=True))
        self._kick()

    # toxics
    def sync(self, specs: list[ToxicSpec]) -> None:
        """Bring the chain in line with the proxy's toxics for this stream (new, updated, removed)."""
        old = self.stubs
        new: dict[str, tuple[ToxicSpec, ToxicStub]] = {}
        for spec in specs:
            current = old.get(spec.name)
            if current is not None and current[0].serial == spec.serial:
                before, stub = current
                if before is not spec:
                    stub.update(spec.toxic, spec.toxicity, before.toxicity)
                new[spec.name] = (spec, stub)
            else:
                new[spec.name] = (spec, self._new_stub(spec))
        for name, (spec, stub) in old.items():
            if new.get(name, (None, None))[1] is not stub:
                stub.detach()
        self.stubs = new
        for spec, stub in new.values():
            if old.get(spec.name, (None, None))[1] is not stub:
                stub.attach()
        self.active = tuple(stub for _, stub in new.values() if stub.applies)
        self._kick(start=False)

    def _new_stub(self, spec: ToxicSpec) -> ToxicStub:
        ctx = self.connection.context
        rng = toxic_random(ctx.seed, ctx.proxy_name, ctx.serial, self.stream, spec.name, spec.serial)
        return ToxicStub(spec.toxic, spec.toxicity, rng, self.connection)

    def stop(self) -> None:
        """Stop moving data (the connection is going away); queued data is dropped."""
        if self.done:
            return
        self.done = True
        self._queue.clear()
        for _, stub in self.stubs.values():
            stub.detach_quietly()
        if self._pump is not None and self._pump is not asyncio.current_task():
            self._pump.cancel()
        self._kick(start=False)

    # the pump: chunks through the chain
    def _kick(self, start: bool = True) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        if start and self._pump is None and not self.done:
            self._pump = self.connection.loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            while not self.done:
                if not self._queue:
                    if not self.active:
                        return  # back to the fast path
                    self._wake = self.connection.loop.create_future()
                    await self._wake
                    continue
                chunk = self._queue.popleft()
                self._queued -= len(chunk.data)
                if self._queued < QUEUE_LOW:
                    self.source.resume("toxic-queue-full")
                await self._through(self.active, 0, chunk)
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug in a toxic must not take the proxy down
            log.exception("proxy=%s link=%s: toxic chain failed; closing the connection",
                          self.connection.context.proxy_name, self.stream)
            self.connection.abort()
        finally:
            self._pump = None
            self._wake = None

    async def _through(self, stubs: tuple[ToxicStub, ...], index: int, chunk: Chunk) -> None:
        while index < len(stubs) and not (stubs[index].attached and stubs[index].applies):
            index += 1
        if self.done:
            return
        if index == len(stubs):
            await self._deliver(chunk)
            return
        stub = stubs[index]
        await stub.toxic.pipe(stub, chunk, partial(self._through, stubs, index + 1))

    async def _deliver(self, chunk: Chunk) -> None:
        if chunk.eof:
            self._finish()
            return
        self.dest.write(chunk.data)
        self.counts[1] += len(chunk.data)
        await self.dest.drained()

    def _finish(self) -> None:
        """The source ended and everything before the end has been passed on."""
        self.done = True
        self.connection.link_finished(self, self._source_lost)


class Connection:
    """A client socket, the upstream socket dialled for it, and the two links between them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, context: ConnectionContext, upstream: tuple[str, int],
                 adopted: bool = False) -> None:
        self.loop = loop
        self.context = context
        self.upstream_address = upstream
        self.client = Side(self, "client")
        self.server = Side(self, "upstream")
        # adopted: both sockets come connected from outside asyncio (the compiled pump, see `adopt`)
        self.adopted = adopted
        self.client.pause("dialling-upstream")
        self.up = Link(self, UPSTREAM, self.client, self.server)
        self.down = Link(self, DOWNSTREAM, self.server, self.client)
        self.closing = False
        self._dial: asyncio.Task[None] | None = None
        self.sync_toxics()

    @property
    def links(self) -> tuple[Link, Link]:
        return (self.up, self.down)

    def sync_toxics(self, stream: str | None = None) -> None:
        for link in self.links:
            if stream is None or link.stream == stream:
                link.sync(self.context.toxic_specs(link.stream))

    def describe(self) -> str:
        peer = self.client.transport.get_extra_info("peername") if self.client.transport else None
        return f"proxy={self.context.proxy_name} conn={self.context.serial} client={peer}"

    # lifecycle
    def side_made(self, side: Side) -> None:
        if side is self.client:
            if not self.adopted:
                self._dial = self.loop.create_task(self._dial_upstream())
        elif self.closing:
            side.close()
        else:
            self.client.resume("dialling-upstream")

    async def _dial_upstream(self) -> None:
        host, port = self.upstream_address
        try:
            # asyncio.timeout, not wait_for: wait_for wraps the dial in a second task, for every connection.
            async with asyncio.timeout(DIAL_TIMEOUT_S):
                await self.loop.create_connection(lambda: self.server, host, port)
        except (OSError, asyncio.TimeoutError) as exc:
            log.warning("%s: unable to open connection to upstream %s:%s: %s", self.describe(), host, port, exc)
            self.abort()
            return
        log.info("%s: accepted client, upstream %s:%s", self.describe(), host, port)

    async def adopt(self, client: socket.socket, server: socket.socket | None, to_server: bytes,
                    to_client: bytes) -> None:
        """Carry on a connection accepted (and, given `server`, dialled) outside asyncio. `to_server` and
        `to_client` were read from one side and not yet written to the other: they go first."""
        # Written before either socket is made (kept in Side._early), so they precede anything read later.
        # The pump counted them received; they are counted sent here.
        if to_server:
            self.server.write(to_server)
            self.up.counts[1] += len(to_server)
        if to_client:
            self.client.write(to_client)
            self.down.counts[1] += len(to_client)
        try:
            if server is not None:
                await self.loop.connect_accepted_socket(lambda: self.server, server)
            if self.closing:
                client.close()
                return
            await self.loop.connect_accepted_socket(lambda: self.client, client)
        except OSError as exc:
            log.warning("proxy=%s conn=%s: cannot carry on a connection: %s", self.context.proxy_name,
                        self.context.serial, exc)
            client.close()
            if server is not None:
                server.close()
            self.abort()

    def link_finished(self, link: Link, source_lost: bool) -> None:
        if source_lost:
            link.dest.close()
        else:
            link.dest.write_eof()
        if all(each.done for each in self.links):
            self.client.close()
            self.server.close()

    def side_lost(self, side: Side) -> None:
        other = self.server if side is self.client else self.client
        assert side.reader is not None
        if side.reader.done:
            # Nothing more will come through to close the other socket, so close it now.
            other.close()
        if side is self.client and self.server.transport is None:
            self.closing = True
        if self.client.lost and (self.server.lost or self.server.transport is None):
            self._forget()

    def _forget(self) -> None:
        for link in self.links:
            link.stop()
        if self._dial is not None:
            self._dial.cancel()
        self.context.forget(self)

    # what toxics and the API may do (ConnectionControl)
    def close_connection(self, why: str) -> None:
        """Close both sockets after flushing what was already passed on (FIN)."""
        if self.closing:
            return
        log.info("%s: closing: %s", self.describe(), why)
        self.closing = True
        for link in self.links:
            link.stop()
        self.client.close()
        self.server.close()
        self._drop_unconnected()

    def reset_connection(self, why: str) -> None:
        """Reset both sockets (RST via SO_LINGER 0)."""
        log.info("%s: resetting: %s", self.describe(), why)
        self.closing = True
        for link in self.links:
            link.stop()
        self.client.abort(rst=True)
        self.server.abort(rst=True)
        self._drop_unconnected()

    def abort(self) -> None:
        """Close both sockets at once, dropping queued data (proxy disabled or deleted)."""
        self.closing = True
        for link in self.links:
            link.stop()
        self.client.abort()
        self.server.abort()
        self._drop_unconnected()

    def _drop_unconnected(self) -> None:
        if self.server.transport is None:
            if self._dial is not None:
                self._dial.cancel()
            if self.client.lost or self.client.transport is None:
                self.context.forget(self)
