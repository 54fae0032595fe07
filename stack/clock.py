"""The clock library in the nodes that opt in to clock faults (`x-clock: true` in the stack file).

`stack/images/clock/chaosclock.c` is built once, in the `clock` image, against the base image's glibc.
When a node that opts in is created, the library and its offset file are copied into it (under
`/chaos-harness/`) and `LD_PRELOAD` names the library, so the node's image needs nothing of its own.
The `clock-skew` fault (faults/clock_skew.py) then writes an offset in nanoseconds to the file with the
Docker API (no shell in the node either); the library adds it to the wall clock of every process in the
node within 100 ms. What it fakes and what it cannot is written in faults/FAULTS.md.
"""

from __future__ import annotations

import io
import tarfile
import time

from stack.docker_api import read_file
from stack.topology import ConfigFile

FOLDER = "/chaos-harness"
LIBRARY = f"{FOLDER}/chaosclock.so"
OFFSET_FILE = f"{FOLDER}/clock-offset"
BUILT_AT = "/opt/chaos/lib/chaosclock.so"  # where the clock image builds it

_libraries: dict[str, bytes] = {}


def library(client, image: str) -> bytes:
    """The compiled library, read out of the clock image (once per image name and process)."""
    if image not in _libraries:
        container = client.containers.create(image, command=["true"])
        try:
            _libraries[image] = read_file(container, BUILT_AT)
        finally:
            container.remove(force=True)
    return _libraries[image]


def node_files(client, image: str) -> tuple[ConfigFile, ...]:
    return (ConfigFile(LIBRARY, library(client, image), mode=0o755), ConfigFile(OFFSET_FILE, "0\n"))


def node_env() -> dict[str, str]:
    return {"LD_PRELOAD": LIBRARY, "CHAOS_CLOCK_FILE": OFFSET_FILE}


def set_offset(container, offset_ns: int) -> None:
    """Write the node's clock offset (nanoseconds, signed) through the Docker API."""
    data = f"{int(offset_ns)}\n".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(OFFSET_FILE.rsplit("/", 1)[1])
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    if not container.put_archive(FOLDER, buf.getvalue()):
        raise OSError(f"could not write {OFFSET_FILE}")


def read_offset(container) -> int:
    """The offset the node's file holds now, in nanoseconds."""
    return int(read_file(container, OFFSET_FILE).decode().strip() or 0)
