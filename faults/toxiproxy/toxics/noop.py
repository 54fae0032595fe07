"""noop: passes every byte unchanged; Toxiproxy has it (its chains start with one), and clients may add it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Toxic, register


@register
@dataclass(frozen=True)
class Noop(Toxic):
    """No attributes; `Toxic.pipe` already passes each chunk on."""

    type_name: ClassVar[str] = "noop"
