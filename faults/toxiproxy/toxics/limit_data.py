"""limit_data: pass `bytes` bytes on a connection (per direction), then close the connection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Chunk, Emit, Toxic, ToxicStub, register


@dataclass
class _Passed:
    count: int = 0


@register
@dataclass(frozen=True)
class LimitData(Toxic):
    """The count survives updates of the toxic, as in Toxiproxy; it starts when the toxic starts applying."""

    type_name: ClassVar[str] = "limit_data"
    bytes: int = 0

    def new_state(self) -> _Passed:
        return _Passed()

    async def pipe(self, stub: ToxicStub, chunk: Chunk, emit: Emit) -> None:
        if chunk.eof:
            await emit(chunk)
            return
        passed: _Passed = stub.state
        part = chunk.data[: max(self.bytes - passed.count, 0)]
        if part:
            passed.count += len(part)
            await emit(Chunk(part, chunk.read_at))
        if passed.count >= self.bytes:
            stub.control.close_connection(f"limit_data toxic: {self.bytes} bytes passed")
