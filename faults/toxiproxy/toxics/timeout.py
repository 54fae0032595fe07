"""timeout: drop all data and close the connection after `timeout` ms (0: never close, a black hole)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Chunk, Emit, Toxic, ToxicStub, register


@register
@dataclass(frozen=True)
class Timeout(Toxic):
    """Removing the toxic closes the connections it held, as Toxiproxy's Cleanup does: bytes were dropped,
    so the stream would be corrupt if it went on. New connections then pass normally."""

    type_name: ClassVar[str] = "timeout"
    timeout: int = 0

    def on_attach(self, stub: ToxicStub) -> None:
        self._arm(stub)

    def on_update(self, stub: ToxicStub, old: Toxic) -> None:
        stub.cancel_timers()
        self._arm(stub)

    def on_detach(self, stub: ToxicStub) -> None:
        stub.control.close_connection("timeout toxic removed")

    def _arm(self, stub: ToxicStub) -> None:
        if self.timeout > 0:
            why = f"timeout toxic: {self.timeout} ms passed"
            stub.call_later(self.timeout / 1000, lambda: stub.control.close_connection(why))

    async def pipe(self, stub: ToxicStub, chunk: Chunk, emit: Emit) -> None:
        if chunk.eof:
            await emit(chunk)
        # data is dropped on the floor
