"""The history log: writer (flushed, thread-safe, anchored clock) and loader (fast and exact)."""

from __future__ import annotations

import json
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import history as history_module
from harness.errors import HarnessError
from harness.history import (History, HistoryWriter, Op, campaign_message_id, load_history,
                             write_history)
from tests.native import both_ways, require_native

json_scalars = st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
ops = st.builds(
    Op,
    process=st.text(max_size=6),
    type=st.sampled_from(["invoke", "ok", "fail", "info"]),
    f=st.sampled_from(["send", "deliver", "campaign", "fault", "x\n\"y"]),
    value=json_values,
    time=st.integers(0, 2**63),
    wall=st.floats(0, 2e9, allow_nan=False),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(ops, max_size=40), st.integers(1, 200))
def test_load_returns_exactly_what_was_written_whatever_the_chunking(
        tmp_path_factory, written, chunk_chars):
    path = tmp_path_factory.mktemp("h") / "history.jsonl"
    write_history(path, written)
    assert list(load_history(path)) == written   # through the compiled scanner, if built
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(history_module, "_native", None)
        mp.setattr(history_module, "_CHUNK_CHARS", chunk_chars)
        assert list(load_history(path)) == written


def test_writer_flushes_every_line_as_it_happens(tmp_path):
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path) as w:
        op = w.record("c1", "invoke", "send", "m1")
        # readable before the writer closes: a killed run keeps everything so far
        assert load_history(path)[0] == op
        assert isinstance(op.time, int) and isinstance(op.wall, float)


def test_writer_is_thread_safe(tmp_path):
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path) as w:
        def client(k: int) -> None:
            for i in range(300):
                w.record(f"c{k}", "invoke", "send", f"m{k}-{i}" + "x" * 200)
        threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    loaded = load_history(path)
    assert len(loaded) == 1800
    assert {op.value for op in loaded} == {f"m{k}-{i}" + "x" * 200
                                           for k in range(6) for i in range(300)}


def test_anchor_maps_wall_seconds_to_the_runs_monotonic_clock(tmp_path):
    with HistoryWriter(tmp_path / "h.jsonl") as w:
        assert w.to_monotonic(w.wall0) == w.mono0
        assert w.to_monotonic(w.wall0 + 1.5) == w.mono0 + 1_500_000_000


def test_record_refuses_an_unknown_type(tmp_path):
    with HistoryWriter(tmp_path / "h.jsonl") as w, pytest.raises(ValueError):
        w.record("c1", "done", "send", "m1")


def test_campaign_message_id():
    assert campaign_message_id("camp-1", "+33600000001") == "camp-1:+33600000001"


GOOD = '{"process":"c","type":"invoke","f":"send","value":"m","time":1,"wall":2.0}'


@pytest.mark.parametrize("bad, why", [
    ("{not json", "property name"),
    ('["a"]', "not a JSON object"),
    ('{"process":"c","type":"invoke","f":"send","value":"m","time":1}', "missing wall"),
    ('{"process":"c","type":"done","f":"send","value":"m","time":1,"wall":2.0}', "type"),
    ('{"process":"c","type":"ok","f":"send","value":"m","time":1.5,"wall":2.0}', "time"),
    ('{"process":"c","type":"ok","f":"send","value":"m","time":true,"wall":2.0}', "time"),
    ('{"process":3,"type":"ok","f":"send","value":"m","time":1,"wall":2.0}', "strings"),
    ('{"process":"c","type":"ok","f":"send","value":"m","time":1,"wall":"x"}', "wall"),
    ('{"process":"c","type":"ok","f":"send","value":"m","time":1,"wall":2.0},{"a":1}', ""),
])
def test_a_malformed_line_names_file_and_line(tmp_path, bad, why):
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join([GOOD, GOOD, bad, GOOD]) + "\n")
    with pytest.raises(HarnessError, match=rf"h\.jsonl:3: malformed history line.*{why}"):
        load_history(path)


def test_two_lines_that_parse_only_together_are_still_refused(tmp_path):
    path = tmp_path / "h.jsonl"
    half = GOOD[:-1]
    path.write_text(f'{GOOD},{half}\n"extra":1}}\n')
    with pytest.raises(HarnessError, match=r":1: malformed"):
        load_history(path)


