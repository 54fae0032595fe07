"""A minimal HTTP/1.1 server on asyncio streams: enough for a JSON API (keep-alive, Content-Length, chunked)."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger("toxiproxy.api")

MAX_BODY = 16 << 20
MAX_HEADERS = 100
IDLE_TIMEOUT_S = 60.0


# Plain classes rather than dataclasses: the proxy's process would import dataclasses for these alone, and
# every dataclass compiles its methods when defined (~0.2 MiB with proxy.ToxicSpec and server.ServerThread).
class Request:
    """One request: method, target as sent, headers by lower-case name (plus ":version"), body."""

    __slots__ = ("method", "path", "headers", "body")

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body


class Response:
    """One answer; `content_type` "" writes no Content-Type (Go's bare 405)."""

    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(self, status: int, body: bytes = b"", content_type: str = "application/json",
                 headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.content_type = status, body, content_type
        self.headers = {} if headers is None else headers


Handler = Callable[[Request], Awaitable[Response]]

# The reason phrases of the statuses the API answers, as http.HTTPStatus spells them; any other status looks
# its phrase up there (importing http builds its enum of every status: ~0.06 MiB the proxy mostly does without).
PHRASES = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 500: "Internal Server Error"}


def reason_phrase(status: int) -> str:
    phrase = PHRASES.get(status)
    if phrase is None:
        from http import HTTPStatus

        phrase = HTTPStatus(status).phrase
    return phrase


class BadRequest(Exception):
    pass


async def serve(handler: Handler, host: str, port: int) -> asyncio.AbstractServer:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _session(handler, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, asyncio.CancelledError):
            pass  # a cancelled session simply ends (asyncio 3.11 logs cancelled client tasks otherwise)
        finally:
            writer.close()

    return await asyncio.start_server(on_client, host, port, limit=64 << 10)


async def _session(handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            request = await asyncio.wait_for(_read_request(reader), IDLE_TIMEOUT_S)
        except BadRequest as exc:
            await _write(writer, Response(400, f"{exc}\n".encode(), "text/plain; charset=utf-8"), False, "HTTP/1.1")
            return
        if request is None:
            return
        version = request.headers.pop(":version")
        connection = request.headers.get("connection", "").lower()
        keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
        try:
            response = await handler(request)
        except Exception:
            log.exception("api: %s %s failed", request.method, request.path)
            response = Response(500, b'{"error": "internal error", "status": 500}')
        await _write(writer, response, keep_alive, version)
        if not keep_alive:
            return


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    line = await reader.readline()
    while line in (b"\r\n", b"\n"):  # tolerate stray blank lines between requests
        line = await reader.readline()
    if not line:
        return None
    try:
        method, target, version = line.decode("latin-1").split()
    except ValueError:
        raise BadRequest("malformed request line") from None
    headers: dict[str, str] = {":version": version}
    for _ in range(MAX_HEADERS):
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep:
            raise BadRequest("malformed header")
        headers[name.strip().lower()] = value.strip()
    else:
        raise BadRequest("too many headers")
    body = await _read_body(reader, headers)
    return Request(method.upper(), target, headers, body)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        total = 0
        while True:
            size_line = await reader.readline()
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise BadRequest("malformed chunk size") from None
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise BadRequest("body too large")
            parts.append(await reader.readexactly(size))
            await reader.readline()
    length = headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_BODY:
        raise BadRequest("bad content-length")
    return await reader.readexactly(int(length)) if int(length) else b""


async def _write(writer: asyncio.StreamWriter, response: Response, keep_alive: bool, version: str) -> None:
    status = response.status
    lines = [f"{version if version == 'HTTP/1.0' else 'HTTP/1.1'} {status} {reason_phrase(status)}"]
    if response.status != 204:
        if response.content_type:  # "" for none, as Go's bare 405
            lines.append(f"Content-Type: {response.content_type}")
        lines.append(f"Content-Length: {len(response.body)}")
    lines.extend(f"{k}: {v}" for k, v in response.headers.items())
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    writer.write(head + (response.body if response.status != 204 else b""))
    await writer.drain()
