"""The API on asyncio, from the moment Python's data path needs it: `control.ControlLoop` hands over its
listener and open connections (`serve_api`), and `ApiProtocol` carries on each with what it had buffered."""

from __future__ import annotations

import asyncio
from typing import Callable, Iterable

from .control import Client, Waker
from .httpd import IDLE_TIMEOUT_S, BadRequest, Handler, HttpConnection, Request, failed


class ApiProtocol(asyncio.Protocol):
    """One API connection on asyncio: requests answered one after another, in order."""

    def __init__(self, handler: Handler, live: set[ApiProtocol], http: HttpConnection | None = None,
                 unsent: bytes = b"") -> None:
        self.handler = handler
        self.live = live
        self.http = http or HttpConnection()
        self.transport: asyncio.Transport | None = None
        self._unsent = unsent
        self._busy = False
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.live.add(self)
        if self._unsent:
            transport.write(self._unsent)  # type: ignore[attr-defined]
            self._unsent = b""
        self._touch()
        self._process()

    def data_received(self, data: bytes) -> None:
        self.http.feed(data)
        self._touch()
        self._process()

    def eof_received(self) -> bool:
        self.http.feed_eof()
        self._process()
        return True  # keep writing what is still to be answered; _process closes

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self.transport = None
        self.live.discard(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()  # after what is buffered is written

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(IDLE_TIMEOUT_S, self.close)

    def _process(self) -> None:
        if self._busy or self.transport is None:
            return
        http = self.http
        if not http.closing:
            try:
                request = http.next_request()
            except BadRequest as exc:
                self.transport.write(http.bad_request(exc))
                request = None
            if request is not None:
                self._busy = True
                asyncio.get_running_loop().create_task(self._answer(request))
                return
        if http.finished:
            self.close()

    async def _answer(self, request: Request) -> None:
        try:
            response = await self.handler(request)
        except Exception:
            response = failed(request)
        if self.transport is None:
            return
        self.transport.write(self.http.answer(request, response))
        self._busy = False
        self._process()


def serve_api(loop: asyncio.AbstractEventLoop, handler: Handler, listener: object, clients: Iterable[Client],
              waker: Waker, shutdown: Callable[[], None]) -> None:
    """Serve the API on `loop` until the waker's stop, then `shutdown()` (the proxies) and close the loop."""
    live: set[ApiProtocol] = set()

    async def start() -> asyncio.AbstractServer:
        server = await loop.create_server(lambda: ApiProtocol(handler, live), sock=listener)  # type: ignore[arg-type]
        for client in clients:
            await loop.connect_accepted_socket(
                lambda c=client: ApiProtocol(handler, live, c.http, bytes(c.out)), client.sock)  # type: ignore[misc]
        return server

    def on_wake() -> None:
        waker.drain()
        if waker.stopping:
            loop.stop()

    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(start())
    loop.add_reader(waker.reader.fileno(), on_wake)
    try:
        if not waker.stopping:
            loop.run_forever()
    finally:
        loop.remove_reader(waker.reader.fileno())
        server.close()
        for protocol in list(live):
            protocol.close()

        async def stop_proxies() -> None:  # inside the loop: the links' tasks ask for the running loop
            shutdown()
            await asyncio.sleep(0)

        loop.run_until_complete(stop_proxies())
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        asyncio.set_event_loop(None)
        loop.close()
