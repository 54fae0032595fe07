"""`GET /metrics`: Toxiproxy's Prometheus metrics in the text format, written by hand (no dependency).

`-proxy-metrics` gives `toxiproxy_proxy_{received,sent}_bytes_total{direction,listener,proxy,upstream}`;
`-runtime-metrics` gives the `process_*` gauges of Prometheus' process collector (Go's `go_*` have no
Python equivalent and are left out). The names, labels and number spelling are those of Toxiproxy 2.12.
"""

from __future__ import annotations

import os
import time
from typing import Callable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RECEIVED = "toxiproxy_proxy_received_bytes_total"
SENT = "toxiproxy_proxy_sent_bytes_total"

Labels = tuple[str, str, str, str]  # direction, proxy, listener, upstream: Toxiproxy's order


class Metrics:
    """Byte counters per link label set; a link holds its `[received, sent]` list and adds to it."""

    def __init__(self, proxy_metrics: bool = False, runtime_metrics: bool = False) -> None:
        self.proxy_metrics = proxy_metrics
        self.runtime_metrics = runtime_metrics
        self._counters: dict[Labels, list[int]] = {}
        # Counts kept elsewhere while they grow (the compiled pump's), read at each render, by owner.
        self._live: dict[object, Callable[[], dict[Labels, list[int]]]] = {}

    @property
    def enabled(self) -> bool:
        return self.proxy_metrics or self.runtime_metrics

    def counters(self, labels: Labels) -> list[int]:
        """The shared `[received, sent]` counters of one label set (Toxiproxy's WithLabelValues)."""
        counters = self._counters.get(labels)
        if counters is None:
            counters = self._counters[labels] = [0, 0]
        return counters

    def add_live(self, owner: object, read: Callable[[], dict[Labels, list[int]]]) -> None:
        """Counts that `read()` gives until `owner` folds them into `counters` and removes them."""
        self._live[owner] = read

    def remove_live(self, owner: object) -> None:
        self._live.pop(owner, None)

    def _all_counters(self) -> dict[Labels, list[int]]:
        if not self._live:
            return self._counters
        merged = {labels: list(counts) for labels, counts in self._counters.items()}
        for read in self._live.values():
            for labels, (received, sent) in read().items():
                counts = merged.setdefault(labels, [0, 0])
                counts[0] += received
                counts[1] += sent
        return merged

    def render(self) -> str:
        lines: list[str] = []
        if self.runtime_metrics:
            lines += _process_metrics()
        lines += ["# HELP promhttp_metric_handler_errors_total Total number of internal errors encountered by "
                  "the promhttp metric handler.",
                  "# TYPE promhttp_metric_handler_errors_total counter",
                  'promhttp_metric_handler_errors_total{cause="encoding"} 0',
                  'promhttp_metric_handler_errors_total{cause="gathering"} 0']
        if self.proxy_metrics:
            for name, index in ((RECEIVED, 0), (SENT, 1)):
                samples = [(labels, counts[index]) for labels, counts in sorted(self._all_counters().items())
                           if counts[index]]
                if not samples:
                    continue
                lines += [f"# HELP {name} ", f"# TYPE {name} counter"]
                for (direction, proxy, listener, upstream), value in samples:
                    lines.append(f'{name}{{direction="{_escape(direction)}",listener="{_escape(listener)}",'
                                 f'proxy="{_escape(proxy)}",upstream="{_escape(upstream)}"}} {go_float(value)}')
        return "\n".join(lines) + "\n"


def go_float(value: float) -> str:
    """A number as Go's strconv.FormatFloat(v, 'g', -1, 64) spells it: 10, 0.5, 1.0940416e+07."""
    value = float(value)
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    from decimal import Decimal  # only for GET /metrics: not every server needs its ~0.4 MiB
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    exp = len(text) + int(exponent) - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:  # Go: shortest formatting switches to %e from exponent 6 on
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    point = exp + 1
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _process_metrics() -> list[str]:
    """What Prometheus' process collector reports, read from /proc/self (Linux)."""
    import resource  # only with -runtime-metrics: a shared library the proxy otherwise does without

    lines: list[str] = []

    def gauge(name: str, kind: str, help_text: str, value: float) -> None:
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {go_float(value)}"])

    times = os.times()
    gauge("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
          times.user + times.system)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    gauge("process_max_fds", "gauge", "Maximum number of open file descriptors.", soft)
    try:
        gauge("process_open_fds", "gauge", "Number of open file descriptors.", len(os.listdir("/proc/self/fd")))
        with open("/proc/self/stat", encoding="ascii") as handle:
            fields = handle.read().rpartition(")")[2].split()
        page = os.sysconf("SC_PAGE_SIZE")
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat", encoding="ascii") as handle:
            boot = next(float(line.split()[1]) for line in handle if line.startswith("btime"))
        gauge("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", int(fields[21]) * page)
        gauge("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
              boot + int(fields[19]) / ticks)
        gauge("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", int(fields[20]))
    except (OSError, ValueError, IndexError, StopIteration):
        gauge("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
              time.time() - time.monotonic())
    soft_as, _ = resource.getrlimit(resource.RLIMIT_AS)
    gauge("process_virtual_memory_max_bytes", "gauge", "Maximum amount of virtual memory available in bytes.",
          float(2**64) if soft_as == resource.RLIM_INFINITY else soft_as)
    return lines
