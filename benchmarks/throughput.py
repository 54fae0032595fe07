"""End-to-end throughput and delivery latency of the reference services, with no faults, with the
proxy in every client link and without it (services deployed straight at the nodes).

    CHAOS_NAMESPACE=... python benchmarks/throughput.py [--messages 3000] [--clients 8] [--topology small]

Prints one JSON object: per mode messages/s from the first API request to the last delivery, the
API's accept rate, delivery latency (sink timestamp minus the API's 202) p50/p99, and the
proxy/direct throughput ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from stack.stack import Stack  # noqa: E402


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _send(api: str, ids: list[str], accepted: dict[str, float], errors: list[str]) -> None:
    with requests.Session() as session:
        for m in ids:
            response = session.post(f"{api}/messages", timeout=15,
                                    json={"id": m, "channel": "sms", "to": "+33600000000", "body": "bench"})
            if response.status_code == 202:
                accepted[m] = time.time()
            else:
                errors.append(f"{m}: {response.status_code}")


def measure(topology: str, direct: bool, messages: int, clients: int, deadline_s: float) -> dict:
    os.environ["CHAOS_SERVICES_DIRECT"] = "1" if direct else "0"
    with Stack(topology, progress=lambda line: None) as stack:
        api = f"http://127.0.0.1:{stack.host_port('api', 8080)}"
        sink = f"http://127.0.0.1:{stack.host_port('sink', 8080)}"
        requests.post(f"{sink}/reset", timeout=5).raise_for_status()
        _send(api, [f"warmup-{i}" for i in range(50)], {}, [])  # connections, JIT-free but cold caches
        ids = [f"bench-{i:07d}" for i in range(messages)]
        accepted: dict[str, float] = {}
        errors: list[str] = []
        threads = [threading.Thread(target=_send, args=(api, ids[i::clients], accepted, errors))
                   for i in range(clients)]
        started = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent = time.time()
        delivered: dict[str, float] = {}
        offset, end = 0, time.monotonic() + deadline_s
        while len(delivered) < len(accepted) and time.monotonic() < end:
            body = requests.get(f"{sink}/deliveries", params={"offset": offset, "limit": 10000}, timeout=10).json()
            for d in body["deliveries"]:
                if d["id"].startswith("bench-"):
                    delivered.setdefault(d["id"], d["ts"])
            if body["next"] == offset:
                time.sleep(0.2)
            offset = body["next"]
        latencies = [delivered[m] - accepted[m] for m in accepted if m in delivered]
        last = max(delivered.values()) if delivered else sent
        return {
            "mode": "direct" if direct else "proxy",
            "accepted": len(accepted), "refused": len(errors), "delivered": len(delivered),
            "api_accept_per_s": round(len(accepted) / (sent - started), 1),
            "end_to_end_per_s": round(len(delivered) / (last - started), 1),
            "latency_p50_s": round(_percentile(latencies, 0.50), 3) if latencies else None,
            "latency_p99_s": round(_percentile(latencies, 0.99), 3) if latencies else None,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--topology", default="small")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds to wait for deliveries")
    args = parser.parse_args(argv)
    results = {mode: measure(args.topology, mode == "direct", args.messages, args.clients, args.deadline)
               for mode in ("proxy", "direct")}
    ratio = results["proxy"]["end_to_end_per_s"] / max(results["direct"]["end_to_end_per_s"], 1e-9)
    print(json.dumps({"topology": args.topology, "messages": args.messages, "clients": args.clients,
                      **results, "proxy_over_direct": round(ratio, 3)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
