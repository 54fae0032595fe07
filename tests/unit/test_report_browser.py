"""report.html and index.html opened in headless Chromium with every network request refused:
every plot drawn with the run's number of points and bars, the fault windows shaded at their
recorded times, no console message; screenshots of both pages are left in the report root.

Needs Debian's `chromium` (scripts/setup installs it). Without it these tests skip with the
reason, except under CI=true, where they fail: the pages must have been seen drawn."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reports.redraw import redraw
from tests import report_runs as R
from tests.browser import console, probe, screenshot


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    R.write_run(root / "run1")
    R.write_search(root, [("generated-aa", None, [{"at": 0, "fault": "kill", "targets": ["w1"],
                                                   "duration": 5}])])
    redraw(root)
    return root


@pytest.fixture(scope="module")
def drawn(root, tmp_path_factory) -> tuple[dict, subprocess.CompletedProcess]:
    return probe(root / "run1" / "report.html", tmp_path_factory.mktemp("probe"))


def test_every_plot_is_drawn_with_its_points(drawn):
    found, _ = drawn
    assert set(found) == {"timeline", "request-rate", "delivery-rate", "backlog", "latency-raw",
                          "latency-quantiles"}
    assert found["timeline"]["bars"] == len(R.WINDOWS)
    assert found["latency-raw"]["markers"] == 97        # every accepted, delivered message
    assert found["latency-quantiles"]["markers"] == 4 * 10   # p50..max over 10 bins
    assert found["request-rate"]["lines"] == 3
    for fig_id in ("delivery-rate", "backlog"):
        assert found[fig_id]["lines"] == 1, fig_id


def test_fault_windows_are_shaded_at_their_recorded_times(drawn):
    found, _ = drawn
    expected = [(2.0, 5.2), (7.0, 10.5)]
    for fig_id in ("request-rate", "delivery-rate", "backlog", "latency-raw", "latency-quantiles"):
        shapes = found[fig_id]["shapes"]
        assert len(shapes) == len(expected), fig_id
        for (x0, x1), (t0, t1) in zip(shapes, expected):
            assert x0 == pytest.approx(t0, abs=0.05) and x1 == pytest.approx(t1, abs=0.05), fig_id


def test_the_run_page_logs_nothing_on_its_console(drawn):
    _, result = drawn
    assert console(result.stderr) == []


def test_both_pages_screenshot_without_console_messages(root, tmp_path):
    for page, shot in ((root / "run1" / "report.html", root / "run1" / "report.png"),
                       (root / "index.html", root / "index.png")):
        result = screenshot(page, shot, profile=tmp_path / shot.stem)
        assert console(result.stderr) == [], page
    if target := os.environ.get("CHAOS_SCREENSHOTS"):   # keep them to look at
        Path(target).mkdir(parents=True, exist_ok=True)
        for shot in (root / "run1" / "report.png", root / "index.png"):
            shutil.copy(shot, Path(target) / shot.name)
