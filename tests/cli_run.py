"""Running the `chaos-harness` CLI as a user would, for tests of its messages and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def single_error_line(result: subprocess.CompletedProcess) -> str:
    """The one error line of a failed command; fails the test if there is a traceback or more."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = [l for l in result.stderr.splitlines() if not l.startswith("[")]  # progress lines
    assert len(lines) == 1 and lines[0].startswith("chaos-harness: error: "), result.stderr
    return lines[0]
