"""report.html drawn from a small synthetic run with known numbers: every plot with its points,
the fault windows shaded at their recorded times, the offenders, the replay command."""

from __future__ import annotations

import re

import pytest

from harness.history import Op
from reports.html import figure_blocks, run_page, write_run_report
from reports.run import load_run
from reports.series import MAX_POINTS, SLOWEST_KEPT, run_series
from tests import report_runs as R


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> str:
    run_dir = R.write_run(tmp_path_factory.mktemp("reports") / "run1")
    return write_run_report(run_dir).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def figures(page):
    return figure_blocks(page)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_every_plot_is_there_once_with_plotly_inlined_once(page, figures):
    assert set(figures) == {"timeline", "request-rate", "delivery-rate", "backlog",
                            "latency-raw", "latency-quantiles"}
    for fig_id in figures:
        assert page.count(f"id='{fig_id}'") == 1
    assert page.count("<script>") == 2          # plotly.js, then the loop that draws
    assert "cdn" not in page.split("<script>")[0].lower()   # no link to any outside script
    assert "src=" not in re.sub(r"<script>.*?</script>", "", page, flags=re.S)


def test_request_rate_by_outcome_per_one_second_bin(figures):
    traces = {t["name"]: t for t in figures["request-rate"]["data"]}
    assert set(traces) == {"accepted", "refused", "unknown"}
    assert all(len(t["x"]) == 11 for t in traces.values())   # 10.5 s of history, 1 s bins
    assert traces["accepted"]["y"] == [10, 8] + [10] * 8 + [0]
    assert traces["refused"]["y"][1] == 1 and sum(traces["refused"]["y"]) == 1
    assert traces["unknown"]["y"][1] == 1 and sum(traces["unknown"]["y"]) == 1


def test_deliveries_backlog_and_latency_points(figures):
    deliveries = figures["delivery-rate"]["data"][0]["y"]
    assert sum(deliveries) == 97 + 1            # 97 messages delivered, one of them twice
    backlog = figures["backlog"]["data"][0]["y"]
    assert backlog[:3] == [0, 0, 0] and backlog[3:] == [1] * 8   # the lost one, from 3 s on
    raw = figures["latency-raw"]["data"][0]
    assert len(raw["x"]) == len(raw["y"]) == 97
    assert max(raw["y"]) == pytest.approx(0.04)
    quantiles = {t["name"]: t for t in figures["latency-quantiles"]["data"]}
    assert set(quantiles) == {"p50", "p95", "p99", "max"}
    assert len(quantiles["p50"]["x"]) == 10     # bins holding an accepted, delivered message


def test_fault_windows_shaded_at_their_recorded_times(figures):
    for fig_id in ("request-rate", "delivery-rate", "backlog", "latency-raw", "latency-quantiles"):
        spans = [(s["x0"], s["x1"]) for s in figures[fig_id]["layout"]["shapes"]]
        assert spans == [(2.0, 5.2), (7.0, 10.5)], fig_id   # the open one runs to the last op
    bars = {t["name"]: t for t in figures["timeline"]["data"]}
    assert bars["kill"]["base"] == [2.0] and bars["kill"]["x"] == [pytest.approx(3.2)]
    assert bars["kill"]["y"] == ["step 1 kill → worker1"]       # whom it hit, from coverage
    assert bars["partition"]["y"] == ["step 2 partition → rmq1, rmq2 (never healed)"]


def test_verdict_invariants_and_offenders(page):
    text = _text(page)
    assert "INVALID" in text
    invariants = _text(page.split("id='invariants'")[1].split("</table>")[0])
    assert "lost invalid" in invariants and "duplicated invalid" in invariants
    assert "acknowledged 98" in invariants
    lost = _text(page.split("data-invariant='lost'")[1].split("</table>")[0])
    assert "m030 3.000 3.010 never delivered" in lost
    assert "step 1 kill → worker1 [2.00s..5.20s]" in lost
    assert "[7.00s..10.50s, never healed]" in lost
    dup = _text(page.split("data-invariant='duplicated'")[1].split("</table>")[0])
    assert "m040 4.000 4.010 w0 #1 at 4.050 w1 #2 at 5.000" in dup


def test_replay_command_and_links(page, tmp_path_factory):
    replay = re.search(r"<pre id='replay'>(.*?)</pre>", page).group(1)
    assert replay.startswith("chaos-harness replay ") and replay.endswith("run1/scenario.json")
    for name in ("history.jsonl", "schedule.json", "verdict.json"):
        assert f"<a href='{name}'>" in page


def test_late_offenders_show_their_one_delivery_from_the_history(tmp_path):
    ops = [Op("c", "invoke", "send", "slow", R.T0, 0.0), Op("c", "ok", "send", "slow", R.T0 + 1, 0.0),
           Op("sink", "ok", "deliver", {"id": "slow", "worker": "w7", "attempt": 3},
              R.T0 + 40 * R.NS, 40.0),
           Op("harness", "invoke", "drain", None, R.T0 + 41 * R.NS, 41.0),
           Op("harness", "ok", "drain", None, R.T0 + 42 * R.NS, 42.0)]
    R.write_run(tmp_path / "late", ops)
    page = run_page(load_run(tmp_path / "late"))
    late = _text(page.split("data-invariant='late'")[1].split("</table>")[0])
    assert "slow 0.000 0.000 w7 #3 at 40.000" in late


def test_many_latency_points_are_thinned_and_the_page_says_so(tmp_path):
    n = MAX_POINTS * 3
    ops = []
    for i in range(n):
        t = R.T0 + i * 1_000_000
        ops += [Op("c", "invoke", "send", f"x{i}", t, 0.0), Op("c", "ok", "send", f"x{i}", t + 10, 0.0),
                Op("sink", "ok", "deliver", {"id": f"x{i}", "worker": "w", "attempt": 1},
                   t + 1000 + (5 * R.NS if i == 12345 else i), 0.0)]
    R.write_run(tmp_path / "big", ops)
    run = load_run(tmp_path / "big")
    series = run_series(run.facts)
    assert series.latency_total == n
    assert MAX_POINTS - SLOWEST_KEPT <= len(series.latency.x) <= MAX_POINTS
    assert max(series.latency.y) == pytest.approx(5.0, abs=1e-3)   # the outlier survives
    page = run_page(run)
    assert f"of {n:,} points" in _text(page.split("id='thinning'")[1].split("</p>")[0])


def test_a_step_missing_from_the_coverage_is_drawn_as_taking_no_effect(tmp_path):
    import json

    run_dir = R.write_run(tmp_path / "missed")
    coverage = json.loads((run_dir / "coverage.json").read_text())
    (run_dir / "coverage.json").write_text(json.dumps(coverage[:1]))   # step 2 hit nothing
    page = run_page(load_run(run_dir))
    bars = {t["name"]: t for t in figure_blocks(page)["timeline"]["data"]}
    assert bars["kill"]["y"] == ["step 1 kill → worker1"]
    assert bars["partition"]["y"] == ["step 2 partition (no effect) (never healed)"]
    windows = _text(page.split("id='windows'")[1].split("</table>")[0])
    assert "2 partition nothing: took no effect (asked for rabbitmq)" in windows


def test_without_coverage_the_requested_targets_are_shown_as_such(tmp_path):
    run_dir = R.write_run(tmp_path / "old")
    (run_dir / "coverage.json").unlink()
    windows = _text(run_page(load_run(run_dir)).split("id='windows'")[1].split("</table>")[0])
    assert "1 kill workers (asked; no coverage recorded)" in windows
