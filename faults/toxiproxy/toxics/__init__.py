"""The toxic registry: one module per toxic type, each registering itself by its Toxiproxy name."""

from __future__ import annotations

from .base import REGISTRY, BadAttributes, Chunk, Toxic, ToxicStub, register
from . import bandwidth, latency, limit_data, noop, reset_peer, slicer, slow_close, timeout  # noqa: F401

__all__ = ["REGISTRY", "BadAttributes", "Chunk", "Toxic", "ToxicStub", "register", "toxic_type"]


def toxic_type(name: str) -> type[Toxic] | None:
    """The toxic class registered under `name`, or None (the API answers 400 "invalid toxic type")."""
    return REGISTRY.get(name)
