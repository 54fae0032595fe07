"""The reference dispatch app is a user of the harness, not part of it: it imports nothing of `harness`,
`faults` or `stack` (its image carries none of them), and the one contract it shares with the workload (campaign message ids) is checked here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.reference_app import APP_DIR as SERVICES, import_app


@pytest.mark.parametrize("module", sorted(p.name for p in SERVICES.glob("*.py")))
def test_the_app_imports_nothing_of_the_harness(module):
    tree = ast.parse((SERVICES / module).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {name for name in imported if name.split(".")[0] in ("harness", "faults", "stack")}


@pytest.mark.parametrize("cid, recipient", [("camp-1", "+33600000001"), ("c.2_x", "user@example.test")])
def test_campaign_ids_are_the_ones_the_workload_expects(cid, recipient):
    from harness.history import campaign_message_id as expected
    campaign_message_id = import_app("scheduler").campaign_message_id

    assert campaign_message_id(cid, recipient) == expected(cid, recipient)
