"""The Toxiproxy 2.x HTTP API: routes, JSON in and out, Toxiproxy's status codes and error bodies."""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import socket
import time
from typing import Any, Awaitable, Callable

from .httpd import Request, Response
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .proxy import ApiError, ProxyCollection, bad_body
from .pump import native

try:
    # CPython's built-in md5, the one hashlib falls back to without OpenSSL (server.py keeps OpenSSL out of the
    # proxy's process): importing hashlib would also load its sha1, sha2, sha3 and blake2 (~0.3 MiB).
    from _md5 import md5
except ImportError:  # an interpreter built without it
    from hashlib import md5

log = logging.getLogger("toxiproxy.api")

VERSION = "2.12.0"  # the Toxiproxy API version this server speaks
IMPLEMENTATION = "faults.toxiproxy (python)"
# Ours, never Toxiproxy's: a real client parses /version, so what we add (implementation, seed) lives here.
SERVER_INFO_PATH = "/faults/server"
# What this server does beyond Toxiproxy 2.12, by name; a fault that relies on one asks for it (a real
# Toxiproxy answers 404 at SERVER_INFO_PATH, so it has none of them).
FEATURES = (
    "seeded-randomness",  # -seed decides jitter, toxicity and slicer draws, so a run replays
    "half-close",  # a FIN in one direction is passed on; the other direction goes on
    "reset-peer-on-open-connections",  # reset_peer sends RST on connections opened before it was added
)
REQUEST_ID_HEADER = "X-Toxiproxy-Request-Id"
ERROR_TYPE = "text/plain; charset=utf-8"  # Go's http.Error, which Toxiproxy's errors go through


XID_DIGITS = "0123456789abcdefghijklmnopqrstuv"


class RequestIds:
    """Request ids as Toxiproxy's zerolog/hlog makes them: 12-byte xids (time, machine, pid, counter) in
    20 lower-case base32hex characters, e.g. "dc8iig5qmd2pcaqqobjg"."""

    def __init__(self) -> None:
        self._machine = md5(socket.gethostname().encode()).digest()[:3]
        self._pid = (os.getpid() & 0xFFFF).to_bytes(2, "big")
        self._counter = itertools.count(int.from_bytes(os.urandom(3), "big"))  # a random start, as xid's

    def next(self) -> str:
        raw = (int(time.time()).to_bytes(4, "big") + self._machine + self._pid
               + (next(self._counter) & 0xFFFFFF).to_bytes(3, "big"))
        # base32hex, lower-case and unpadded: 96 bits and 4 zero bits make 20 digits (what xid writes)
        number = int.from_bytes(raw, "big") << 4
        return "".join(XID_DIGITS[(number >> shift) & 31] for shift in range(95, -1, -5))


# urllib.parse for the URL a request names, but only when it needs it: importing it costs the proxy's process
# ~0.4 MiB (it loads ipaddress and builds its named tuples), and the origin form "/path?query" every client
# sends, and a name without %-escapes, parse the same without it.
def target_path(target: str) -> str:
    """urlsplit(target).path: for "/path?query#fragment" what comes before the first "?" or "#"."""
    if target.startswith("/") and not target.startswith("//"):  # neither a scheme nor a "//netloc"
        return target.partition("?")[0].partition("#")[0]
    from urllib.parse import urlsplit
    return urlsplit(target).path


def unquote(text: str) -> str:
    """urllib.parse.unquote(text), which returns a text without "%" as it is."""
    if "%" not in text:
        return text
    from urllib.parse import unquote as decode
    return decode(text)


Route = Callable[..., Awaitable[tuple[int, Any]]]


