"""The Toxiproxy 2.x HTTP API: routes, JSON in and out, Toxiproxy's status codes and error bodies."""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Awaitable, Callable
from urllib.parse import unquote, urlsplit

from .httpd import Request, Response
from .proxy import ApiError, ProxyCollection, bad_body

log = logging.getLogger("toxiproxy.api")

VERSION = "2.12.0"  # the Toxiproxy API version this server speaks
IMPLEMENTATION = "faults.toxiproxy (python)"

Route = Callable[..., Awaitable[tuple[int, Any]]]


class ToxiproxyApi:
    """Turns requests into calls on a ProxyCollection; every answer is JSON, as Toxiproxy's."""

    def __init__(self, proxies: ProxyCollection) -> None:
        self.proxies = proxies
        self._routes: list[tuple[re.Pattern[str], dict[str, Route]]] = [
            (re.compile(r"/version"), {"GET": self.version}),
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

    async def handle(self, request: Request) -> Response:
        response = await self._dispatch(request)
        log.info("api: %s %s -> %d", request.method, request.path, response.status)
        return response

    async def _dispatch(self, request: Request) -> Response:
        if request.headers.get("user-agent", "").startswith("Mozilla/"):
            return Response(403, b"User agent not allowed\n", "text/plain; charset=utf-8")
        path = urlsplit(request.path).path.rstrip("/") or "/"
        for pattern, methods in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            route = methods.get(request.method)
            if route is None:
                return Response(405, b"", "text/plain; charset=utf-8")
            args = [unquote(group) for group in match.groups()]
            try:
                status, payload = await route(request, *args)
            except ApiError as exc:
                status, payload = exc.status, {"error": exc.message, "status": exc.status}
            if status == 204:
                return Response(204)
            return Response(status, json.dumps(payload).encode() + b"\n")
        return Response(404, b"404 page not found\n", "text/plain; charset=utf-8")

    # routes
    async def version(self, request: Request) -> tuple[int, Any]:
        return 200, {"version": VERSION, "implementation": IMPLEMENTATION, "seed": self.proxies.seed}

    async def reset(self, request: Request) -> tuple[int, Any]:
        await self.proxies.reset()
        return 204, None

    async def populate(self, request: Request) -> tuple[int, Any]:
        try:
            proxies = await self.proxies.populate(_json(request))
        except ApiError as exc:
            return exc.status, {"error": exc.message, "status": exc.status, "proxies": None}
        return 201, {"proxies": [proxy.to_json() for proxy in proxies]}

    async def proxy_index(self, request: Request) -> tuple[int, Any]:
        return 200, {name: proxy.to_json() for name, proxy in self.proxies.proxies.items()}

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


def _json(request: Request) -> Any:
    if not request.body.strip():
        raise bad_body("EOF")
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_body(str(exc)) from None
