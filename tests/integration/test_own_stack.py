"""A stack file of one's own on the real runtime: an image the harness does not build must already be
here (nothing can be pulled), and a missing one is refused before any container or network exists."""

from __future__ import annotations

import secrets

import pytest

from harness.errors import HarnessError
from stack.stack import Stack
from tests.integration.test_kill_and_clean import namespace_resources

pytestmark = pytest.mark.chaos

OWN = """\
name: mine
services:
  cache: {x-kind: redis}
  proxy: {x-kind: proxy}
  app:
    image: chaos-test/absent:1
    ports: [9000]
x-chaos:
  links: {app: [cache]}
"""


def test_an_absent_image_is_refused_before_anything_starts(tmp_path, monkeypatch):
    ns = "test-own-" + secrets.token_hex(3)
    monkeypatch.setenv("CHAOS_NAMESPACE", ns)
    path = tmp_path / "mine.yaml"
    path.write_text(OWN)
    with pytest.raises(HarnessError, match=r"app: image 'chaos-test/absent:1' is not present locally"):
        Stack(str(path)).up()
    assert namespace_resources(ns) == ([], [])
