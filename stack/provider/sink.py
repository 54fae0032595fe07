"""The recording provider: a fake SMS/email/push gateway and the run's ground truth.

It is the harness's, not the app's: the observer reads it (`harness/observer.py`), and it runs from the
`provider` image (base + aiohttp + this package), which a stack file names as `image: provider`:

    python3 -m stack.provider.sink

`POST /deliver {id, worker, attempt}` appends one JSON line per accepted delivery (duplicates too:
the checkers must see them) and flushes it before answering 200. With `SMTP_PORT` set it is also a
mail server (aiosmtpd) for email senders: every message it accepts is one delivery, of the id found in
it by `ID_PATTERN` (a regular expression whose first group is the id; by default the harness's message
ids anywhere in the headers or body), or in the header `ID_HEADER` when that is set, and of the worker
that greeted it (its EHLO name: the health checker knows the senders by it, so a sender should greet
with its host name, as `smtplib.SMTP(..., local_hostname=socket.gethostname())` does); a message with
no id is refused (550) so a sender notices. Outages answer 451 to DATA; `GET /deliveries?offset=&limit=`
pages them through an in-memory index of line offsets; `POST /control` makes a share of requests
fail (503) or slow (an outage); `POST /reset` clears everything. The log survives a restart.
"""

from __future__ import annotations

import array
import asyncio
import json
import logging
import os
import sys
import random
import time

from aiohttp import web

LOG_PATH = os.environ.get("SINK_LOG", "/var/lib/chaos-sink/deliveries.jsonl")
MAX_PAGE = 10000

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s sink %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("sink")


class DeliveryLog:
    """Append-only JSONL with the byte offset of every line kept in memory."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.offsets = array.array("q")
        self.file = open(path, "a+b")
        self._index()

    def _index(self) -> None:
        self.file.seek(0)
        pos = 0
        for line in self.file:
            if line.endswith(b"\n"):
                self.offsets.append(pos)
            else:  # a torn last line (crash mid-write): drop it, it was never acknowledged
                self.file.truncate(pos)
                break
            pos += len(line)
        self.end = pos
        self.file.seek(0, os.SEEK_END)

    def append(self, record: dict) -> None:
        data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        self.file.write(data)
        self.file.flush()
        self.offsets.append(self.end)
        self.end += len(data)

    def page(self, offset: int, limit: int) -> list[bytes]:
        if offset >= len(self.offsets):
            return []
        start = self.offsets[offset]
        stop_index = offset + limit
        stop = self.offsets[stop_index] if stop_index < len(self.offsets) else self.end
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(stop - start).splitlines()

    def reset(self) -> None:
        self.file.truncate(0)
        self.file.seek(0)
        self.offsets = array.array("q")
        self.end = 0

    def __len__(self) -> int:
        return len(self.offsets)


class Outage:
    """The provider's failure mode: fail_rate in [0, 1] answered 503, delay_ms before any answer."""

    def __init__(self) -> None:
        self.set(0.0, 0, 0)

    def set(self, fail_rate: float, delay_ms: int, seed: int) -> None:
        self.fail_rate, self.delay_ms, self.seed = fail_rate, delay_ms, seed
        self.rng = random.Random(seed)

    async def strikes(self) -> bool:
        """Wait out the delay; then whether this request fails (over HTTP and SMTP alike)."""
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        return bool(self.fail_rate) and self.rng.random() < self.fail_rate


# The harness's message ids (harness/workload.py): a run's prefix (letters, digits, `_`, `.`, `-`), then
# `-` and the message's number in 8 digits, or for a campaign `-k<number>:<recipient>`; standing alone
# (not glued to other word characters), a trailing full stop allowed.
DEFAULT_ID_PATTERN = r"(?<![\w.-])([\w.-]+?-(?:k\d{8}:[\w.@+-]*\w|\d{8}))(?![\w-])"


class MailHandler:
    """aiosmtpd's handler: each accepted message is one delivery (see the module's docstring)."""

    def __init__(self, deliveries: "DeliveryLog", outage: "Outage", pattern: str, header: str) -> None:
        import re

        self.deliveries, self.outage = deliveries, outage
        self.pattern, self.header = re.compile(pattern), header

    def find_id(self, data: bytes) -> str | None:
        from email import message_from_bytes, policy

        message = message_from_bytes(data, policy=policy.default)
        if self.header:
            value = message.get(self.header)
            return str(value).strip() or None if value is not None else None
        parts = [f"{k}: {v}" for k, v in message.items()]
        for part in message.walk():
            if part.get_content_maintype() == "text":
                try:
                    parts.append(part.get_content())
                except (LookupError, ValueError):
                    parts.append(part.get_payload(decode=True).decode("utf-8", "replace"))
        found = self.pattern.search("\n".join(parts))
        return found.group(1) if found else None

    async def handle_DATA(self, server, session, envelope) -> str:
        if await self.outage.strikes():
            return "451 4.3.0 provider unavailable (injected)"
        found = self.find_id(envelope.original_content or envelope.content)
        if found is None:
            return "550 5.6.0 no message id found in the message"
        record = {"id": found, "worker": str(session.host_name or ""), "attempt": 1, "ts": time.time()}
        self.deliveries.append(record)
        return "250 2.0.0 accepted"


