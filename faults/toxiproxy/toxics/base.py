"""What every toxic shares: its attributes as a frozen dataclass, and the per-connection stub it runs on.

A toxic (like Toxiproxy's) is configuration plus a `pipe` coroutine; the `ToxicStub` holds what belongs to
one connection and one direction: the toxic's random stream, its state, and whether it applies at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, ClassVar, Mapping, Protocol


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes read from one socket at `read_at` (loop time, seconds); `eof` marks the end of the stream."""

    data: bytes
    read_at: float
    eof: bool = False


Emit = Callable[[Chunk], Awaitable[None]]


class ConnectionControl(Protocol):
    """What a toxic may do to the connection it sits on."""

    loop: asyncio.AbstractEventLoop

    def close_connection(self, why: str) -> None: ...

    def reset_connection(self, why: str) -> None: ...


REGISTRY: dict[str, type["Toxic"]] = {}


def register(cls: type[Toxic]) -> type[Toxic]:
    """Class decorator: make a toxic type available to the API under its `type_name`."""
    REGISTRY[cls.type_name] = cls
    return cls


class BadAttributes(ValueError):
    """An attribute has the wrong type or value; the API answers 400."""


@dataclass(frozen=True)
class Toxic:
    """Attributes of one toxic type. Subclasses are frozen dataclasses of int fields, registered by name."""

    type_name: ClassVar[str] = ""

    @classmethod
    def from_attributes(cls, attributes: Mapping[str, Any] | None, base: Toxic | None = None) -> Toxic:
        """Build from JSON attributes; fields missing from `attributes` keep `base`'s values (or defaults)."""
        if attributes is not None and not isinstance(attributes, Mapping):
            raise BadAttributes("attributes must be a JSON object")
        values = dataclasses.asdict(base) if base is not None else {}
        known = {f.name for f in dataclasses.fields(cls)}
        for key, value in (attributes or {}).items():
            if key not in known:
                continue  # like Go's json decoder; the API logs these
            values[key] = _as_int(key, value)
        toxic = cls(**values)
        toxic.validate()
        return toxic

    @classmethod
    def unknown_attributes(cls, attributes: Mapping[str, Any] | None) -> list[str]:
        known = {f.name for f in dataclasses.fields(cls)}
        return sorted(k for k in (attributes or {}) if k not in known)

    def attributes(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        for key, value in self.attributes().items():
            if value < 0:
                raise BadAttributes(f"{key} must not be negative, got {value}")

    def new_state(self) -> Any:
        """Per-connection state that survives attribute updates (e.g. bytes already passed)."""
        return None

    def on_attach(self, stub: ToxicStub) -> None:
        """The toxic starts applying to a connection (new connection, or toxic added to a live one)."""

    def on_update(self, stub: ToxicStub, old: Toxic) -> None:
        """The toxic's attributes changed while it applies to a connection."""

    def on_detach(self, stub: ToxicStub) -> None:
        """The toxic was removed while it applied to a connection."""

    async def pipe(self, stub: ToxicStub, chunk: Chunk, emit: Emit) -> None:
        """Pass one chunk on (or not); the default passes everything unchanged."""
        await emit(chunk)


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadAttributes(f"{key} must be a number, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise BadAttributes(f"{key} must be a whole number, got {value!r}")
    return int(value)


class ToxicStub:
    """One toxic on one connection and direction: its random stream, state, timers and interruptible sleeps."""

    def __init__(self, toxic: Toxic, toxicity: float, rng: random.Random, control: ConnectionControl) -> None:
        self.toxic = toxic
        self.rng = rng
        self.control = control
        self.state = toxic.new_state()
        self.applies = rng.random() < toxicity
        self.attached = True
        self._sleepers: set[asyncio.Future[bool]] = set()
        self._timers: set[asyncio.TimerHandle] = set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.control.loop

    def now(self) -> float:
        return self.control.loop.time()

    async def sleep(self, seconds: float) -> bool:
        """Sleep; True if the full time passed, False if the toxic was updated or removed meanwhile."""
        if seconds <= 0:
            return True
        waiter: asyncio.Future[bool] = self.loop.create_future()
        timer = self.loop.call_later(seconds, _resolve, waiter, True)
        self._sleepers.add(waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._sleepers.discard(waiter)

    def call_later(self, seconds: float, callback: Callable[[], None]) -> None:
        """Run `callback` later unless the toxic is removed or updated first (see `cancel_timers`)."""

        def fire() -> None:
            self._timers.discard(handle)
            callback()

        handle = self.loop.call_later(seconds, fire)
        self._timers.add(handle)

    def cancel_timers(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    def interrupt(self) -> None:
        for waiter in list(self._sleepers):
            _resolve(waiter, False)

    def update(self, toxic: Toxic, toxicity: float, old_toxicity: float) -> None:
        old = self.toxic
        self.toxic = toxic
        was_applying = self.applies
        if toxicity != old_toxicity:
            self.applies = self.rng.random() < toxicity
        self.interrupt()
        if was_applying and not self.applies:
            self.cancel_timers()
            old.on_detach(self)
        elif self.applies and not was_applying:
            toxic.on_attach(self)
        elif self.applies:
            toxic.on_update(self, old)

    def attach(self) -> None:
        if self.applies:
            self.toxic.on_attach(self)

    def detach_quietly(self) -> None:
        """The connection is going away: stop timers and sleeps without the toxic's removal behaviour."""
        self.attached = False
        self.interrupt()
        self.cancel_timers()

    def detach(self) -> None:
        if not self.attached:
            return
        self.attached = False
        self.interrupt()
        self.cancel_timers()
        if self.applies:
            self.toxic.on_detach(self)


def _resolve(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)
