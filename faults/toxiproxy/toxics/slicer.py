"""slicer: cut each chunk into pieces of about `average_size` ± `size_variation` bytes, `delay` µs apart."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from .base import BadAttributes, Chunk, Emit, Toxic, ToxicStub, register

MIN_SLEEP_S = 0.001


@register
@dataclass(frozen=True)
class Slicer(Toxic):
    """Halves a chunk around its middle ± size_variation until the pieces are small enough (Toxiproxy's way)."""

    type_name: ClassVar[str] = "slicer"
    average_size: int = 0
    size_variation: int = 0
    delay: int = 0  # microseconds

    def validate(self) -> None:
        super().validate()
        if self.average_size < 1:
            # Toxiproxy panics on this; refusing is kinder.
            raise BadAttributes("average_size must be at least 1")

    def cuts(self, rng: random.Random, start: int, end: int) -> list[int]:
        """Piece boundaries of [start, end): a sorted list beginning with start and ending with end."""
        if (end - start) - self.average_size <= self.size_variation:
            return [start, end]
        offset = rng.randrange(-self.size_variation, self.size_variation) if self.size_variation else 0
        middle = min(end - 1, max(start + 1, start + (end - start) // 2 + offset))
        return self.cuts(rng, start, middle)[:-1] + self.cuts(rng, middle, end)

    async def pipe(self, stub: ToxicStub, chunk: Chunk, emit: Emit) -> None:
        if chunk.eof:
            await emit(chunk)
            return
        data = chunk.data
        bounds = self.cuts(stub.rng, 0, len(data))
        owed = 0.0  # delay due but not yet slept
        for left, right in zip(bounds, bounds[1:]):
            await emit(Chunk(data[left:right], chunk.read_at))
            if right == len(data):
                return
            owed += self.delay / 1_000_000
            if owed < MIN_SLEEP_S:
                continue
            # The event loop's timers have a resolution of about 1 ms: sleeping 10 µs costs 1 ms. So delays
            # below that are summed and slept in one go; pieces are still written one by one, and the total
            # time is what the delays add up to (Toxiproxy's time.Sleep overshoots short delays likewise).
            slept = await stub.sleep(owed)
            owed = 0.0
            if not slept:
                await emit(Chunk(data[right:], chunk.read_at))
                return
