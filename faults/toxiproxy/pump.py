"""The proxy's compiled data path, `_pump` (built from faults/pump by scripts/build-native into
`_pump.abi3.so`, and carried by the proxy image).

When the module is built, a proxy without toxics has its connections accepted, dialled and pumped by
`_pump`'s native thread; the first toxic hands them back to Python's links. CHAOS_PROXY_NATIVE=0 turns it
off; without the module everything runs in Python (same API, same behaviour on the wire).
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

log = logging.getLogger("toxiproxy")

ENV = "CHAOS_PROXY_NATIVE"
_loaded: list[ModuleType | None] = []


def wanted() -> bool:
    """Whether the compiled data path is to be used when built: yes unless CHAOS_PROXY_NATIVE=0."""
    return os.environ.get(ENV, "").strip() != "0"


def native() -> ModuleType | None:
    """The compiled module when built and not turned off, else None (looked up once)."""
    if not _loaded:
        module = None
        if wanted():
            try:
                from . import _pump as module  # type: ignore[attr-defined, no-redef]
            except ModuleNotFoundError as exc:
                # asked for by name: say it is missing; by default, Python's path is simply the fallback
                level = logging.WARNING if os.environ.get(ENV, "").strip() == "1" else logging.DEBUG
                log.log(level, "the compiled data path is not built (%s); pumping in Python. "
                        "Build it with scripts/build-native.", exc)
                module = None
            except ImportError as exc:  # built, but not for this machine (an older glibc, say)
                log.warning("the compiled data path is built but does not load (%s); pumping in Python", exc)
                module = None
        _loaded.append(module)
    return _loaded[0]
