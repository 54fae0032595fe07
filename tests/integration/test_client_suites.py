"""An official Toxiproxy client's own tests against our server, in CI: toxiproxy_rust 0.1.6 from crates.io
ships its tests (11 tests and 26 doc tests), so it is the suite CI can reach (toxiproxy-python's PyPI sdist
ships none; the others need their GitHub trees). scripts/client-suites runs it on both data paths.

Needs cargo and crates.io. Skipped without cargo, except under HARNESS_REQUIRE_NATIVE=1 (CI): there a
missing cargo fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.native import unavailable

REPO = Path(__file__).resolve().parents[2]
CRATE, VERSION = "toxiproxy_rust", "0.1.6"
SUITE_VARS = ("TOXIPROXY_GO_SRC", "TOXIPROXY_PYTHON_SRC", "TOXIPROXY_RUBY_SRC", "TOXIPROXY_NODE_SRC",
              "TOXIPROXY_RUST_SRC", "TOXIPROXY_SERVER")


def cargo() -> str:
    rustup = Path.home() / ".cargo" / "bin" / "cargo"
    found = shutil.which("cargo") or (str(rustup) if rustup.is_file() else None)
    if found is None:
        unavailable("cargo is not installed")
    return found


@pytest.fixture(scope="module")
def crate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The crate's published source, copied out of cargo's registry, its dependencies fetched (built once
    for both data paths: the copy keeps its target folder)."""
    tool = cargo()
    scratch = tmp_path_factory.mktemp("rust-client")
    probe = scratch / "probe"
    (probe / "src").mkdir(parents=True)
    (probe / "src" / "lib.rs").write_text("")
    (probe / "Cargo.toml").write_text(f'[package]\nname = "probe"\nversion = "0.0.0"\nedition = "2021"\n'
                                      f'[dependencies]\n{CRATE} = "={VERSION}"\n')
    metadata = subprocess.run([tool, "metadata", "--format-version", "1"], cwd=probe, capture_output=True,
                              text=True, timeout=300)
    assert metadata.returncode == 0, metadata.stderr[-2000:]
    manifest = next(Path(p["manifest_path"]) for p in json.loads(metadata.stdout)["packages"]
                    if p["name"] == CRATE and p["version"] == VERSION)
    tree = scratch / f"{CRATE}-{VERSION}"
    shutil.copytree(manifest.parent, tree)
    fetched = subprocess.run([tool, "fetch"], cwd=tree, capture_output=True, text=True, timeout=300)
    assert fetched.returncode == 0, fetched.stderr[-2000:]
    yield tree


@pytest.mark.parametrize("data_path", ["compiled", "python"])
def test_the_rust_clients_own_suite_passes_against_our_server(crate: Path, data_path: str) -> None:
    env = {key: value for key, value in os.environ.items() if key not in SUITE_VARS}
    env.update(TOXIPROXY_RUST_SRC=str(crate), CHAOS_PROXY_NATIVE="1" if data_path == "compiled" else "0",
               PATH=f"{Path(cargo()).parent}{os.pathsep}{env.get('PATH', '')}")
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "client-suites")], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=1200)
    out = run.stdout + run.stderr
    assert run.returncode == 0 and f"{CRATE}: passed" in run.stdout, out[-4000:]
    # every test of the crate ran and passed: its 11 tests and its 26 doc tests
    assert "test result: ok. 11 passed; 0 failed" in out and "test result: ok. 26 passed; 0 failed" in out, out[-4000:]


def test_a_suite_that_never_ends_is_killed_with_what_it_started_and_counts_as_failed(tmp_path: Path) -> None:
    tool = cargo()
    tree = tmp_path / "waits-forever"
    (tree / "src").mkdir(parents=True)
    (tree / "Cargo.toml").write_text('[package]\nname = "waits_forever"\nversion = "0.0.0"\nedition = "2021"\n')
    (tree / "src" / "lib.rs").write_text(
        "#[test]\nfn waits_for_a_connection_that_never_comes() {\n"
        "    std::thread::sleep(std::time::Duration::from_secs(3600));\n}\n")
    built = subprocess.run([tool, "test", "--offline", "--no-run"], cwd=tree, capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    env = {key: value for key, value in os.environ.items() if key not in SUITE_VARS}
    env.update(TOXIPROXY_RUST_SRC=str(tree), CLIENT_SUITE_TIMEOUT_S="5",
               PATH=f"{Path(cargo()).parent}{os.pathsep}{env.get('PATH', '')}")
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "client-suites")], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "toxiproxy_rust: FAILED (timed out after 5s)" in run.stdout, \
        (run.stdout + run.stderr)[-3000:]
    give_up = time.monotonic() + 5  # SIGKILL is delivered at once, but a process takes a moment to go
    while (left := subprocess.run(["pgrep", "-f", "waits_forever"], capture_output=True, text=True).stdout):
        assert time.monotonic() < give_up, f"the suite's test process outlived it: {left}"
        time.sleep(0.05)