def test_blank_lines_are_skipped_and_a_torn_last_line_is_dropped(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text(f"{GOOD}\n\n   \n{GOOD}\n{GOOD[:30]}")
    assert len(load_history(path)) == 2


def test_a_torn_line_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text(f"{GOOD}\n{GOOD[:30]}\n{GOOD}\n")
    with pytest.raises(HarnessError, match=":2:"):
        load_history(path)


def test_missing_and_non_utf8_files_raise_harness_errors(tmp_path):
    with pytest.raises(HarnessError, match="cannot read history file"):
        load_history(tmp_path / "nope.jsonl")
    bad = tmp_path / "bin.jsonl"
    bad.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(HarnessError, match="not UTF-8"):
        load_history(bad)


def test_writer_on_a_missing_directory_raises_a_harness_error(tmp_path):
    with pytest.raises(HarnessError, match="cannot open history file"):
        HistoryWriter(tmp_path / "no" / "such" / "h.jsonl")


def test_history_is_a_sequence_of_ops():
    ops_ = [Op("c", "invoke", "send", "m", 1, 1.0), Op("c", "ok", "send", "m", 2, 2.0)]
    h = History(ops_)
    assert len(h) == 2 and h[1] == ops_[1] and h[-1] == ops_[1] and h[0:1] == ops_[:1]
    assert list(h) == ops_
    assert json.loads(ops_[0].to_json())["f"] == "send"


def test_values_only_the_json_module_accepts_still_load(tmp_path):
    # NaN, integers beyond 64 bits and lone surrogates: an accelerated parser may refuse them
    written = [Op("c", "ok", "x", 2**70, 1, float("nan")), Op("c", "ok", "x", "\ud800", 2, 1.0),
               Op("c", "ok", "x", {"n": -2**80}, 3, float("inf"))]
    path = tmp_path / "h.jsonl"
    write_history(path, written)
    loaded = load_history(path)
    assert [op.value for op in loaded] == [2**70, "\ud800", {"n": -2**80}]
    assert loaded[0].wall != loaded[0].wall and loaded[2].wall == float("inf")


def test_line_numbers_count_newlines_only(tmp_path):
    # \u2028 and \r are legal raw inside JSON strings / as whitespace; only \n ends a line
    odd = json.dumps(Op("c", "ok", "x", "a\u2028b\x85c", 1, 1.0).to_dict(), ensure_ascii=False)
    path = tmp_path / "h.jsonl"
    path.write_text(f"{odd}\n{GOOD}\r\n{odd}\n{{bad\n{GOOD}\n", encoding="utf-8", newline="")
    with pytest.raises(HarnessError, match=r"h\.jsonl:4:"):
        load_history(path)
    path.write_text(f"{odd}\n{GOOD}\r\n{odd}\n", encoding="utf-8", newline="")
    assert [op.value for op in load_history(path)] == ["a\u2028b\x85c", "m", "a\u2028b\x85c"]


@settings(max_examples=100, deadline=None)
@given(st.lists(ops, max_size=30), st.integers(1, 300))
def test_fast_and_line_by_line_paths_load_the_same(tmp_path_factory, written, chunk_chars):
    path = tmp_path_factory.mktemp("h") / "history.jsonl"
    write_history(path, written)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(history_module, "_native", None)
        mp.setattr(history_module, "_CHUNK_CHARS", chunk_chars)
        fast = list(load_history(path))
        mp.setattr(history_module, "_orjson", None)
        stdlib = list(load_history(path))
        mp.setattr(history_module, "_fast_columns", lambda text: None)
        slow = list(load_history(path))
    assert fast == stdlib == slow == written


@pytest.mark.parametrize("lines, bad", [
    # together, lines 2 and 3 are one op (its value a list); line 4 holds two ops: as many
    # values as lines when parsed as one array, yet lines 2, 3 and 4 are malformed
    ([GOOD, GOOD[:-1].replace('"value":"m"', '"value":[{}'),
      '{}],"process":"c","type":"ok","f":"x","value":1,"time":1,"wall":1.0}',
      f"{GOOD},{GOOD}", GOOD], 2),
    # a string cannot run from one line into the next
    ([GOOD, '{"process":"c","type":"ok","f":"x","time":1,"wall":1.0,"value":"}',
      '{"}', f"{GOOD},{GOOD}"], 2),
])
def test_lines_that_parse_only_together_in_one_array_are_refused(tmp_path, lines, bad):
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HarnessError, match=rf"h\.jsonl:{bad}: malformed"):
        load_history(path)


def test_a_malformed_line_after_many_blocks_names_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr(history_module, "_CHUNK_CHARS", 500)
    campaign = Op("c", "ok", "campaign", {"campaign": "k", "ids": ["k:1", "k:2"]}, 1, 1.0)
    lines = [GOOD if n % 7 else campaign.to_json() for n in range(1, 400)]
    lines[300] = GOOD.replace('"time":1', '"time":"1"')
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HarnessError, match=r"h\.jsonl:301: malformed history line: time"):
        load_history(path)


