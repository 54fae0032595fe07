"""Long image-build steps (debootstrap, pip, docker build) told while they run: their milestones
logged as they come, the per-package chatter counted, and a line every few seconds saying where
the step is, so that the screen never stays silent while a step works."""

from __future__ import annotations

import collections
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from harness.errors import HarnessError
from harness.progress import Ticker

Progress = Callable[[str], None]
# How often a step that said nothing itself is told about; tests shorten it.
STATUS_EVERY_S = 3.0
TAIL_LINES = 25


class StepOutput:
    """One build step's output as progress: `feed` takes a line and returns what is worth
    logging right away (or None); `status` says where the step is, for the periodic line."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.lines = 0
        self.last = ""

    def feed(self, line: str) -> str | None:
        self.lines += 1
        self.last = line
        return None

    def status(self) -> str:
        return f"{self.lines} lines of output" + (f" (last: {self.last[:80]})" if self.last else "")


class DebootstrapOutput(StepOutput):
    """debootstrap's `I:` lines: phases ("Retrieving Packages", "Unpacking the base system...")
    logged as they come; the lines per package (retrieving and validating, extracting, unpacking,
    configuring) counted and told as "retrieving 12 packages so far", "unpacking 40/91 packages"."""

    _PER_PACKAGE = re.compile(r"^I: (?:(Retrieving|Validating) (\S+) \S*\d\S*"
                              r"|(Extracting|Unpacking|Configuring) (\S+?)\.\.\.)$")

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.counts: collections.Counter[str] = collections.Counter()
        self.phase = "starting"
        self.package = ""

    def feed(self, line: str) -> str | None:
        line = line.strip()
        if not line:
            return None
        super().feed(line)
        match = self._PER_PACKAGE.match(line)
        if match is None:
            # A phase, a warning or an error: always worth a line of its own.
            return f"{self.label}: {line}"
        verb = (match.group(1) or match.group(3)).lower()
        if verb == "validating":  # each package retrieved is validated at once: part of retrieving
            return None
        self.phase = verb
        self.package = (match.group(2) or match.group(4)).split(":")[0]
        self.counts[verb] += 1
        return None

    def status(self) -> str:
        done = self.counts[self.phase]
        if self.phase == "retrieving":
            counted = f"{done} packages so far"
        elif self.phase == "starting":
            return self.last[:80] or "starting"
        else:  # every package retrieved is extracted or unpacked, then configured
            counted = f"{done}/{self.counts['retrieving']} packages"
        return f"{self.phase} {counted} ({self.package})"


class PipOutput(StepOutput):
    """pip's download log: "Collecting X" counted, the install and any warning or error logged."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.collected: list[str] = []

    def feed(self, line: str) -> str | None:
        line = line.strip()
        if not line:
            return None
        super().feed(line)
        if line.startswith("Collecting "):
            self.collected.append(line.split()[1])
            return None
        if line.startswith(("Installing collected packages", "Successfully installed")):
            return f"{self.label}: {line[:160]}"
        if line.startswith(("ERROR", "WARNING")) and "Running pip as the 'root' user" not in line:
            return f"{self.label}: {line}"   # (that one only says what setup already knows)
        return None

    def status(self) -> str:
        if not self.collected:
            return f"resolving ({self.last[:80] or 'starting'})"
        return f"{len(self.collected)} wheels collected (last: {self.collected[-1]})"


class DockerBuildOutput(StepOutput):
    """`docker build`'s stream: each "Step i/n" logged; the step's own output counted, its last
    line told, so a long `RUN apt-get install` shows which package it is at."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.step = ""
        self.step_lines = 0

    def feed(self, line: str) -> str | None:
        line = line.strip()
        if not line:
            return None
        super().feed(line)
        if line.startswith("Step "):
            self.step = line.split(" :", 1)[0].removeprefix("Step ")
            self.step_lines = 0
            return f"{self.label}: {line[:110]}"
        self.step_lines += 1
        return None

    def status(self) -> str:
        if not self.step:
            return "sending the build context"
        said = f", {self.step_lines} lines of output (last: {self.last[:80]})" if self.step_lines else ""
        return f"step {self.step} running{said}"


@contextmanager
def telling(output: StepOutput, tell: Progress, every_s: float | None = None) -> Iterator[Progress]:
    """Hands out the callable that feeds `output` one line; while the block runs, whenever the step
    went `every_s` seconds without a line logged, logs its status with the time it has taken."""
    every = STATUS_EVERY_S if every_s is None else every_s
    last_told = [time.monotonic()]

    def take(line: str) -> None:
        said = output.feed(line)
        if said is not None:
            last_told[0] = time.monotonic()
            tell(said)

    def status(elapsed: float) -> str | None:
        if time.monotonic() - last_told[0] < every:
            return None
        last_told[0] = time.monotonic()
        return f"{output.label} +{elapsed:.0f}s: {output.status()}"

    # Looked at three times per period, so that no gap is much longer than `every`.
    with Ticker(status, lambda line: line is not None and tell(line), interval_s=every / 3):
        yield take


def run_told(cmd: list[str], what: str, output: StepOutput, tell: Progress,
             env: Mapping[str, str] | None = None) -> None:
    """Run `cmd`, its stdout and stderr read line by line as they come into `output` (see `telling`);
    on failure, one HarnessError whose detail is the output's last lines."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", bufsize=1, env=None if env is None else {**os.environ, **env})
    except FileNotFoundError:
        raise HarnessError(f"{cmd[0]} is not installed: it is needed to {what}") from None
    assert proc.stdout is not None
    try:
        with telling(output, tell) as take:
            for line in proc.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                take(line)
            returncode = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
    if returncode != 0:
        raise HarnessError(f"could not {what} ({cmd[0]} exited {returncode})", detail="\n".join(tail))
