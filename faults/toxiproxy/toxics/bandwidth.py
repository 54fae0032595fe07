"""bandwidth: pass data at no more than `rate` KB/s (1 KB = 1000 bytes, as in Toxiproxy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Chunk, Emit, Toxic, ToxicStub, register


@dataclass
class _Pace:
    next_free: float = 0.0  # loop time when the link may send again


@register
@dataclass(frozen=True)
class Bandwidth(Toxic):
    """Sends in pieces of at most 100 ms worth of data, each when its turn comes; rate 0 means unlimited."""

    type_name: ClassVar[str] = "bandwidth"
    rate: int = 0

    def new_state(self) -> _Pace:
        return _Pace()

    async def pipe(self, stub: ToxicStub, chunk: Chunk, emit: Emit) -> None:
        if chunk.eof or self.rate <= 0:
            await emit(chunk)
            return
        pace: _Pace = stub.state
        per_second = self.rate * 1000
        piece = max(1, self.rate * 100)
        data = chunk.data
        for start in range(0, len(data), piece):
            part = data[start : start + piece]
            pace.next_free = max(pace.next_free, stub.now()) + len(part) / per_second
            if not await stub.sleep(pace.next_free - stub.now()):
                # Updated or removed: don't drop data, send the rest now; the next chunk sees the new rate.
                pace.next_free = stub.now()
                await emit(Chunk(data[start:], chunk.read_at))
                return
            await emit(Chunk(part, chunk.read_at))
