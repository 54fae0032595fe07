"""index.html at a report root: a row per run and the incident catalog's table."""

from __future__ import annotations

import re

import pytest

from harness.errors import HarnessError
from harness.history import Op
from reports.index import write_index
from tests import report_runs as R


def _valid_ops() -> list[Op]:
    return [Op("c", "invoke", "send", "a", R.T0, 0.0), Op("c", "ok", "send", "a", R.T0 + 10, 0.0),
            Op("sink", "ok", "deliver", {"id": "a", "worker": "w0", "attempt": 1}, R.T0 + 100, 0.0),
            Op("harness", "invoke", "drain", None, R.T0 + 200, 0.0),
            Op("harness", "ok", "drain", None, R.T0 + 300, 0.0)]


def _cells(html: str, row_class: str) -> list[list[str]]:
    rows = re.findall(rf"<tr class='{row_class}'>(.*?)</tr>", html, re.S)
    return [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
            for r in rows]


@pytest.fixture
def root(tmp_path):
    R.write_run(tmp_path / "a_vulnerable", test="tests/incidents/test_w.py::test_vulnerable",
                group="Workers drop messages", variant="vulnerable", seconds=70.4)
    R.write_run(tmp_path / "b_hardened", _valid_ops(), test="tests/incidents/test_w.py::test_hardened",
                group="Workers drop messages", variant="hardened", seconds=35.2)
    R.write_run(tmp_path / "c_other", _valid_ops(), seconds=None)   # e.g. `chaos-harness replay`
    (tmp_path / "not_a_run").mkdir()
    return tmp_path


def test_one_row_per_run_with_verdict_violations_seconds_and_link(root):
    page = write_index(root).read_text(encoding="utf-8")
    assert _cells(page, "run") == [
        ["tests/incidents/test_w.py::test_vulnerable", "invalid", "lost, duplicated", "70",
         "a_vulnerable"],
        ["tests/incidents/test_w.py::test_hardened", "valid", "-", "35", "b_hardened"],
        ["c_other", "valid", "-", "-", "c_other"]]
    assert "href='a_vulnerable/report.html'" in page


def test_incident_table_pairs_the_variants(root):
    page = write_index(root).read_text(encoding="utf-8")
    assert _cells(page, "incident") == [
        ["Workers drop messages", "invalid (lost, duplicated)", "valid", "106"]]


def test_a_root_without_runs_is_a_user_error(tmp_path):
    with pytest.raises(HarnessError, match="no runs under"):
        write_index(tmp_path)


def test_search_section_lists_the_schedules_tried_the_first_failure_and_its_shrunk_form(tmp_path):
    two = [{"at": 0, "fault": "kill", "targets": ["worker1"], "duration": 5},
           {"at": 3, "fault": "partition", "targets": ["rabbitmq"], "duration": None}]
    # named so that their names' order is not the order they ran in
    R.write_search(tmp_path, [("generated-zz", _valid_ops(), two[1:]), ("generated-bb", None, two),
                       ("generated-aa", None, two[:1])])
    page = write_index(tmp_path).read_text(encoding="utf-8")
    assert "Generated schedules: search-reject-drop" in page
    assert _cells(page, "tried") == [
        ["1", "at 3s partition rabbitmq until the end", "valid", "generated-zz"],
        ["2", "at 0s kill worker1 for 5sat 3s partition rabbitmq until the end",
         "invalid (lost, duplicated)", "generated-bb"],
        ["3", "at 0s kill worker1 for 5s", "invalid (lost, duplicated)", "generated-aa"]]
    first = page.split("<b>First failure</b>")[1].split("</pre>")[0]
    assert "search-reject-drop/runs/generated-bb/report.html" in first
    assert "at 0s kill worker1 for 5s\nat 3s partition rabbitmq until the end" in first
    shrunk = page.split("<b>Shrunk to</b>")[1].split("</pre>")[0]
    assert "generated-aa/report.html" in shrunk and shrunk.endswith("at 0s kill worker1 for 5s")
    assert "chaos-harness replay " in page and "found/generated-aa.json" in page


def test_redraw_draws_the_search_runs_too(tmp_path):
    from reports.redraw import redraw

    R.write_search(tmp_path, [("generated-aa", None, [])])
    pages = redraw(tmp_path)
    assert pages == [tmp_path / "search-reject-drop" / "runs" / "generated-aa" / "report.html",
                     tmp_path / "index.html"]
    assert all(p.is_file() for p in pages)
