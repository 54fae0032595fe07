"""The compiled history scanner (harness/native, built by scripts/build-native) in tests: its
tests skip where it is not built, unless HARNESS_REQUIRE_NATIVE=1 (as in CI), where a missing
build fails them instead of hiding them."""

from __future__ import annotations

import os

import pytest

from harness import history as history_module


def require_native() -> None:
    if history_module._native is not None:
        return
    if os.environ.get("HARNESS_REQUIRE_NATIVE") == "1":
        pytest.fail("the compiled history scanner is not built (run scripts/build-native); "
                    "HARNESS_REQUIRE_NATIVE=1 requires it")
    pytest.skip("the compiled history scanner is not built (scripts/build-native)")
