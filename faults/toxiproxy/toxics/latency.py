"""latency: delay each chunk by `latency` ± `jitter` ms, counted from when the proxy read it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from .base import Chunk, Emit, Toxic, ToxicStub, register


@register
@dataclass(frozen=True)
class Latency(Toxic):
    """Like Toxiproxy: chunks queued behind a delayed one do not add up; jitter is uniform in [-jitter, jitter).

    The chunk leaves stamped with the time it was due, so the next latency toxic in the chain counts its own
    delay from there: two 100 ms toxics make 200 ms, as Toxiproxy's `c.Timestamp.Add(sleep)` does. Unlike
    Go's stamp, ours never moves back when the chunk was late (a chunk that queued behind another, or one
    passing a 0 ms latency), so a later toxic still adds its full delay."""

    type_name: ClassVar[str] = "latency"
    latency: int = 0
    jitter: int = 0

    def delay_ms(self, rng: random.Random) -> int:
        if self.jitter > 0:
            return self.latency + rng.randrange(-self.jitter, self.jitter)
        return self.latency

    async def pipe(self, stub: ToxicStub, chunk: Chunk, emit: Emit) -> None:
        if chunk.eof:
            await emit(chunk)
            return
        due = chunk.read_at + self.delay_ms(stub.rng) / 1000
        # An update or removal interrupts the sleep and the chunk goes on at once (Toxiproxy does the same).
        slept = await stub.sleep(due - stub.now())
        await emit(Chunk(chunk.data, due if slept else stub.now()))
