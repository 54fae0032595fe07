"""The pytest plugin: a thin translation between pytest and the harness library (grows with the catalog)."""

from __future__ import annotations


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "chaos: needs Docker and brings up the dispatch stack")