def test_loaded_process_type_and_f_are_shared_strings(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text(f"{GOOD}\n{GOOD}\n")
    a, b = load_history(path)
    assert a.process is b.process and a.type is b.type and a.f is b.f


# Each parser the loader may use: the compiled scanner (scripts/build-native), then msgspec,
# orjson (msgspec absent), json (neither).
PARSERS = ["native", "msgspec", "orjson", "json"]


def use_parser(mp: pytest.MonkeyPatch, parser: str) -> None:
    if parser == "native":
        require_native()
        return
    mp.setattr(history_module, "_native", None)
    if parser == "msgspec":
        pytest.importorskip("msgspec")
    if parser in ("orjson", "json"):
        mp.setattr(history_module, "_msgspec", None)
    if parser == "orjson":
        pytest.importorskip("orjson")
    if parser == "json":
        mp.setattr(history_module, "_orjson", None)


@settings(max_examples=100, deadline=None)
@given(st.lists(ops, max_size=30), st.integers(1, 300))
def test_msgspec_orjson_json_and_line_by_line_load_the_same(tmp_path_factory, written,
                                                           chunk_chars):
    pytest.importorskip("msgspec")
    path = tmp_path_factory.mktemp("h") / "history.jsonl"
    write_history(path, written)
    loaded = []
    with pytest.MonkeyPatch.context() as mp:
        if history_module._native is not None:
            native = load_history(path)
            assert list(native) == written
            assert list(map(type, native.wall)) == [type(op.wall) for op in written]
        mp.setattr(history_module, "_native", None)
        mp.setattr(history_module, "_CHUNK_CHARS", chunk_chars)
        loaded.append(load_history(path))
        mp.setattr(history_module, "_msgspec", None)
        loaded.append(load_history(path))
        mp.setattr(history_module, "_orjson", None)
        loaded.append(load_history(path))
        mp.setattr(history_module, "_fast_columns", lambda text: None)
        loaded.append(load_history(path))
    assert [list(h) for h in loaded] == [written] * 4
    # same types too (an int wall stays an int); the block parsers share f's strings
    for h in loaded:
        assert list(map(type, h.wall)) == [type(op.wall) for op in written]
    for h in loaded[:3]:
        assert all(a is b for a, b in zip(h.f, loaded[0].f))


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("bad, why", [
    ("{not json", "property name"),
    ('["a"]', "not a JSON object"),
    ('{"process":"c","type":"invoke","f":"send","value":"m","time":1}', "missing wall"),
    ('{"process":"c","type":"done","f":"send","value":"m","time":1,"wall":2.0}', "type"),
    ('{"process":"c","type":"ok","f":"send","value":"m","time":"1","wall":2.0}', "time"),
    ('{"process":"c","type":"ok","f":"send","value":"m","time":1.5,"wall":2.0}', "time"),
    ('{"process":"c","type":"ok","f":"send","value":"m","time":true,"wall":2.0}', "time"),
    ('{"process":"c","type":"ok","f":"send","value":"m","time":1,"wall":false}', "wall"),
    ('{"process":3,"type":"ok","f":"send","value":"m","time":1,"wall":2.0}', "strings"),
    ('{"process":"c","type":"ok","f":null,"value":"m","time":1,"wall":2.0}', "strings"),
    ('{"process":"c","type":"ok","f":"send","value":"m","time":1,"wall":"x"}', "wall"),
    (f"{GOOD} {GOOD}", ""),   # msgspec reads whitespace-separated values as a stream
    (f"{GOOD}{GOOD}", ""),
])
def test_every_parser_names_the_malformed_line(tmp_path, parser, bad, why):
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join([GOOD] * 5 + [bad, GOOD]) + "\n")
    with pytest.MonkeyPatch.context() as mp:
        use_parser(mp, parser)
        mp.setattr(history_module, "_CHUNK_CHARS", 200)
        with pytest.raises(HarnessError, match=rf"h\.jsonl:6: malformed history line.*{why}"):
            load_history(path)


@pytest.mark.parametrize("parser", PARSERS)
def test_a_value_spanning_lines_next_to_two_values_on_one_line_is_refused(tmp_path, parser):
    # as many values as lines, yet line 2 runs into line 3, and line 3 holds two ops
    lines = [GOOD, GOOD[:-1].replace('"value":"m",', '') + ',"value":',
             f'"m"}} {GOOD}', GOOD]
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.MonkeyPatch.context() as mp:
        use_parser(mp, parser)
        with pytest.raises(HarnessError, match=r"h\.jsonl:2: malformed"):
            load_history(path)


@pytest.mark.parametrize("parser", PARSERS)
def test_extra_fields_are_ignored_and_bad_utf8_in_them_refused(tmp_path, parser):
    path = tmp_path / "h.jsonl"
    path.write_text(GOOD[:-1] + ',"extra":[1,2]}\n' + GOOD + "\n")
    with pytest.MonkeyPatch.context() as mp:
        use_parser(mp, parser)
        assert list(load_history(path)) == [Op("c", "invoke", "send", "m", 1, 2.0)] * 2
        path.write_bytes(GOOD[:-1].encode() + b',"extra":"\xff"}\n')
        with pytest.raises(HarnessError, match="not UTF-8"):
            load_history(path)


