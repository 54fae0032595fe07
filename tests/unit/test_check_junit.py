"""scripts/check-junit: a CI junit file passes only when every chaos run carries its four properties."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check-junit"


def load():
    loader = importlib.machinery.SourceFileLoader("check_junit", str(SCRIPT))
    spec = importlib.util.spec_from_loader("check_junit", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def case(classname: str, name: str, props: dict[str, str]) -> str:
    inner = "".join(f'<property name="{k}" value="{v}"/>' for k, v in props.items())
    return f'<testcase classname="{classname}" name="{name}"><properties>{inner}</properties></testcase>'


def write(tmp_path: Path, cases: list[str]) -> Path:
    path = tmp_path / "junit.xml"
    path.write_text(f'<testsuites><testsuite name="pytest">{"".join(cases)}'
                    '<testcase classname="tests.unit.test_x" name="test_plain"/></testsuite></testsuites>')
    return path


def good_props(tmp_path: Path, verdict: str = "valid") -> dict[str, str]:
    report = tmp_path / "report.html"
    report.write_text("<html></html>")
    return {"chaos_verdict": verdict, "chaos_violations": "", "chaos_report": str(report),
            "chaos_replay": "chaos-harness replay x/scenario.json"}


def test_a_complete_file_passes(tmp_path):
    cases = [case(f"tests.incidents.test_{i}", v, good_props(tmp_path)) for i in range(5)
             for v in ("test_vulnerable", "test_hardened")]
    assert load().problems(write(tmp_path, cases), incidents=10) == []


def test_missing_properties_and_runs_are_named(tmp_path):
    props = good_props(tmp_path)
    del props["chaos_replay"]
    cases = [case("tests.incidents.test_a", "test_hardened", props),
             case("tests.incidents.test_b", "test_hardened", {**good_props(tmp_path), "chaos_report": "/nope.html"})]
    found = load().problems(write(tmp_path, cases), incidents=10)
    assert "tests.incidents.test_a::test_hardened: no chaos_replay" in found
    assert "tests.incidents.test_b::test_hardened: report /nope.html does not exist" in found
    assert "2 incident-catalog runs carry chaos properties, expected 10" in found
