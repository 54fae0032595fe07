"""The compiled history scanner (harness/native, built by scripts/build-native) in tests: its
tests skip where it is not built, unless HARNESS_REQUIRE_NATIVE=1 (as in CI), where a missing
build fails them instead of hiding them."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from harness import history as history_module
from harness.errors import HarnessError


def require_native() -> None:
    if history_module._native is not None:
        return
    if os.environ.get("HARNESS_REQUIRE_NATIVE") == "1":
        pytest.fail("the compiled history scanner is not built (run scripts/build-native); "
                    "HARNESS_REQUIRE_NATIVE=1 requires it")
    pytest.skip("the compiled history scanner is not built (scripts/build-native)")


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