def test_the_msgspec_path_takes_well_formed_blocks(tmp_path):
    pytest.importorskip("msgspec")
    data = (GOOD + "\n") * 3
    columns, newlines = history_module._msgspec_columns(data.encode())
    assert newlines == 3 and columns[4] == [1, 1, 1]
    assert history_module._msgspec_columns(data.encode()[:-1]) is not None   # torn newline
    for bad in (GOOD + "\n\n" + GOOD + "\n", GOOD + "\r\n" + GOOD + "\n", GOOD + " \n"):
        assert history_module._msgspec_columns(bad.encode()) is None


ODD_LINES = [
    r'{"process":"c","type":"ok","f":"x","value":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\u0000","time":1,"wall":1}',
    '{"process":"c","type":"ok","f":"x","value":"é😀 raw\u2028","time":-0,"wall":-0.0}',
    r'{"\u0070rocess":"c","type":"ok","f":"x","value":[1e400,-1E-400,0.1,12.5e+3,-0],"time":9223372036854775807,"wall":1.5}',
    '{"process":"c","type":"ok","f":"x","value":' + "[" * 150 + "]" * 150 + ',"time":1,"wall":1}',
    '{"process":"c","type":"ok","f":"x","value":' + "[" * 300 + "]" * 300 + ',"time":1,"wall":1}',
    '{"process":"c","type":"ok","f":"x","value":{"a":1,"a":2},"time":1,"wall":1,"time":2}',
    '{"process":"c","type":"ok","f":"x","value":9223372036854775808,"time":1,"wall":1}',
    '{"process":"c","type":"ok","f":"x","value":1,"time":-9223372036854775809,"wall":1}',
    r'{"process":"c","type":"ok","f":"x","value":"\ud800","time":1,"wall":1}',
    r'{"process":"c","type":"ok","f":"x","value":"\udc00\ud800x","time":1,"wall":1}',
    '{"process":"c","type":"ok","f":"x","value":NaN,"time":1,"wall":Infinity}',
    '{"process":"c","type":"ok","f":"x","value":[1,],"time":1,"wall":1}',
    '{"process":"c","type":"ok","f":"x","value":01,"time":1,"wall":1}',
    '{"process":"c","type":"ok","f":"x","value":1.,"time":1,"wall":1}',
    '{"process":"c","type":"ok","f":"x","value":"tab\there","time":1,"wall":1}',
    '{"process":"c","type":"ok","f":"x","value":tru,"time":1,"wall":1}',
    '{"process":"c","type":"ok","f":"x","value":"m","time":1,"wall":1}\x0c',
    '\x0c',
    ' \t\r',
]


def loaded(path) -> str:
    """The ops loaded from path with the types of wall and value, as text (NaN != NaN)."""
    return repr([(op, type(op.wall), type(op.value)) for op in load_history(path)])


@pytest.mark.parametrize("line", ODD_LINES)
def test_the_compiled_scanner_reads_odd_lines_as_json_does(tmp_path, line):
    require_native()
    path = tmp_path / "h.jsonl"
    path.write_text(f"{GOOD}\n{line}\n{GOOD}", encoding="utf-8", newline="")
    native, python = both_ways(lambda: loaded(path))
    assert native == python


MUTATION_BYTES = st.sampled_from(list(b'{}[]",:\\ \t\r\n0123456789.-+eEtrufalsn\x00\x1f\x7f')
                                 + [b"\xc3\xa9", b"\xff", b"\\u00e9", b"\\ud83d\\ude00",
                                    b"\\ud800", b"\xe2\x80\xa8"])


@settings(max_examples=300, deadline=None)
@given(st.lists(ops, min_size=1, max_size=6), st.lists(
    st.tuples(st.integers(0, 10**6), st.integers(0, 3), MUTATION_BYTES), max_size=4),
    st.sampled_from([7, 64, 1 << 22]))
def test_the_compiled_scanner_agrees_with_json_on_mutated_lines(tmp_path_factory, written,
                                                                mutations, block):
    """Valid lines with bytes cut or inserted: whatever the scanner makes of them, the load
    ends as the Python path's does (same ops, or the same error)."""
    require_native()
    data = bytearray(b"".join(op.to_json().encode() + b"\n" for op in written))
    for at, cut, insert in mutations:
        at %= len(data) + 1
        data[at:at + cut] = insert if isinstance(insert, bytes) else bytes([insert])
    path = tmp_path_factory.mktemp("h") / "history.jsonl"
    path.write_bytes(bytes(data))
    native, python = both_ways(lambda: loaded(path), block)
    assert native == python
