"""The observer: reads the provider sink's deliveries (and the parked messages it is told of)
into the history, and drains: waits, with a deadline, until every acknowledged id is settled."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import requests

from harness.errors import HarnessError
from harness.history import HistoryWriter


class DeliveryObserver:
    """Incremental reader of `GET {sink}/deliveries?offset=N&limit=M`, writing deliver ops."""

    def __init__(self, sink_url: str, writer: HistoryWriter, *, page: int = 1000,
                 timeout_s: float = 5.0, process: str = "sink") -> None:
        self.sink_url = sink_url.rstrip("/")
        self.writer = writer
        self.page, self.timeout_s, self.process = page, timeout_s, process
        self.offset = 0
        self._delivered: set[str] = set()
        self._parked: set[str] = set()
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._stop = threading.Event()      # stops the background follower
        self._closing = threading.Event()   # cuts a drain's waits short
        self._follower: threading.Thread | None = None
        self.last_error: HarnessError | None = None

    @property
    def delivered(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._delivered)

    def poll(self) -> int:
        """Read every delivery the sink has added since the last poll; returns how many."""
        with self._lock:
            new = 0
            while True:
                deliveries, next_offset = self._fetch(self.offset)
                for d in deliveries:
                    self.writer.record(
                        self.process, "ok", "deliver",
                        {"id": d["id"], "worker": d.get("worker"), "attempt": d.get("attempt", 1)},
                        time=self.writer.to_monotonic(d["ts"]), wall=d["ts"])
                    self._delivered.add(d["id"])
                new += len(deliveries)
                self.offset = next_offset
                if len(deliveries) < self.page:
                    return new

    def _fetch(self, offset: int) -> tuple[list[dict], int]:
        url = f"{self.sink_url}/deliveries"
        try:
            response = self._session.get(url, params={"offset": offset, "limit": self.page},
                                         timeout=self.timeout_s)
            response.raise_for_status()
            body = response.json()
        except requests.RequestException as e:
            raise HarnessError(f"cannot read deliveries from the sink at {url}: {e}") from None
        except ValueError:
            raise HarnessError(f"the sink at {url} did not answer JSON") from None
        deliveries, next_offset = body.get("deliveries"), body.get("next")
        if (not isinstance(deliveries, list) or type(next_offset) is not int
                or not all(isinstance(d, dict) and isinstance(d.get("id"), str)
                           and isinstance(d.get("ts"), (int, float)) for d in deliveries)):
            raise HarnessError(f"the sink at {url} answered without "
                               '{"deliveries": [{"id", "worker", "attempt", "ts"}...], "next": N}')
        return deliveries, next_offset

    def record_parked(self, ids: Iterable[str]) -> int:
        """Write a park op for each id not yet recorded as parked; returns how many."""
        with self._lock:
            new = [m for m in dict.fromkeys(ids) if m not in self._parked]
            for m in new:
                self.writer.record("dlq", "ok", "park", m)
            self._parked.update(new)
            return len(new)

    # --- following the sink during the run --------------------------------------------------

    def start(self, interval_s: float = 1.0) -> DeliveryObserver:
        """Poll in the background (so the history grows while the run goes on)."""
        self._stop.clear()
        self._follower = threading.Thread(target=self._follow, args=(interval_s,),
                                          name="delivery-observer", daemon=True)
        self._follower.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._follower is not None:
            self._follower.join()
            self._follower = None

    def _follow(self, interval_s: float) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
                self.last_error = None
            except HarnessError as e:
                self.last_error = e  # the sink may be down on purpose; drain decides
            self._stop.wait(interval_s)

    # --- drain -------------------------------------------------------------------------------

    def drain(self, expected: Iterable[str] | Callable[[], Iterable[str]], deadline_s: float,
              *, interval_s: float = 0.25) -> frozenset[str]:
        """Wait until every expected id is delivered or parked, or `deadline_s` passes.

        Records drain invoke, then drain ok after the last successful read of the sink
        (drain info if the sink could not be read at the end). Returns the ids still missing.
        """
        expected_ids = frozenset(expected() if callable(expected) else expected)
        self.writer.record("harness", "invoke", "drain", {"expected": len(expected_ids)})
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                self.poll()
                error = None
            except HarnessError as e:
                error = e
            with self._lock:
                missing = expected_ids - self._delivered - self._parked
            remaining = deadline - time.monotonic()
            if (error is None and not missing) or remaining <= 0:
                break
            self._closing.wait(min(interval_s, remaining))
        if error is None:
            self.writer.record("harness", "ok", "drain",
                               {"expected": len(expected_ids), "missing": len(missing)})
        else:
            self.writer.record("harness", "info", "drain", {"error": str(error)})
        return frozenset(missing)

    def close(self) -> None:
        self._closing.set()
        self.stop()
        self._session.close()
