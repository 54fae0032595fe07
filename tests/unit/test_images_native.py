"""The proxy image carries the proxy's compiled data path when scripts/build-native has built it: the
module is copied into the build context and hashed like any input, so a rebuilt module rebuilds the image,
and a missing one is said, not failed on."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack import images

MODULE = "faults/toxiproxy/_pump.abi3.so"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    (root / "faults" / "toxiproxy").mkdir(parents=True)
    (root / "faults" / "__init__.py").write_text("")
    (root / "faults" / "toxiproxy" / "server.py").write_text("print('serve')\n")
    (root / MODULE).write_bytes(b"\x7fELF one build")
    (root / "faults" / "toxiproxy" / "_pump.cpython-311-x86_64-linux-gnu.so").write_bytes(b"stale")
    monkeypatch.setattr(images, "PROJECT_ROOT", root)
    return root


def context(tmp_path: Path) -> tuple[Path, list[str]]:
    said: list[str] = []
    dest = tmp_path / "ctx"
    images._service_context("proxy", dest, said.append)
    return dest, said


def test_the_built_module_goes_into_the_proxy_image_and_nothing_else_compiled_does(project: Path,
                                                                                  tmp_path: Path) -> None:
    dest, said = context(tmp_path)
    carried = sorted(str(p.relative_to(dest / "app")) for p in (dest / "app").rglob("*") if p.is_file())
    assert carried == ["faults/__init__.py", MODULE, "faults/toxiproxy/server.py"]
    assert (dest / "app" / MODULE).read_bytes() == b"\x7fELF one build"
    assert said == []


def test_the_proxy_image_hash_follows_the_module(project: Path) -> None:
    built = images.service_inputs_hash("proxy", "base:1")
    (project / MODULE).write_bytes(b"\x7fELF another build")
    rebuilt = images.service_inputs_hash("proxy", "base:1")
    (project / MODULE).unlink()
    without = images.service_inputs_hash("proxy", "base:1")
    assert len({built, rebuilt, without}) == 3


def test_a_missing_module_is_said_and_the_image_builds_without_it(project: Path, tmp_path: Path) -> None:
    (project / MODULE).unlink()
    dest, said = context(tmp_path)
    assert not (dest / "app" / MODULE).exists() and (dest / "app" / "faults/toxiproxy/server.py").is_file()
    assert images.missing_native("proxy") == [MODULE]
    assert len(said) == 1 and MODULE in said[0] and "build-native" in said[0]
