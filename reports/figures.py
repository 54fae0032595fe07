"""The run report's Plotly figures: the fault timeline and the plots against run time, every
one with the fault windows shaded."""

from __future__ import annotations

import plotly.graph_objects as go

from reports.series import RunSeries, Series, WindowSpan

OUTCOME_COLORS = {"accepted": "#2a9d4b", "refused": "#e07b00", "unknown": "#8a8a8a"}
QUANTILE_COLORS = {"p50": "#1f77b4", "p95": "#9467bd", "p99": "#d62728", "max": "#222222"}
WINDOW_FILL = "rgba(214, 39, 40, 0.13)"
#: a white plot area, so that the shaded fault windows read as the only colour behind the data
PLAIN = {"plot_bgcolor": "white"}


def window_shapes(windows: tuple[WindowSpan, ...]) -> list[dict]:
    """One shaded band per fault window, the whole height of the plot."""
    return [{"type": "rect", "xref": "x", "yref": "paper", "x0": w.start_s, "x1": w.end_s,
             "y0": 0, "y1": 1, "fillcolor": WINDOW_FILL, "line": {"width": 0}, "layer": "below",
             "name": f"fault window {w.step}"} for w in windows]


def _layout(title: str, y_title: str, s: RunSeries, **extra) -> dict:
    return {"title": {"text": title}, "height": 320, "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
            "xaxis": {"title": {"text": "run time (s)"}, "range": [0, max(s.duration_s, 1e-3)],
                      "gridcolor": "#e5e5e5"},
            "yaxis": {"title": {"text": y_title}, "rangemode": "tozero", "gridcolor": "#e5e5e5"},
            "shapes": window_shapes(s.windows), "legend": {"orientation": "h", "y": 1.12},
            **PLAIN, **extra}


def _line(series: Series, color: str, *, shape: str = "hv", name: str | None = None) -> go.Scatter:
    return go.Scatter(x=series.x, y=series.y, mode="lines", name=name or series.name,
                      line={"color": color, "shape": shape, "width": 1.5})


def timeline(s: RunSeries) -> go.Figure:
    """One bar per fault window (step), from inject to heal, labelled with the fault and whom it hit."""
    fig = go.Figure()
    labels = [f"step {w.label}" + ("" if w.healed else " (never healed)") for w in s.windows]
    by_fault: dict[str, list[int]] = {}
    for i, w in enumerate(s.windows):
        by_fault.setdefault(w.fault, []).append(i)
    for fault, idx in by_fault.items():
        fig.add_trace(go.Bar(
            orientation="h", name=fault, y=[labels[i] for i in idx],
            base=[s.windows[i].start_s for i in idx],
            x=[s.windows[i].end_s - s.windows[i].start_s for i in idx],
            hovertext=[f"{labels[i]}<br>{s.windows[i].start_s:.2f}s .. {s.windows[i].end_s:.2f}s"
                       for i in idx], hoverinfo="text"))
    fig.update_layout(title={"text": "fault timeline"}, barmode="overlay", **PLAIN,
                      height=120 + 28 * max(1, len(s.windows)),
                      margin={"l": 20, "r": 20, "t": 40, "b": 40},
                      xaxis={"title": {"text": "run time (s)"}, "range": [0, max(s.duration_s, 1e-3)]},
                      yaxis={"automargin": True, "autorange": "reversed",
                             "categoryorder": "array", "categoryarray": labels})
    return fig


def request_rate(s: RunSeries) -> go.Figure:
    fig = go.Figure([_line(r, OUTCOME_COLORS[r.name]) for r in s.requests])
    fig.update_layout(_layout(f"messages per second by outcome (bins of {s.bin_s:g}s)", "messages/s", s))
    return fig


def delivery_rate(s: RunSeries) -> go.Figure:
    fig = go.Figure([_line(s.deliveries, "#1f77b4")])
    fig.update_layout(_layout(f"deliveries per second (bins of {s.bin_s:g}s)", "deliveries/s", s))
    return fig


def backlog(s: RunSeries) -> go.Figure:
    fig = go.Figure([_line(s.backlog, "#8c564b", shape="linear")])
    fig.update_layout(_layout("backlog: accepted, not yet delivered", "messages", s))
    return fig


def latency_raw(s: RunSeries) -> go.Figure:
    fig = go.Figure([go.Scatter(x=s.latency.x, y=s.latency.y, mode="markers", name="latency",
                                marker={"size": 3, "color": "#1f77b4", "opacity": 0.5})])
    fig.update_layout(_layout("latency, acceptance to first delivery (raw)", "seconds", s))
    return fig


def latency_quantiles(s: RunSeries) -> go.Figure:
    fig = go.Figure([_line(q, QUANTILE_COLORS[q.name], shape="linear") for q in s.quantiles])
    for trace in fig.data:
        trace.mode = "lines+markers"
        trace.marker = {"size": 4}
    fig.update_layout(_layout(f"latency quantiles by acceptance time (bins of {s.bin_s:g}s)",
                              "seconds", s))
    return fig


#: id -> (heading, builder), in page order
FIGURES = {
    "timeline": timeline,
    "request-rate": request_rate,
    "delivery-rate": delivery_rate,
    "backlog": backlog,
    "latency-raw": latency_raw,
    "latency-quantiles": latency_quantiles,
}
