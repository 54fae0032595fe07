"""Benchmark: seconds and ops/s to load and check generated histories of 10^5..10^7 ops.

    python benchmarks/checker.py [--sizes 100000,1000000] [--keep DIR] [--parser python]

Prints one JSON object to stdout. The histories look like a run: clients sending
(invoke, ok/info, delivery), a few campaigns, duplicates, fault windows and a drain.

load_s + check_s is what `check FILE` does. With the compiled scanner (scripts/build-native)
loading reads and checks every line and derives the facts but builds no per-op objects;
build_ops_s is the time to build them afterwards, which the verdict never needs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import history as history_module  # noqa: E402
from harness.checkers.facts import load_with_facts  # noqa: E402
from harness.history import _ScannedHistory  # noqa: E402
from harness.verdict import check  # noqa: E402

WALL0 = 1_700_000_000.0


def generate(path: Path, n_ops: int, seed: int = 1) -> int:
    """Write a history of about n_ops ops; returns the exact number written."""
    rng = random.Random(seed)
    written, t, seq = 0, 1_000_000_000, 0
    fault_every = max(n_ops // 20, 100)
    step = 0
    with open(path, "w", encoding="utf-8") as f:
        out: list[str] = []

        def op(process: str, type_: str, f_: str, value: str, time_: int) -> None:
            out.append(f'{{"process":"{process}","type":"{type_}","f":"{f_}","value":{value},'
                       f'"time":{time_},"wall":{WALL0 + time_ / 1e9!r}}}\n')

        while written + len(out) < n_ops - 2:
            seq += 1
            t += rng.randrange(50_000, 150_000)
            client = f"c{seq % 8}"
            if seq % fault_every == 0:
                step += 1
                v = (f'{{"action":"inject","step":{step},"fault":"kill-worker",'
                     f'"params":{{}},"targets":["w{step % 3}"]}}')
                op("nemesis", "invoke", "fault", v, t)
                op("nemesis", "ok", "fault", v, t + 1000)
                heal = v.replace('"inject"', '"heal"')
                op("nemesis", "invoke", "fault", heal, t + 2_000_000_000)
                op("nemesis", "ok", "fault", heal, t + 2_000_100_000)
            if seq % 50 == 0:
                cid = f"bench-k{seq}"
                ids = json.dumps([f"{cid}:u{k}" for k in range(10)])
                v = f'{{"campaign":"{cid}","ids":{ids}}}'
                op(client, "invoke", "campaign", v, t)
                op(client, "ok", "campaign", v, t + 2_000_000)
                for k in range(10):
                    op("sink", "ok", "deliver",
                       f'{{"id":"{cid}:u{k}","worker":"w{k % 3}","attempt":1}}', t + 5_000_000 + k)
                continue
            mid = f'"bench-{seq:09d}"'
            op(client, "invoke", "send", mid, t)
            outcome = "info" if rng.random() < 0.01 else "ok"
            op(client, outcome, "send", mid, t + rng.randrange(500_000, 3_000_000))
            if outcome == "ok" or rng.random() < 0.5:
                attempts = 2 if rng.random() < 0.001 else 1
                for a in range(1, attempts + 1):
                    op("sink", "ok", "deliver",
                       f'{{"id":{mid},"worker":"w{seq % 3}","attempt":{a}}}',
                       t + rng.randrange(4_000_000, 40_000_000) * a)
            if len(out) >= 10_000:
                f.writelines(out)
                written += len(out)
                out.clear()
        op("harness", "invoke", "drain", "null", t + 1_000_000)
        op("harness", "ok", "drain", "null", t + 2_000_000)
        f.writelines(out)
        written += len(out)
    return written


def measure(directory: Path, size: int) -> dict:
    path = directory / f"history-{size}.jsonl"
    ops = generate(path, size) if not path.exists() else sum(1 for _ in open(path))
    t0 = time.perf_counter()
    history = load_with_facts(path)   # what check_file does: facts derived while loading
    t1 = time.perf_counter()
    verdict = check(history)
    t2 = time.perf_counter()
    assert len(history) == ops, (len(history), ops)
    load_s, check_s = t1 - t0, t2 - t1
    result = {"ops": ops, "bytes": path.stat().st_size, "load_s": round(load_s, 3),
              "check_s": round(check_s, 3), "total_s": round(load_s + check_s, 3),
              "ops_per_s": round(ops / (load_s + check_s)),
              "load_ops_per_s": round(ops / load_s), "check_ops_per_s": round(ops / check_s),
              "verdict": verdict.status,
              "duplicated": verdict.results["duplicated"].counts["duplicated"],
              "ops_built_while_loading": not isinstance(history, _ScannedHistory)}
    if isinstance(history, _ScannedHistory):
        t3 = time.perf_counter()
        built = len(history.time)
        result["build_ops_s"] = round(time.perf_counter() - t3, 3)
        assert built == ops
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000",
                        help="comma-separated history sizes in ops")
    parser.add_argument("--keep", type=Path, help="generate into this directory and keep the files")
    parser.add_argument("--parser", choices=["auto", "python", "json"], default="auto",
                        help="python: without the compiled scanner; json: the standard "
                             "library parser only, even if msgspec or orjson is installed")
    args = parser.parse_args(argv)
    if args.parser in ("python", "json"):
        history_module._native = None
    if args.parser == "json":
        history_module._orjson = None
        history_module._msgspec = None
    sizes = [int(float(s)) for s in args.sizes.split(",") if s]
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        results = []
        for size in sizes:
            results.append(measure(directory, size))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
            if not args.keep:
                os.unlink(directory / f"history-{size}.jsonl")
    parser_name = ("native" if history_module._native is not None
                   else "msgspec" if history_module._msgspec is not None
                   else "orjson" if history_module._orjson is not None else "json")
    print(json.dumps({"python": platform.python_version(), "cpus": os.cpu_count(),
                      "parser": parser_name, "load_average": os.getloadavg(),
                      "target_ops_per_s": 1_000_000, "results": results}, indent=2))


if __name__ == "__main__":
    main()
