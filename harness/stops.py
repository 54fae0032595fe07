"""How the containers that faults stopped ended, read back from recorded histories.

Deploys, rollbacks and restarts record, per old container, its exit code and whether it had to be
killed after its grace (`stack/stopping.py`). This reads those records from a run's `history.jsonl`.

    python -m harness.stops REPORT_DIR...   # one JSON summary over every history.jsonl below them
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def stopped_containers(history: str | Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(fault, node, how the old container ended) for every container a fault stopped, in run order."""
    out = []
    with open(history) as fh:
        for line in fh:
            op = json.loads(line)
            if op.get("process") != "nemesis" or op.get("type") != "ok":
                continue
            value = op.get("value") or {}
            for node, ends in ((value.get("effect") or {}).get("stopped") or {}).items():
                for end in ends:
                    out.append((value.get("fault"), node, end))
    return out


def summary(roots: list[str | Path]) -> dict[str, Any]:
    """Counts over every history below `roots`: containers stopped, by exit code, killed, slowest exit."""
    ends = [end for root in roots for path in sorted(Path(root).rglob("history.jsonl"))
            for _, _, end in stopped_containers(path)]
    return {"histories": sum(1 for root in roots for _ in Path(root).rglob("history.jsonl")),
            "stopped": len(ends),
            "exit_codes": {str(k): v for k, v in sorted(Counter(e["exit_code"] for e in ends).items(),
                                                       key=lambda kv: str(kv[0]))},
            "killed": sum(1 for e in ends if e["killed"]),
            "slowest_exit_s": max((e["seconds"] for e in ends), default=None)}


def main(argv: list[str] | None = None) -> int:
    roots = (argv if argv is not None else sys.argv[1:]) or ["chaos-reports"]
    print(json.dumps(summary(roots)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
