"""The proxy's optional compiled data path, `_pump` (built from faults/pump by scripts/build-native).

Opt-in while it is being proven: with CHAOS_PROXY_NATIVE=1 and the module built, a proxy without toxics
has its connections accepted, dialled and pumped by `_pump`'s native thread; the first toxic hands them
back to Python's links. Otherwise, or when the module is missing, everything runs in Python (same API,
same behaviour on the wire).
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

log = logging.getLogger("toxiproxy")

ENV = "CHAOS_PROXY_NATIVE"
_loaded: list[ModuleType | None] = []


def native() -> ModuleType | None:
    """The compiled module when opted in and built, else None (looked up once)."""
    if not _loaded:
        module = None
        if os.environ.get(ENV, "") not in ("", "0"):
            try:
                from . import _pump as module  # type: ignore[attr-defined, no-redef]
            except ImportError as exc:
                log.warning("%s is set but the compiled data path is not built (%s); pumping in Python. "
                            "Build it with scripts/build-native.", ENV, exc)
                module = None
        _loaded.append(module)
    return _loaded[0]
