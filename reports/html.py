"""`report.html` for one run's report directory: the verdict and its invariants, the fault
timeline, the plots against run time with the fault windows shaded, the offenders of every
violated invariant, and how to replay it. Self-contained: Plotly's JS is inlined once and
each figure is a JSON block, so the page opens from file:// with no network."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any

from harness.checkers.facts import NS, Delivery
from harness.errors import HarnessError
from reports.figures import FIGURES
from reports.run import (COVERAGE, HISTORY, REPORT, RUN_FACTS, SCENARIO, SCHEDULE, VERDICT,
                         StoredRun, load_run, replay_command)
from reports.series import RunSeries, WindowSpan, run_series

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f4f4f4}
.valid{color:#1a7f37;font-weight:bold}.invalid{color:#cf222e;font-weight:bold}
.unknown{color:#9a6700;font-weight:bold}.note{color:#555;font-style:italic}
code,pre{background:#f4f4f4;padding:2px 4px;border-radius:3px}.figure{margin:.5em 0}
"""

#: draws every figure block on load; each block names the div it draws into
RENDER = """
for (const block of document.querySelectorAll('script.plotly-figure')) {
  const fig = JSON.parse(block.textContent);
  Plotly.newPlot(block.dataset.target, fig.data, fig.layout,
                 {responsive: true, displaylogo: false});
}
"""


@lru_cache(maxsize=1)
def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def write_run_report(run_dir: str | Path) -> Path:
    """Draw (or re-draw) `report.html` in a run's report directory from its stored files."""
    run = load_run(run_dir)
    path = run.dir / REPORT
    try:
        path.write_text(run_page(run), encoding="utf-8")
    except OSError as e:
        raise HarnessError(f"cannot write {path}: {e.strerror}") from None
    return path


def run_page(run: StoredRun) -> str:
    series = run_series(run.facts, targets_hit=run.targets_hit())
    v = run.verdict
    parts = [
        f"<h1>{escape(run.name)}: <span class='{v.status}'>{v.status.upper()}</span></h1>",
        f"<p>{v.ops:,} ops over {series.duration_s:.1f}s of history, "
        + ("drained" if v.drained else "<b>no completed drain</b>")
        + f"; judged again from <a href='{HISTORY}'>{HISTORY}</a> when this page was drawn.</p>",
    ]
    if run.stored_status is not None and run.stored_status != v.status:
        parts.append(f"<p class='invalid'>The verdict stored at the end of the run "
                     f"({escape(run.stored_status)}) differs from this one.</p>")
    parts += [_invariants(run), _replay(run), "<h2>Fault timeline</h2>", _windows_table(series),
              _figure("timeline", series), "<h2>Traffic</h2>", _figure("request-rate", series),
              _figure("delivery-rate", series), _figure("backlog", series),
              "<h2>Latency</h2>",
              f"<p>{series.latency_total:,} messages measured.</p>"
              + (f"<p class='note' id='thinning'>{escape(series.thinning)}.</p>"
                 if series.thinning else ""),
              _figure("latency-raw", series), _figure("latency-quantiles", series),
              "<h2>Offenders</h2>", _offenders(run, series.windows)]
    return _page(f"chaos run {run.name}: {v.status}", "\n".join(parts), with_plotly=True)


def _page(title: str, body: str, *, with_plotly: bool) -> str:
    scripts = (f"<script>{plotly_js()}</script>" if with_plotly else "")
    render = f"<script>{RENDER}</script>" if with_plotly else ""
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{escape(title)}</title><style>{STYLE}</style>{scripts}</head>"
            f"<body>\n{body}\n{render}</body></html>\n")


def _figure(fig_id: str, series: RunSeries) -> str:
    fig = FIGURES[fig_id](series)
    data = fig.to_json().replace("</", "<\\/")   # nothing in the JSON may close the script
    return (f"<div class='figure' id='{fig_id}'></div>"
            f"<script type='application/json' class='plotly-figure' data-target='{fig_id}'>"
            f"{data}</script>")


def _invariants(run: StoredRun) -> str:
    rows = []
    for r in run.verdict.results.values():
        counts = ", ".join(f"{k} {v:,}" for k, v in r.counts.items())
        measures = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                             for k, v in r.measures.items() if v is not None)
        rows.append(f"<tr><td>{escape(r.name)}</td><td class='{r.status}'>{r.status}</td>"
                    f"<td>{escape(r.invariant)}</td><td>{escape(counts)}</td>"
                    f"<td>{escape(measures)}</td><td>{escape(r.note)}</td></tr>")
    return ("<h2>Invariants</h2><table id='invariants'><tr><th>checker</th><th>status</th>"
            "<th>invariant</th><th>counts</th><th>measures</th><th>note</th></tr>"
            + "".join(rows) + "</table>")


