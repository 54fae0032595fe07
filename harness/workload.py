"""The workload: client threads driving the dispatch API over HTTP at a target total rate,
recording an invoke before and an ok / fail / info after every request (Jepsen's client)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from harness.history import HistoryWriter
from stack.app import DEFAULT_CLIENT, Client

CHANNELS = ("sms", "email", "push")


def outcome_of_status(status: int, client: Client = DEFAULT_CLIENT) -> str:
    """By the app's declared status sets; by default 2xx: accepted (ok); 4xx and 503: a definite
    refusal (fail); anything else: unknown (info)."""
    return client.outcome(status)


def outcome_of_error(error: requests.RequestException) -> str:
    """A request that never reached the server failed; any other error leaves it unknown."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    if isinstance(error, requests.ConnectTimeout) or isinstance(
            reason, (NewConnectionError, ConnectTimeoutError)):
        return "fail"
    return "info"


def recipient(channel: str, n: int) -> str:
    return {"sms": f"+3360{n:07d}", "email": f"user{n}@example.test",
            "push": f"device-{n}"}[channel]


@dataclass(frozen=True)
class Request:
    """One planned client operation: a single message or a campaign."""

    f: str                       # "send" | "campaign"
    method: str
    path: str
    body: Any
    value: Any                   # what the history records


class Workload:
    """`clients` threads sharing one schedule of `rate` operations per second in total, for
    `count` operations and/or `duration` seconds, or until `stop()`. Ids are unique per run:
    they start with `run_id`."""

    def __init__(self, api_url: str, writer: HistoryWriter, *, clients: int = 4,
                 rate: float = 50.0, count: int | None = None, duration: float | None = None,
                 campaign_share: float = 0.0, campaign_size: int = 10, seed: int = 0,
                 run_id: str | None = None, timeout_s: float = 5.0, client: Client = DEFAULT_CLIENT) -> None:
        if clients < 1 or rate <= 0:
            raise ValueError("a workload needs at least one client and a positive rate")
        if count is None and duration is None:
            raise ValueError("a workload needs a count or a duration (or both)")
        self.api_url = api_url.rstrip("/")
        self.client = client
        self.writer = writer
        self.clients, self.rate, self.count, self.duration = clients, rate, count, duration
        self.campaign_share, self.campaign_size = campaign_share, campaign_size
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self.timeout_s = timeout_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._next = 0
        self._t0 = 0.0
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._acknowledged: set[str] = set()
        self.outcomes = {"ok": 0, "fail": 0, "info": 0}

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> Workload:
        self._t0 = time.monotonic()
        self._threads = [threading.Thread(target=self._client, args=(f"client-{i}",),
                                          name=f"workload-client-{i}", daemon=True)
                         for i in range(self.clients)]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Take no new operation; requests in flight finish (within their timeout)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the clients; True if they all finished. Re-raises a client's crash."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self._errors:
            raise RuntimeError("a workload client crashed") from self._errors[0]
        return not any(t.is_alive() for t in self._threads)

    def run(self) -> dict[str, int]:
        """Start, wait for the count/duration, and return the outcome counts."""
        self.start()
        self.join()
        return dict(self.outcomes)

    def acknowledged_ids(self) -> frozenset[str]:
        """Message ids the API accepted so far (sends ok and every id of an ok campaign)."""
        with self._lock:
            return frozenset(self._acknowledged)

    # --- one client ------------------------------------------------------------------------

    def _client(self, process: str) -> None:
        try:
            with requests.Session() as session:
                while (planned := self._next_request()) is not None:
                    self._perform(session, process, planned)
        except BaseException as e:  # surfaced by join(): a crashed client is a harness bug
            self._errors.append(e)

    def _next_request(self) -> Request | None:
        """The next operation of the shared schedule, once its time has come."""
        with self._lock:
            k = self._next
            if self._stop.is_set() or (self.count is not None and k >= self.count):
                return None
            due = self._t0 + k / self.rate
            if self.duration is not None and due - self._t0 >= self.duration:
                return None
            self._next += 1
            planned = self._plan(k)
        # pacing wait, cut short by stop()
        if self._stop.wait(max(0.0, due - time.monotonic())):
            return None
        return planned

    def _plan(self, k: int) -> Request:
        text = f"hello {k}"
        campaign = self.client.campaign
        if campaign is not None and self.campaign_share and self._rng.random() < self.campaign_share:
            cid = f"{self.run_id}-k{k:08d}"
            recipients = [recipient("email", k * self.campaign_size + r)
                          for r in range(self.campaign_size)]
            return Request("campaign", campaign.method, campaign.path,
                           campaign.render({"campaign": cid, "recipients": recipients, "text": text}),
                           {"campaign": cid,
                            "ids": [self.client.campaign_id(cid, r) for r in recipients]})
        mid = f"{self.run_id}-{k:08d}"
        channel = self._rng.choice(CHANNELS)
        send = self.client.send
        return Request("send", send.method, send.path,
                       send.render({"id": mid, "channel": channel, "to": recipient(channel, k), "text": text}),
                       mid)

    def _perform(self, session: requests.Session, process: str, planned: Request) -> None:
        self.writer.record(process, "invoke", planned.f, planned.value)
        try:
            response = session.request(planned.method, self.api_url + planned.path, json=planned.body,
                                       timeout=self.timeout_s)
            outcome = self.client.outcome(response.status_code)
        except requests.RequestException as e:
            outcome = outcome_of_error(e)
        self.writer.record(process, outcome, planned.f, planned.value)
        with self._lock:
            self.outcomes[outcome] += 1
            if outcome == "ok":
                self._acknowledged.update(planned.value["ids"] if planned.f == "campaign"
                                          else (planned.value,))
