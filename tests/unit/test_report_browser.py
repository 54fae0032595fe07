"""report.html and index.html opened in headless Chromium with every network request refused:
every plot drawn with the run's number of points and bars, the fault windows shaded at their
recorded times, no console message; screenshots of both pages are left in the report root.

Needs Debian's `chromium` (scripts/setup installs it). Without it these tests skip with the
reason, except under CI=true, where they fail: the pages must have been seen drawn."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reports.redraw import redraw
from tests import report_runs as R

BROWSER = next((b for b in (shutil.which(n) for n in ("chromium", "chromium-browser")) if b), None)

# Appended to a copy of the page: once Plotly has drawn, measure what is on screen: the markers
# and bars drawn, and each shaded band's left and right edges turned back into run seconds
# through the plot area's pixels and the x axis' range.
PROBE = """
<pre id='probe'></pre>
<script>
window.addEventListener('load', () => setTimeout(() => {
  const out = {};
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const area = gd.querySelector('.nsewdrag').getBoundingClientRect();
    const [r0, r1] = gd._fullLayout.xaxis.range;
    const seconds = px => r0 + (px - area.left) / area.width * (r1 - r0);
    out[gd.id] = {
      markers: gd.querySelectorAll('.scatterlayer path.point').length,
      bars: gd.querySelectorAll('.barlayer .point').length,
      lines: gd.querySelectorAll('.scatterlayer path.js-line').length,
      shapes: [...gd.querySelectorAll('.shapelayer path')].map(p => {
        const b = p.getBoundingClientRect();
        return [seconds(b.left), seconds(b.right)];
      }),
    };
  }
  document.getElementById('probe').textContent = JSON.stringify(out);
}, 300));
</script>
"""


def _browser(*args: str, profile: Path) -> subprocess.CompletedProcess:
    if BROWSER is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is not installed (scripts/setup installs it), and CI=true "
                        "forbids skipping the browser tests", pytrace=False)
        pytest.skip("chromium is not installed (scripts/setup installs it)")
    return subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
         f"--user-data-dir={profile}", "--virtual-time-budget=20000", *args],
        capture_output=True, text=True, timeout=180)


def _console(stderr: str) -> list[str]:
    """What the page said on its console (errors, failed loads, logs alike)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


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
    page = (root / "run1" / "report.html").read_text(encoding="utf-8")
    probed = root / "run1" / "probe.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    result = _browser("--dump-dom", probed.as_uri(), profile=tmp_path_factory.mktemp("profile"))
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r"<pre id=\"probe\">(.*?)</pre>", result.stdout, re.S)
    assert found and found.group(1), "the probe found no plot drawn"
    return json.loads(found.group(1)), result


def test_every_plot_is_drawn_with_its_points(drawn):
    probe, _ = drawn
    assert set(probe) == {"timeline", "request-rate", "delivery-rate", "backlog", "latency-raw",
                          "latency-quantiles"}
    assert probe["timeline"]["bars"] == len(R.WINDOWS)
    assert probe["latency-raw"]["markers"] == 97        # every accepted, delivered message
    assert probe["latency-quantiles"]["markers"] == 4 * 10   # p50..max over 10 bins
    assert probe["request-rate"]["lines"] == 3
    for fig_id in ("delivery-rate", "backlog"):
        assert probe[fig_id]["lines"] == 1, fig_id


def test_fault_windows_are_shaded_at_their_recorded_times(drawn):
    probe, _ = drawn
    expected = [(2.0, 5.2), (7.0, 10.5)]
    for fig_id in ("request-rate", "delivery-rate", "backlog", "latency-raw", "latency-quantiles"):
        shapes = probe[fig_id]["shapes"]
        assert len(shapes) == len(expected), fig_id
        for (x0, x1), (t0, t1) in zip(shapes, expected):
            assert x0 == pytest.approx(t0, abs=0.05) and x1 == pytest.approx(t1, abs=0.05), fig_id


def test_the_run_page_logs_nothing_on_its_console(drawn):
    _, result = drawn
    assert _console(result.stderr) == []


def test_both_pages_screenshot_without_console_messages(root, tmp_path):
    for page, shot in ((root / "run1" / "report.html", root / "run1" / "report.png"),
                       (root / "index.html", root / "index.png")):
        result = _browser(f"--screenshot={shot}", "--window-size=1280,4200", page.as_uri(),
                          profile=tmp_path / shot.stem)
        assert result.returncode == 0, result.stderr[-2000:]
        assert _console(result.stderr) == [], page
        assert shot.stat().st_size > 10_000, shot     # a blank page compresses to far less
    if target := os.environ.get("CHAOS_SCREENSHOTS"):   # keep them to look at
        Path(target).mkdir(parents=True, exist_ok=True)
        for shot in (root / "run1" / "report.png", root / "index.png"):
            shutil.copy(shot, Path(target) / shot.name)
