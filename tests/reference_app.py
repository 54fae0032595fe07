"""The reference dispatch app's modules, for the tests that call its code on the host: it is package
data beside the shipped stack files (stack/stacks/dispatch), not a package of the harness."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from stack.model import STACKS_DIR

APP_DIR = STACKS_DIR / "dispatch"


def import_app(module: str) -> ModuleType:
    """`dispatch.<module>`, with the shipped stacks' folder on sys.path (as the stack file's python
    steps find it)."""
    if str(STACKS_DIR) not in sys.path:
        sys.path.append(str(STACKS_DIR))
    return importlib.import_module(f"dispatch.{module}")
