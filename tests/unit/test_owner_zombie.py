"""A run's owner that died but was never waited for (a zombie: pytest-xdist's controller keeps a
SIGKILLed worker so until the session ends) is dead to the reaper, `up` and `clean`."""

import socket
import subprocess
import sys
import time

from stack import cleanup


def labels_of(pid: int) -> dict[str, str]:
    return {cleanup.LABEL_OWNER_PID: str(pid), cleanup.LABEL_OWNER_START: cleanup._process_start(pid),
            cleanup.LABEL_OWNER_HOST: socket.gethostname(), cleanup.LABEL_DETACHED: "0"}


def test_a_zombie_owner_is_dead_and_a_live_one_alive():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        labels = labels_of(child.pid)
        assert labels[cleanup.LABEL_OWNER_START]
        assert cleanup.owner_alive(labels)
        child.stdin.close()  # it exits; nobody waits for it yet
        deadline = time.monotonic() + 10
        while open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.05)
        assert not cleanup.owner_alive(labels)
        assert not cleanup.process_alive(child.pid, labels[cleanup.LABEL_OWNER_START])
    finally:
        child.wait(timeout=10)
