"""The API's own event loop: a `selectors` loop that serves the HTTP API while no proxy needs asyncio.

With the compiled data path (pump.py), a proxy without toxics never runs Python code per connection, so
the process needs no asyncio until the first toxic: importing it would cost ~3.6 MiB, more than real
Toxiproxy's whole process spares. Every API call then completes without waiting (`run_now`). The first call
that needs Python's data path asks `LoopRef` for the asyncio loop; when that call is answered, this loop
hands its listener and open connections (with what they buffered) to asyncio (`aio.serve_api`) and stops.

A stop request (any thread, or a signal handler) is a flag and a byte on a socket pair, in either mode.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from typing import Any, Callable, Coroutine

from .httpd import IDLE_TIMEOUT_S, BadRequest, Handler, HttpConnection, failed

log = logging.getLogger("toxiproxy.api")

ACCEPT_BATCH = 64
ACCEPT_RETRY_S = 1.0  # after a failed accept (EMFILE, say), as asyncio's servers wait


class Suspended(RuntimeError):
    """An API call waited on asyncio while the API ran without it."""


def run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never waits (every API call while no proxy runs on asyncio) to its result."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise Suspended("an API call waited on asyncio while the API ran without it")


class Waker:
    """A flag and a socket pair: `wake()` from any thread or a signal handler; the loop reads `fd`."""

    def __init__(self) -> None:
        self.reader, self.writer = socket.socketpair()
        self.reader.setblocking(False)
        self.writer.setblocking(False)
        self.stopping = False

    def wake(self) -> None:
        self.stopping = True
        try:
            self.writer.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # full (a wake is pending anyway) or closed (the server is gone)

    def drain(self) -> None:
        try:
            while self.reader.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        self.reader.close()
        self.writer.close()


class Client:
    """An API connection: its socket, its HTTP state, bytes not yet written, and when it idles out."""

    __slots__ = ("sock", "http", "out", "deadline")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.http = HttpConnection()
        self.out = bytearray()
        self.deadline = time.monotonic() + IDLE_TIMEOUT_S


class ControlLoop:
    """Serves `handler` on `listener` until a stop (returns False) or until `wants_asyncio()` turns true
    after an answer (returns True, with the listener and `clients` still open, for the caller to hand over)."""

    def __init__(self, handler: Handler, listener: socket.socket, waker: Waker,
                 wants_asyncio: Callable[[], bool]) -> None:
        self.handler = handler
        self.listener = listener
        self.waker = waker
        self.wants_asyncio = wants_asyncio
        self.clients: dict[int, Client] = {}
        self._selector = selectors.DefaultSelector()
        self._accept_again_at: float | None = None  # the listener rests until then after a failed accept

    def run(self) -> bool:
        selector = self._selector
        selector.register(self.listener, selectors.EVENT_READ, None)
        selector.register(self.waker.reader, selectors.EVENT_READ, self.waker)
        try:
            while not self.waker.stopping:
                if self.wants_asyncio():
                    return True
                self._resume_accepting()
                for key, events in selector.select(self._timeout()):
                    if key.data is None:
                        self._accept()
                    elif key.data is self.waker:
                        self.waker.drain()
                    else:
                        self._serve(key.data, events)
                self._idle_out()
            return False
        finally:
            for client in self.clients.values():
                selector.unregister(client.sock)
            if self._accept_again_at is None:
                selector.unregister(self.listener)
            selector.unregister(self.waker.reader)
            selector.close()

    def close(self) -> None:
        """After a stop: close the API's sockets."""
        for client in self.clients.values():
            client.sock.close()
        self.clients.clear()
        self.listener.close()

    def _timeout(self) -> float | None:
        deadlines = [client.deadline for client in self.clients.values()]
        if self._accept_again_at is not None:
            deadlines.append(self._accept_again_at)
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _resume_accepting(self) -> None:
        if self._accept_again_at is not None and time.monotonic() >= self._accept_again_at:
            self._accept_again_at = None
            self._selector.register(self.listener, selectors.EVENT_READ, None)

    def _idle_out(self) -> None:
        now = time.monotonic()
        for client in [c for c in self.clients.values() if c.deadline <= now]:
            self._drop(client)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: the client waits in the backlog; rest, not spin
                log.warning("api: accept failed: %s; trying again in %gs", exc, ACCEPT_RETRY_S)
                self._selector.unregister(self.listener)
                self._accept_again_at = time.monotonic() + ACCEPT_RETRY_S
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = Client(sock)
            self.clients[sock.fileno()] = client
            self._selector.register(sock, selectors.EVENT_READ, client)

    def _serve(self, client: Client, events: int) -> None:
        if events & selectors.EVENT_READ:
            try:
                data = client.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self._drop(client)
                return
            if data is not None:
                client.deadline = time.monotonic() + IDLE_TIMEOUT_S
                if data:
                    client.http.feed(data)
                else:
                    client.http.feed_eof()
                self._answer(client)
        self._flush(client)

    def _answer(self, client: Client) -> None:
        http = client.http
        while not http.closing and not self.wants_asyncio():  # the rest is asyncio's, once it is wanted
            try:
                request = http.next_request()
            except BadRequest as exc:
                client.out += http.bad_request(exc)
                break
            if request is None:
                break
            try:
                response = run_now(self.handler(request))
            except Exception:
                response = failed(request)
            client.out += http.answer(request, response)

    def _flush(self, client: Client) -> None:
        if client.out:
            try:
                sent = client.sock.send(client.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._drop(client)
                return
            del client.out[:sent]
        if client.http.finished and not client.out:
            self._drop(client)
            return
        # no more reads once the peer's end or our close is there (the socket would keep reading EOF)
        reading = not (client.http.at_eof or client.http.closing)
        events = (selectors.EVENT_READ if reading else 0) | (selectors.EVENT_WRITE if client.out else 0)
        events = events or selectors.EVENT_READ  # requests left for asyncio: the loop hands over next
        if self._selector.get_key(client.sock).events != events:
            self._selector.modify(client.sock, events, client)

    def _drop(self, client: Client) -> None:
        self._selector.unregister(client.sock)
        del self.clients[client.sock.fileno()]
        client.sock.close()
