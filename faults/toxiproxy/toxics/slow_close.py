"""slow_close: hold the end of the stream (the close) back for `delay` ms; data passes unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Chunk, Emit, Toxic, ToxicStub, register


@register
@dataclass(frozen=True)
class SlowClose(Toxic):
    """Removing or updating the toxic lets a held close through at once."""

    type_name: ClassVar[str] = "slow_close"
    delay: int = 0

    async def pipe(self, stub: ToxicStub, chunk: Chunk, emit: Emit) -> None:
        if chunk.eof:
            await stub.sleep(self.delay / 1000)
        await emit(chunk)
