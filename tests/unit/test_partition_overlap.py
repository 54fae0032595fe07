"""A partition's heal leaves out the pairs that another partition in effect still cuts (faults/partition.py)."""

from __future__ import annotations

from faults import partition


def test_a_pair_cut_by_another_partition_in_effect_is_reported_until_that_one_heals():
    partition.hold_cut("run-a", 1, {"zk1": {"zk2", "zk3"}, "zk2": {"zk1"}, "zk3": {"zk1"}})
    partition.hold_cut("run-a", 2, {"zk2": {"zk3"}, "zk3": {"zk2"}})
    partition.hold_cut("run-b", 3, {"zk1": {"zk2"}, "zk2": {"zk1"}})  # another run's: not ours to skip
    try:
        assert partition.cut_by_others("run-a", 1) == {frozenset(("zk2", "zk3"))}
        assert partition.cut_by_others("run-a", 2) == {frozenset(("zk1", "zk2")), frozenset(("zk1", "zk3"))}
        partition.release_cut("run-a", 2)
        assert partition.cut_by_others("run-a", 1) == set()
        partition.release_cut("run-a", 2)  # a second heal releases nothing more
        partition.release_cut("run-a", 1)
        assert "run-a" not in partition._IN_EFFECT
        assert partition.cut_by_others("run-b", 3) == set()
        assert partition.cut_by_others("run-b", 9) == {frozenset(("zk1", "zk2"))}
    finally:
        partition.release_cut("run-b", 3)
