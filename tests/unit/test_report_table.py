"""The incident table pairs each incident's two variants on one row."""

from reports.table import RunRow, incident_table


def test_one_row_per_incident_with_both_verdicts():
    rows = [RunRow("Redis failover", "vulnerable", "invalid", ("lost",), 70.0),
            RunRow("Redis failover", "hardened", "valid", (), 35.0),
            RunRow("tests/x.py::test_y", "", "valid", (), 3.0)]
    lines = incident_table(rows)
    assert lines[0].split() == ["incident", "vulnerable", "hardened", "seconds"]
    assert "invalid (lost)" in lines[1] and "valid" in lines[1].split("invalid (lost)")[1]
    assert lines[1].rstrip().endswith("105")
    assert lines[2] == "tests/x.py::test_y: valid in 3s"
