"""Image builds tell their progress through logging while each step runs, not when it ends: a fake
debootstrap on PATH prints a phase and a few packages, then holds until the test has seen them
logged (or gives up, failing the test); nothing is printed past the logger."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from harness.errors import HarnessError
from stack import build_output, images
from stack.build_output import DebootstrapOutput, DockerBuildOutput, PipOutput

DEADLINE_S = 20.0

FAKE_DEBOOTSTRAP = """#!/bin/sh
# A debootstrap that talks like the real one, and holds mid-way until $RELEASE exists.
echo "I: Retrieving InRelease "
echo "I: Retrieving Packages "
echo "I: Resolving dependencies of required packages..."
for p in libacl1 libc6 dpkg; do echo "I: Retrieving $p 1.0-1"; echo "I: Validating $p 1.0-1"; done
waited=0
while [ ! -e "$RELEASE" ]; do
  sleep 0.05; waited=$((waited + 1))
  if [ $waited -gt 400 ]; then echo "E: nobody released me" >&2; exit 7; fi
done
echo "I: Installing core packages..."
for p in libacl1 libc6 dpkg; do echo "I: Unpacking $p:amd64..."; done
echo "I: Configuring required packages..."
for p in libacl1 libc6 dpkg; do echo "I: Configuring $p..."; done
echo "I: Base system installed successfully."
"""


def _fake_on_path(tmp_path: Path, monkeypatch, body: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "debootstrap"
    exe.write_text(body)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {DEADLINE_S:.0f}s for {what}")
        time.sleep(0.02)


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in list(caplog.records) if r.name == "harness"]


def test_debootstrap_progress_is_logged_while_it_runs(tmp_path, monkeypatch, caplog, capfd):
    caplog.set_level(logging.INFO, logger="harness")
    _fake_on_path(tmp_path, monkeypatch, FAKE_DEBOOTSTRAP)
    release = tmp_path / "release"
    monkeypatch.setenv("RELEASE", str(release))
    monkeypatch.setattr(build_output, "STATUS_EVERY_S", 0.2)
    failure: list[BaseException] = []

    def build() -> None:
        try:
            images.debootstrap(tmp_path / "rootfs", "http://mirror.invalid/debian")
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failure.append(exc)

    worker = threading.Thread(target=build)
    worker.start()
    try:
        # While the fake holds: its phases one line each, then the per-package lines counted, not echoed.
        _wait_for(lambda: any("Resolving dependencies" in line for line in _lines(caplog)),
                  "debootstrap's phase lines to be logged while it runs")
        _wait_for(lambda: any("retrieving 3 packages so far (dpkg)" in line for line in _lines(caplog)),
                  "a status line counting the packages retrieved so far")
        assert worker.is_alive(), "debootstrap finished before its progress was seen"
        assert not any("Validating libc6" in line for line in _lines(caplog))
    finally:
        release.touch()
        worker.join(DEADLINE_S)
    assert not failure, failure
    lines = _lines(caplog)
    assert any("Base system installed successfully" in line for line in lines), lines
    assert any(line.startswith("[images] debootstrap done in") for line in lines), lines
    out, err = capfd.readouterr()
    assert (out, err) == ("", ""), "progress went to the screen without going through the logger"


def test_a_failed_debootstrap_says_why_with_its_last_lines(tmp_path, monkeypatch):
    _fake_on_path(tmp_path, monkeypatch, '#!/bin/sh\necho "I: Retrieving InRelease "\n'
                                         'echo "E: Failed getting release file" >&2\nexit 1\n')
    with pytest.raises(HarnessError) as caught:
        images.debootstrap(tmp_path / "rootfs", "http://mirror.invalid/debian")
    assert "debootstrap exited 1" in str(caught.value)
    assert "E: Failed getting release file" in caught.value.detail


def test_debootstrap_status_counts_each_phase_against_the_packages_retrieved():
    output = DebootstrapOutput("[images] debootstrap")
    assert output.feed("I: Retrieving Packages ") == "[images] debootstrap: I: Retrieving Packages"
    for name in ("libacl1", "libc6", "dpkg", "tar"):
        assert output.feed(f"I: Retrieving {name} 1.2.3-4+b1") is None
    assert output.status() == "retrieving 4 packages so far (tar)"
    assert output.feed("I: Unpacking required packages...") is not None
    output.feed("I: Unpacking libc6:amd64...")
    assert output.status() == "unpacking 1/4 packages (libc6)"
    assert output.feed("I: Configuring the base system...") is not None
    output.feed("I: Configuring dpkg...")
    assert output.status() == "configuring 1/4 packages (dpkg)"
    assert output.feed("W: Failure trying to run: chroot") is not None


def test_pip_and_docker_build_lines_are_counted_and_their_milestones_logged():
    pip = PipOutput("[images] pip")
    assert pip.feed("Collecting pika==1.3.2") is None
    assert pip.feed("  Downloading pika-1.3.2-py3-none-any.whl (155 kB)") is None
    assert pip.status() == "1 wheels collected (last: pika==1.3.2)"
    assert pip.feed("Successfully installed pika-1.3.2").startswith("[images] pip: Successfully")
    assert pip.feed("WARNING: Running pip as the 'root' user can result in broken permissions") is None
    assert pip.feed("ERROR: No matching distribution found for pika==9") == \
        "[images] pip: ERROR: No matching distribution found for pika==9"

    build = DockerBuildOutput("[images]   redis")
    assert build.status() == "sending the build context"
    assert build.feed("Step 3/7 : RUN apt-get update -qq") == "[images]   redis: Step 3/7 : RUN apt-get update -qq"
    assert build.feed("Setting up redis-server (5:7.0.15-1) ...") is None
    assert build.status() == "step 3/7 running, 1 lines of output (last: Setting up redis-server (5:7.0.15-1) ...)"


def test_a_silent_step_is_told_every_few_seconds_and_a_talkative_one_is_not_repeated(caplog):
    caplog.set_level(logging.INFO, logger="harness")
    output = DockerBuildOutput("[images]   zookeeper")
    told: list[str] = []
    with build_output.telling(output, told.append, every_s=0.1) as take:
        take("Step 1/7 : ARG BASE")
        _wait_for(lambda: sum("running" in line for line in told) >= 2, "two status lines of a silent step")
    assert told[0] == "[images]   zookeeper: Step 1/7 : ARG BASE"
    assert all(line.startswith("[images]   zookeeper +") for line in told[1:]), told
    # A step whose own lines keep coming needs no status line between them.
    told.clear()
    with build_output.telling(output, told.append, every_s=1.0) as take:
        for i in range(12):
            take(f"Step {i}/12 : RUN true")
            time.sleep(0.05)
    assert not any("running" in line for line in told), told
