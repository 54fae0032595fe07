"""Reading the fault facts a run recorded, for the trust tests."""

from __future__ import annotations

import json
from pathlib import Path


def stopped_containers(report_dir: Path) -> list[tuple[str, str, dict]]:
    """(fault, node, how the old container ended) for every container a fault stopped, in run order."""
    out = []
    with open(Path(report_dir) / "history.jsonl") as fh:
        for line in fh:
            op = json.loads(line)
            if op.get("process") != "nemesis" or op.get("type") != "ok":
                continue
            value = op.get("value") or {}
            for node, ends in ((value.get("effect") or {}).get("stopped") or {}).items():
                for end in ends if isinstance(ends, list) else [ends]:
                    out.append((value.get("fault"), node, end))
    return out
