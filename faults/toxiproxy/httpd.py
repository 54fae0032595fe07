"""HTTP/1.1 for a JSON API, without I/O: bytes in, requests out, answers rendered (keep-alive, Content-Length,
chunked bodies).

Two drivers move the bytes: `control.ControlLoop` (a `selectors` loop, while the proxy runs without asyncio)
and `aio.ApiProtocol` (once Python's data path needs asyncio). A connection's `HttpConnection`, with what it
has buffered, moves from the first to the second when the server switches.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

log = logging.getLogger("toxiproxy.api")

MAX_BODY = 16 << 20
MAX_HEADERS = 100
MAX_LINE = 64 << 10
IDLE_TIMEOUT_S = 60.0


# Plain classes rather than dataclasses: the proxy's process would import dataclasses for these alone, and
# every dataclass compiles its methods when defined (~0.2 MiB with proxy.ToxicSpec).
class Request:
    """One request: method, target as sent, headers by lower-case name, body; `version` as sent."""

    __slots__ = ("method", "path", "headers", "body", "version")

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes,
                 version: str = "HTTP/1.1") -> None:
        self.method, self.path, self.headers, self.body, self.version = method, path, headers, body, version


class Response:
    """One answer; `content_type` "" writes no Content-Type (Go's bare 405)."""

    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(self, status: int, body: bytes = b"", content_type: str = "application/json",
                 headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.content_type = status, body, content_type
        self.headers = {} if headers is None else headers


Handler = Callable[[Request], Awaitable[Response]]
INTERNAL_ERROR = Response(500, b'{"error": "internal error", "status": 500}')

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


class Incomplete(Exception):
    """More bytes are needed (internal to the parser)."""


BLANK = (b"\r\n", b"\n")


class HttpConnection:
    """One client connection's HTTP: `feed` bytes (and `feed_eof`), take `next_request()` until None, and
    `answer` each; `closing` once the connection is to be closed after what was answered."""

    __slots__ = ("buffer", "at_eof", "closing")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.at_eof = False
        self.closing = False

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def feed_eof(self) -> None:
        self.at_eof = True

    @property
    def finished(self) -> bool:
        """Nothing more can come: closing, or the peer's end with no complete request left."""
        return self.closing or (self.at_eof and not self.buffer)

    def next_request(self) -> Request | None:
        """The next complete request, taken out of the buffer; None until one is there. A malformed one
        raises BadRequest (answer it with `bad_request`)."""
        try:
            request, used = self._parse()
        except Incomplete:
            if self.at_eof:  # what is left can never complete: as a read at EOF, it ends the connection
                self.buffer.clear()
            return None
        del self.buffer[:used]
        return request

    def answer(self, request: Request, response: Response) -> bytes:
        """The bytes of `response` to `request`; sets `closing` when the connection ends after it."""
        connection = request.headers.get("connection", "").lower()
        keep_alive = connection != "close" and (request.version == "HTTP/1.1" or connection == "keep-alive")
        if not keep_alive:
            self.closing = True
        return render(response, keep_alive, request.version)

    def bad_request(self, exc: BadRequest) -> bytes:
        self.closing = True
        self.buffer.clear()
        return render(Response(400, f"{exc}\n".encode(), "text/plain; charset=utf-8"), False, "HTTP/1.1")

    # parsing
    def _line(self, start: int) -> tuple[bytes, int]:
        """The line at `start` with its end of line, and where the next one starts. At EOF an unterminated
        rest is a last line, and nothing at all an empty one (as StreamReader.readline answers)."""
        end = self.buffer.find(b"\n", start)
        if end < 0:
            if len(self.buffer) - start > MAX_LINE:
                raise BadRequest("line too long")
            if not self.at_eof:
                raise Incomplete
            return bytes(self.buffer[start:]), len(self.buffer)
        if end - start > MAX_LINE:
            raise BadRequest("line too long")
        return bytes(self.buffer[start:end + 1]), end + 1

    def _parse(self) -> tuple[Request, int]:
        pos = 0
        line, pos = self._line(pos)
        while line in BLANK:  # tolerate stray blank lines between requests
            line, pos = self._line(pos)
        if not line:
            raise Incomplete
        try:
            method, target, version = line.decode("latin-1").split()
        except ValueError:
            raise BadRequest("malformed request line") from None
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            raw, pos = self._line(pos)
            if raw in BLANK or not raw:
                break
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep:
                raise BadRequest("malformed header")
            headers[name.strip().lower()] = value.strip()
        else:
            raise BadRequest("too many headers")
        body, pos = self._body(headers, pos)
        return Request(method.upper(), target, headers, body, version), pos

    def _exactly(self, start: int, size: int) -> bytes:
        if len(self.buffer) - start < size:
            raise Incomplete
        return bytes(self.buffer[start:start + size])

    def _body(self, headers: dict[str, str], pos: int) -> tuple[bytes, int]:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            total = 0
            while True:
                size_line, pos = self._line(pos)
                try:
                    size = int(size_line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BadRequest("malformed chunk size") from None
                if size == 0:
                    trailer, pos = self._line(pos)
                    while trailer not in BLANK and trailer:
                        trailer, pos = self._line(pos)
                    return b"".join(parts), pos
                total += size
                if total > MAX_BODY:
                    raise BadRequest("body too large")
                parts.append(self._exactly(pos, size))
                _, pos = self._line(pos + size)
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY:
            raise BadRequest("bad content-length")
        size = int(length)
        return self._exactly(pos, size), pos + size


def render(response: Response, keep_alive: bool, version: str) -> bytes:
    status = response.status
    lines = [f"{version if version == 'HTTP/1.0' else 'HTTP/1.1'} {status} {reason_phrase(status)}"]
    if response.status != 204:
        if response.content_type:  # "" for none, as Go's bare 405
            lines.append(f"Content-Type: {response.content_type}")
        lines.append(f"Content-Length: {len(response.body)}")
    lines.extend(f"{k}: {v}" for k, v in response.headers.items())
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (response.body if response.status != 204 else b"")


def failed(request: Request) -> Response:
    """The answer when the handler raised: logged, and a 500."""
    log.exception("api: %s %s failed", request.method, request.path)
    return INTERNAL_ERROR
