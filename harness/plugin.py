"""The pytest plugin: a thin translation between pytest and the harness library (grows with the catalog).

Tests marked `chaos` need Docker. Without Docker they are skipped with the reason, except under
CI=true, where a missing Docker is an error: the chaos suite must never pass by not running.
"""

from __future__ import annotations

import os

import pytest

_docker_problem: list[str | None] = []


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "chaos: needs Docker and brings up the dispatch stack")


def _docker_unavailable() -> str | None:
    if not _docker_problem:
        from harness.errors import HarnessError
        from stack.docker_api import docker_client

        try:
            docker_client(timeout=10)
            _docker_problem.append(None)
        except HarnessError as exc:
            _docker_problem.append(str(exc))
    return _docker_problem[0]


def pytest_runtest_setup(item) -> None:
    if item.get_closest_marker("chaos") is None:
        return
    problem = _docker_unavailable()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"chaos test needs Docker, and CI=true forbids skipping it: {problem}", pytrace=False)
    pytest.skip(f"Docker unavailable: {problem}")
