"""Benchmark: seconds for `chaos-harness report DIR` to draw report.html from a stored history of
10^6 ops, and the page's size (targets: under 10 s, under 10 MB).

    python benchmarks/report.py [--ops 1000000] [--keep DIR]

Prints one JSON object to stdout. The history comes from benchmarks/checker.py's generator
(clients sending, campaigns, duplicates, fault windows, a drain); the command runs as a user
runs it, in a fresh process, so its imports count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.checker import generate  # noqa: E402
from harness import history as history_module  # noqa: E402

TARGET_S = 10.0
TARGET_BYTES = 10 * 1024 * 1024


def measure(run_dir: Path, ops: int) -> dict:
    history = run_dir / "history.jsonl"
    written = generate(history, ops) if not history.exists() else sum(1 for _ in open(history))
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(run_dir)],
                          cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"chaos-harness report failed: {done.stderr.strip()}")
    page = run_dir / "report.html"
    text = page.read_text(encoding="utf-8")
    return {"ops": written, "history_bytes": history.stat().st_size,
            "report_s": round(seconds, 3), "page_bytes": page.stat().st_size,
            "under_10_s": seconds < TARGET_S, "under_10_mb": page.stat().st_size < TARGET_BYTES,
            "latency_points_thinned": "id='thinning'" in text}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="generate into this run directory and keep it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.keep or Path(tmp) / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        result = measure(run_dir, args.ops)
    print(json.dumps({"python": platform.python_version(), "cpus": os.cpu_count(),
                      "native_scanner": history_module._native is not None,
                      "load_average": os.getloadavg(), "target_s": TARGET_S,
                      "target_bytes": TARGET_BYTES, **result}, indent=2))


if __name__ == "__main__":
    main()
