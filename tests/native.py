"""The compiled modules (built by scripts/build-native) in tests: a test that needs one skips where it is
not built, unless HARNESS_REQUIRE_NATIVE=1 (as in CI), where a missing build fails it instead of hiding it.
Also the history scanner's (harness/native) helpers."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NoReturn

import pytest

from harness import history as history_module
from harness.errors import HarnessError


def required() -> bool:
    """Whether this run requires the compiled modules and what builds them (CI does)."""
    return os.environ.get("HARNESS_REQUIRE_NATIVE") == "1"


def unavailable(what: str) -> NoReturn:
    """Skip the test for want of `what`, or fail it where the compiled modules are required."""
    if required():
        pytest.fail(f"{what}; HARNESS_REQUIRE_NATIVE=1 requires it")
    pytest.skip(what)


def require_native() -> None:
    if history_module._native is None:
        unavailable("the compiled history scanner is not built (scripts/build-native)")


def both_ways(read: Callable[[], Any], block: int = history_module._NATIVE_BLOCK) -> list[Any]:
    """[read() through the compiled scanner, reading `block` bytes at a time (small blocks cut
    lines across blocks and threads), read() with the scanner off]: each what it returned, or
    the text of the HarnessError it raised."""
    outcomes = []
    for native in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(history_module, "_NATIVE_BLOCK", block)
            if not native:
                mp.setattr(history_module, "_native", None)
            try:
                outcomes.append(read())
            except HarnessError as e:
                outcomes.append(str(e))
    return outcomes
