"""A real run's report.html and the report root's index.html, opened in headless Chromium with no
network: a short scenario with two fault windows runs against the session stack, then every plot
must be drawn with the run's own number of points and bins, every fault window shaded at the times
its history recorded, and neither page may log anything on its console. Screenshots of both pages
are left in the report directory (report.png beside report.html, index.png beside index.html).

The expected numbers are read here from the run's history.jsonl and coverage.json with plain json,
not through the report library they check. Chromium is needed, as in tests/unit/test_report_browser.py
(CI=true fails without it)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from harness.scenario import Scenario, WorkloadSpec
from reports.index import write_index
from tests.browser import console, probe, screenshot

pytestmark = pytest.mark.chaos

NS = 1_000_000_000
# Two windows on the workers' broker links, inside ~14 s of light load: a slow link, then a cut.
SCHEDULE = [
    {"at": 3, "fault": "latency", "targets": ["workers:rabbitmq"], "params": {"latency": 200}, "duration": 3},
    {"at": 8, "fault": "link-down", "targets": ["workers:rabbitmq"], "duration": 3},
]
SCENARIO = Scenario(name="report-in-browser", schedule=SCHEDULE,
                    workload=WorkloadSpec(clients=2, rate=20.0, duration_s=14.0), drain_s=30.0)
PLOTS = ("request-rate", "delivery-rate", "backlog", "latency-raw", "latency-quantiles")
# Shaded bands are placed to a fraction of a pixel: allow half a pixel, about 6 ms on a 14 s run
# (a band drawn 10 ms off its recorded time fails).
PIXELS = 0.5


def _expected(run_dir: Path) -> dict:
    """What the pages must show, from the run's own files: bins of 1 s (the run is far shorter than
    the 1200 bins a plot holds), the accepted-and-delivered messages, the fault windows (from an
    inject's invoke to its heal's ok or info)."""
    ops = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines() if line]
    origin = min(op["time"] for op in ops)
    end = max(op["time"] for op in ops)
    acked: dict[str, int] = {}
    delivered: dict[str, int] = {}
    windows: dict[str, list[float]] = {}
    for op in ops:
        t, value = op["time"], op["value"]
        if op["f"] == "send" and op["type"] == "ok":
            acked[value] = t
        elif op["f"] == "campaign" and op["type"] == "ok":
            acked.update({m: t for m in value["ids"]})
        elif op["f"] == "deliver" and op["type"] == "ok":
            delivered[value["id"]] = min(t, delivered.get(value["id"], t))
        elif op["f"] == "fault" and value["action"] == "inject" and op["type"] == "invoke":
            windows[str(value["step"])] = [(t - origin) / NS, (end - origin) / NS]
        elif op["f"] == "fault" and value["action"] == "heal" and op["type"] in ("ok", "info"):
            windows[str(value["step"])][1] = (t - origin) / NS
    measured = acked.keys() & delivered.keys()
    return {"duration_s": (end - origin) / NS, "bins": (end - origin) // NS + 1,
            "measured": len(measured),
            "latency_bins": len({(acked[m] - origin) // NS for m in measured}),
            "windows": [tuple(w) for _step, w in sorted(windows.items())]}


def test_real_run_pages_in_chromium(chaos_run, chaos_report_dir, tmp_path):
    result = chaos_run(SCENARIO)
    assert not result.missed, f"a fault took no effect, so its window means nothing: {result.missed}"
    assert_pages_drawn(result.report_dir, Path(chaos_report_dir), tmp_path)


def assert_pages_drawn(run_dir: Path, root: Path, tmp_path: Path) -> None:
    """The checks, apart from the run, so that they can be tried on a stored run dir too."""
    coverage = json.loads((run_dir / "coverage.json").read_text())
    want = _expected(run_dir)
    assert len(want["windows"]) == len(SCHEDULE) == len(coverage), (want["windows"], coverage)
    assert want["measured"] > 100, f"the workload delivered too little to plot: {want}"

    found, drawn = probe(run_dir / "report.html", tmp_path)
    assert console(drawn.stderr) == [], "report.html logged on its console"
    assert set(found) == {"timeline", *PLOTS}
    assert found["timeline"]["bars"] == len(coverage)
    # every line holds one point per bin of the run; the latency cloud one per measured message
    assert found["request-rate"]["lines"] == 3
    assert found["request-rate"]["points"] == [want["bins"]] * 3
    for fig_id in ("delivery-rate", "backlog"):
        assert found[fig_id]["lines"] == 1, fig_id
        assert found[fig_id]["points"] == [want["bins"]], fig_id
    assert found["latency-raw"]["markers"] == want["measured"]
    assert found["latency-quantiles"]["markers"] == 4 * want["latency_bins"]   # p50, p95, p99, max

    for fig_id in PLOTS:
        tolerance = PIXELS * want["duration_s"] / found[fig_id]["width"]
        shapes = found[fig_id]["shapes"]
        assert len(shapes) == len(want["windows"]), fig_id
        for (x0, x1), (t0, t1) in zip(shapes, want["windows"]):
            assert x0 == pytest.approx(t0, abs=tolerance), (fig_id, shapes, want["windows"])
            assert x1 == pytest.approx(t1, abs=tolerance), (fig_id, shapes, want["windows"])

    # the index as the session draws it at its end, here with this run among the ones so far
    index = write_index(root)
    index_html = index.read_text(encoding="utf-8")
    link = html.escape(run_dir.resolve().relative_to(root.resolve()).as_posix())
    assert f"href='{link}/report.html'" in index_html, "the index has no link to the run's report"
    for page, shot in ((run_dir / "report.html", run_dir / "report.png"), (index, index.with_suffix(".png"))):
        shown = screenshot(page, shot, profile=tmp_path / shot.stem)
        assert console(shown.stderr) == [], f"{page.name} logged on its console"