class ToxiproxyApi:
    """Turns requests into calls on a ProxyCollection; every answer is JSON, as Toxiproxy's."""

    def __init__(self, proxies: ProxyCollection) -> None:
        self.proxies = proxies
        self._request_ids = RequestIds()
        self._routes: list[tuple[re.Pattern[str], dict[str, Route]]] = [
            (re.compile(r"/version"), {"GET": self.version}),
            (re.compile(re.escape(SERVER_INFO_PATH)), {"GET": self.server_info}),
            (re.compile(r"/reset"), {"POST": self.reset}),
            (re.compile(r"/populate"), {"POST": self.populate}),
            (re.compile(r"/proxies"), {"GET": self.proxy_index, "POST": self.proxy_create}),
            (re.compile(r"/proxies/([^/]+)"), {"GET": self.proxy_show, "POST": self.proxy_update,
                                               "PATCH": self.proxy_update, "DELETE": self.proxy_delete}),
            (re.compile(r"/proxies/([^/]+)/toxics"), {"GET": self.toxic_index, "POST": self.toxic_create}),
            (re.compile(r"/proxies/([^/]+)/toxics/([^/]+)"), {"GET": self.toxic_show, "POST": self.toxic_update,
                                                             "PATCH": self.toxic_update,
                                                             "DELETE": self.toxic_delete}),
        ]
        if proxies.metrics.enabled:  # as Toxiproxy: /metrics exists only with -proxy-metrics or -runtime-metrics
            self._routes.append((re.compile(r"/metrics"), {method: self.metrics for method in
                                                           ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")}))

    async def handle(self, request: Request) -> Response:
        response = await self._dispatch(request)
        log.info("api: %s %s -> %d", request.method, request.path, response.status)
        return response

    async def _dispatch(self, request: Request) -> Response:
        path = target_path(request.path).rstrip("/") or "/"
        for pattern, methods in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            route = methods.get(request.method)
            if route is None:
                return Response(405, b"", "")  # gorilla/mux answers a bare 405
            # Toxiproxy's middleware gives every routed request an id, browsers' refusals included.
            headers = {REQUEST_ID_HEADER: self._request_ids.next()}
            if request.headers.get("user-agent", "").startswith("Mozilla/"):
                return Response(403, b"User agent not allowed\n", ERROR_TYPE, _error_headers(headers))
            args = [unquote(group) for group in match.groups()]
            try:
                status, payload = await route(request, *args)
            except ApiError as exc:
                return Response(exc.status, _json_bytes({"error": exc.message, "status": exc.status}) + b"\n",
                                ERROR_TYPE, _error_headers(headers))
            if status == 204:
                return Response(204, headers=headers)
            if isinstance(payload, Response):
                return Response(payload.status, payload.body, payload.content_type, {**headers, **payload.headers})
            return Response(status, _json_bytes(payload), headers=headers)
        return Response(404, b"404 page not found\n", ERROR_TYPE, {"X-Content-Type-Options": "nosniff"})

    # routes
    async def version(self, request: Request) -> tuple[int, Any]:
        # Byte for byte Toxiproxy's answer: clients parse it, some strictly.
        body = json.dumps({"version": VERSION}).encode() + b"\n"
        return 200, Response(200, body, "application/json;charset=utf-8")

    async def server_info(self, request: Request) -> tuple[int, Any]:
        """Ours alone: what this server is, the seed of its randomness (a run replays with it), which data
        path moves the bytes of a proxy without toxics ("compiled": faults/pump; "python") and what the API
        runs on ("selectors" until Python's data path is first needed, then "asyncio": control.py)."""
        return 200, {"implementation": IMPLEMENTATION, "version": VERSION, "seed": self.proxies.seed,
                     "features": list(FEATURES), "data_path": "compiled" if native() else "python",
                     "api_loop": "asyncio" if self.proxies.loops.made else "selectors"}

    async def metrics(self, request: Request) -> tuple[int, Any]:
        return 200, Response(200, self.proxies.metrics.render().encode(), METRICS_CONTENT_TYPE)

    async def reset(self, request: Request) -> tuple[int, Any]:
        await self.proxies.reset()
        return 204, None

    async def populate(self, request: Request) -> tuple[int, Any]:
        try:
            proxies = await self.proxies.populate(_json(request))
        except ApiError as exc:  # Toxiproxy answers this one as JSON, not through http.Error
            return exc.status, {"error": exc.message, "status": exc.status, "proxies": None}
        return 201, {"proxies": [proxy.to_json() for proxy in proxies]}

    async def proxy_index(self, request: Request) -> tuple[int, Any]:
        # by name, as Go writes a map
        return 200, {name: self.proxies.proxies[name].to_json() for name in sorted(self.proxies.proxies)}

    async def proxy_create(self, request: Request) -> tuple[int, Any]:
        return 201, (await self.proxies.create(_json(request))).to_json()

    async def proxy_show(self, request: Request, name: str) -> tuple[int, Any]:
        return 200, self.proxies.get(name).to_json()

    async def proxy_update(self, request: Request, name: str) -> tuple[int, Any]:
        self.proxies.get(name)  # 404 before 400, as Toxiproxy
        return 200, (await self.proxies.update(name, _json(request))).to_json()

    async def proxy_delete(self, request: Request, name: str) -> tuple[int, Any]:
        self.proxies.delete(name)
        return 204, None

    async def toxic_index(self, request: Request, proxy: str) -> tuple[int, Any]:
        return 200, [spec.to_json() for spec in self.proxies.get(proxy).toxics.all()]

    async def toxic_create(self, request: Request, proxy: str) -> tuple[int, Any]:
        toxics = self.proxies.get(proxy).toxics
        return 200, toxics.add(_json(request)).to_json()  # 200, not 201: what Toxiproxy answers

    async def toxic_show(self, request: Request, proxy: str, toxic: str) -> tuple[int, Any]:
        return 200, self.proxies.get(proxy).toxics.get(toxic).to_json()

    async def toxic_update(self, request: Request, proxy: str, toxic: str) -> tuple[int, Any]:
        toxics = self.proxies.get(proxy).toxics
        toxics.get(toxic)
        return 200, toxics.update(toxic, _json(request)).to_json()

    async def toxic_delete(self, request: Request, proxy: str, toxic: str) -> tuple[int, Any]:
        self.proxies.get(proxy).toxics.remove(toxic)
        return 204, None


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()  # Go's encoding/json spacing


def _error_headers(headers: dict[str, str]) -> dict[str, str]:
    return {"X-Content-Type-Options": "nosniff", **headers}


def _json(request: Request) -> Any:
    if not request.body.strip():
        raise bad_body("EOF")
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_body(str(exc)) from None