def _bad(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)


async def _json(request: web.Request) -> dict | None:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def make_app(path: str = LOG_PATH, smtp_port: int | None = None) -> web.Application:
    deliveries = DeliveryLog(path)
    outage = Outage()
    app = web.Application(client_max_size=64 * 1024)
    if smtp_port:
        app.cleanup_ctx.append(_smtp_server(MailHandler(deliveries, outage, os.environ.get("ID_PATTERN") or
                                                        DEFAULT_ID_PATTERN, os.environ.get("ID_HEADER", "")),
                                            smtp_port))

    async def deliver(request: web.Request) -> web.Response:
        body = await _json(request)
        if body is None or not isinstance(body.get("id"), str) or not body["id"]:
            return _bad("expected a JSON object with a non-empty string id")
        if await outage.strikes():
            return web.json_response({"error": "provider unavailable (injected)"}, status=503)
        record = {"id": body["id"], "worker": str(body.get("worker", "")),
                  "attempt": int(body.get("attempt", 1) or 1), "ts": time.time()}
        deliveries.append(record)
        return web.json_response({"accepted": record["id"], "offset": len(deliveries) - 1})

    async def list_deliveries(request: web.Request) -> web.Response:
        try:
            offset = int(request.query.get("offset", "0"))
            limit = int(request.query.get("limit", "1000"))
        except ValueError:
            return _bad("offset and limit must be integers")
        if offset < 0 or not 0 < limit <= MAX_PAGE:
            return _bad(f"offset must be >= 0 and limit in 1..{MAX_PAGE}")
        lines = deliveries.page(offset, limit)
        text = '{"deliveries":[' + b",".join(lines).decode() + f'],"next":{offset + len(lines)}}}'
        return web.Response(text=text, content_type="application/json")

    async def control(request: web.Request) -> web.Response:
        body = await _json(request)
        if body is None:
            return _bad("expected a JSON object")
        try:
            fail_rate = float(body.get("fail_rate", outage.fail_rate))
            delay_ms = int(body.get("delay_ms", outage.delay_ms))
            seed = int(body.get("seed", outage.seed))
        except (TypeError, ValueError):
            return _bad("fail_rate is a number in [0, 1], delay_ms and seed integers")
        if not 0.0 <= fail_rate <= 1.0 or delay_ms < 0:
            return _bad("fail_rate is a number in [0, 1], delay_ms >= 0")
        outage.set(fail_rate, delay_ms, seed)
        log.info("control: fail_rate=%s delay_ms=%s seed=%s", fail_rate, delay_ms, seed)
        return web.json_response({"fail_rate": fail_rate, "delay_ms": delay_ms, "seed": seed})

    async def reset(request: web.Request) -> web.Response:
        deliveries.reset()
        outage.set(0.0, 0, 0)
        log.info("reset")
        return web.json_response({"deliveries": 0})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "deliveries": len(deliveries),
                                  "fail_rate": outage.fail_rate, "delay_ms": outage.delay_ms})

    app.add_routes([web.post("/deliver", deliver), web.get("/deliveries", list_deliveries),
                    web.post("/control", control), web.post("/reset", reset), web.get("/health", health)])
    return app


def _smtp_server(handler: MailHandler, port: int):
    """The SMTP listener, started and stopped with the HTTP app (one event loop, one delivery log)."""

    async def context(app: web.Application):
        from aiosmtpd.smtp import SMTP

        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="provider", ident="chaos-harness provider", data_size_limit=1 << 20),
            host="0.0.0.0", port=port)
        log.info("SMTP on port %s", port)
        yield
        server.close()
        await server.wait_closed()

    return context


def main() -> None:
    port = int(os.environ.get("HTTP_PORT", "8080"))
    smtp = int(os.environ["SMTP_PORT"]) if os.environ.get("SMTP_PORT") else None
    # SIGTERM: stop listening, answer the deliveries in flight (each is logged before its 200), exit 0.
    web.run_app(make_app(smtp_port=smtp), host="0.0.0.0", port=port, access_log=None, print=None,
                shutdown_timeout=float(os.environ.get("SHUTDOWN_TIMEOUT_S", "8")))


if __name__ == "__main__":
    main()
