"""reset_peer: once data arrives, wait `timeout` ms, then reset both sockets (RST via SO_LINGER 0)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Chunk, Emit, Toxic, ToxicStub, register


@register
@dataclass(frozen=True)
class ResetPeer(Toxic):
    """Data that arrives meanwhile is dropped with the connection. Removed before the reset: data passes."""

    type_name: ClassVar[str] = "reset_peer"
    timeout: int = 0

    async def pipe(self, stub: ToxicStub, chunk: Chunk, emit: Emit) -> None:
        started = stub.now()
        while True:
            timeout_s = getattr(stub.toxic, "timeout", 0) / 1000  # stub.toxic: this toxic, maybe updated
            if await stub.sleep(started + timeout_s - stub.now()):
                stub.control.reset_connection(f"reset_peer toxic after {round(timeout_s * 1000)} ms")
                return
            if not (stub.attached and stub.applies):
                await emit(chunk)
                return
            # updated: wait again with the new timeout, still counted from the first data