def _replay(run: StoredRun) -> str:
    files = [name for name in (HISTORY, SCHEDULE, VERDICT, SCENARIO, COVERAGE, RUN_FACTS)
             if (run.dir / name).is_file()]
    links = " · ".join(f"<a href='{n}'>{n}</a>" for n in files)
    if (run.dir / SCENARIO).is_file():
        replay = f"<pre id='replay'>{escape(replay_command(run.dir))}</pre>"
    else:
        replay = f"<p class='note'>no {SCENARIO} here: this run cannot be replayed as is.</p>"
    return f"<h2>Replay</h2>{replay}<p>Files: {links}</p>"


def _windows_table(series: RunSeries) -> str:
    if not series.windows:
        return "<p>No fault was injected in this run.</p>"
    rows = "".join(
        f"<tr><td>{escape(w.step)}</td><td>{escape(w.fault)}</td>"
        f"<td>{_hit(w)}</td><td>{w.start_s:.2f}</td>"
        f"<td>{w.end_s:.2f}{'' if w.healed else ' (never healed)'}</td></tr>"
        for w in series.windows)
    return ("<table id='windows'><tr><th>step</th><th>fault</th><th>hit</th>"
            "<th>from (s)</th><th>to (s)</th></tr>" + rows + "</table>")


def _hit(w: WindowSpan) -> str:
    if w.took_effect is False:
        return "nothing: took no effect" + (f" (asked for {escape(', '.join(w.targets))})"
                                            if w.targets else "")
    return escape(", ".join(w.targets)) + ("" if w.took_effect else " (asked; no coverage recorded)")


def _offenders(run: StoredRun, windows: tuple[WindowSpan, ...]) -> str:
    violated = [r for r in run.verdict.results.values() if r.status == "invalid"]
    if not violated:
        return "<p>No invariant was violated.</p>"
    facts = run.facts
    wanted = {o.id for r in violated for o in r.examples
              if o.id in facts.first_delivery and o.id not in facts.repeated}
    singles = _single_deliveries(run, wanted)
    out = []
    for r in violated:
        shown = len(r.examples)
        out.append(f"<h3 id='offenders-{escape(r.name)}'>{escape(r.name)}: "
                   f"{len(r.ids) or shown:,} offenders"
                   + (f", the first {shown} by send time" if len(r.ids) > shown else "")
                   + f"</h3><p>{escape(r.invariant)}</p>")
        rows = []
        for o in r.examples:
            ds = facts.repeated.get(o.id) or singles.get(o.id, ())
            deliveries = "<br>".join(
                f"{escape(str(d.worker))} #{escape(str(d.attempt))} at {_s(d.time, facts.origin)}"
                for d in ds) or "never delivered"
            around = "<br>".join(
                f"step {escape(w.label)} [{w.start_s:.2f}s..{w.end_s:.2f}s"
                + ("]" if w.healed else ", never healed]")
                for w in windows if w.step in o.windows) or "none"
            rows.append(
                f"<tr class='offender'><td>{escape(o.id)}</td>"
                f"<td>{_s(facts.invoked.get(o.id), facts.origin)}</td>"
                f"<td>{_s(facts.acked.get(o.id), facts.origin)}</td><td>{deliveries}</td>"
                f"<td>{around}</td><td>{escape(o.detail)}</td></tr>")
        out.append(f"<table class='offenders' data-invariant='{escape(r.name)}'><tr><th>id</th>"
                   "<th>sent (s)</th><th>accepted (s)</th><th>deliveries (worker #attempt at s)"
                   "</th><th>fault windows around it</th><th>note</th></tr>"
                   + "".join(rows) + "</table>")
    return "".join(out)


def _single_deliveries(run: StoredRun, ids: set[str]) -> dict[str, tuple[Delivery, ...]]:
    """The worker and attempt of offenders delivered once: only the history has them."""
    if not ids:
        return {}
    found: dict[str, tuple[Delivery, ...]] = {}
    h = run.history
    for f, value, t in zip(h.f, h.value, h.time):
        if f == "deliver" and isinstance(value, dict) and value.get("id") in ids:
            found[value["id"]] = (Delivery(t, value.get("worker"), value.get("attempt")),)
    return found


def _s(t: int | None, origin: int) -> str:
    return "-" if t is None else f"{(t - origin) / NS:.3f}"


def figure_blocks(page: str) -> dict[str, dict[str, Any]]:
    """The figures a page holds, by id, as the JSON Plotly draws (for tests and tools)."""
    return {m.group(1): json.loads(m.group(2).replace("<\\/", "</"))
            for m in re.finditer(r"<script type='application/json' class='plotly-figure' "
                                 r"data-target='([^']+)'>(.*?)</script>", page, re.S)}
