"""Headless Chromium for the report tests: open a page with every network request refused, read
what Plotly drew (the probe), its console, and take screenshots.

Needs Debian's `chromium` (scripts/setup installs it). Without it a test skips with the reason,
except under CI=true, where it fails: the pages must have been seen drawn."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

# Wide enough for plots read to a fraction of a second, tall enough for a whole report page.
WINDOW = "1280,4200"
BROWSER = next((b for b in (shutil.which(n) for n in ("chromium", "chromium-browser")) if b), None)

# Appended to a copy of the page: once Plotly has drawn, measure what is on screen: the markers,
# bars and lines drawn, how many points each trace was computed with (a line's bins), and each
# shaded band's left and right edges turned back into run seconds through the plot area's pixels
# and the x axis' range.
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
      points: (gd.calcdata || []).map(trace => trace.length),
      width: area.width,
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


def browse(*args: str, profile: Path) -> subprocess.CompletedProcess:
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


def console(stderr: str) -> list[str]:
    """What the page said on its console (errors, failed loads, logs alike)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def probe(page: Path, work: Path) -> tuple[dict, subprocess.CompletedProcess]:
    """What Plotly drew on `page` (by figure id, see PROBE), read from a copy of it in `work`
    (the page is self-contained: Plotly's JS and the data are inlined)."""
    probed = work / "probe.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
                      encoding="utf-8")
    result = browse("--dump-dom", f"--window-size={WINDOW}", probed.resolve().as_uri(), profile=work / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r"<pre id=\"probe\">(.*?)</pre>", result.stdout, re.S)
    assert found and found.group(1), "the probe found no plot drawn"
    return json.loads(found.group(1)), result


def screenshot(page: Path, shot: Path, profile: Path) -> subprocess.CompletedProcess:
    """A full-length PNG of `page`; the run's console is in the result's stderr (see `console`)."""
    result = browse(f"--screenshot={shot.resolve()}", f"--window-size={WINDOW}", page.resolve().as_uri(), profile=profile)
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 10_000, shot     # a blank page compresses to far less
    return result
