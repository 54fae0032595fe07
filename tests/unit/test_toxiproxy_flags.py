"""The proxy reads plainly spelled flags without argparse (to keep it out of the process's memory) and hands
everything else to argparse: wherever the plain reader answers, argparse answers the same; wherever argparse
refuses (exit 2), the plain reader has left it to argparse."""

from __future__ import annotations

import contextlib
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from faults.toxiproxy.server import _parse_plain, _parse_with_argparse

NAMES = ["host", "port", "seed", "config", "proxy-metrics", "runtime-metrics", "version", "hos", "h", "help"]
VALUES = ["0.0.0.0", "8474", "-1", "x", "", "true", "F", "1", "=", "-", "--"]
TOKEN = st.one_of(
    st.builds(lambda dash, name: dash + name, st.sampled_from(["-", "--", "---"]), st.sampled_from(NAMES)),
    st.builds(lambda dash, name, value: f"{dash}{name}={value}", st.sampled_from(["-", "--"]),
              st.sampled_from(NAMES), st.sampled_from(VALUES)),
    st.sampled_from(VALUES),
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(TOKEN, max_size=4))
def test_the_plain_reader_agrees_with_argparse_or_leaves_it_to_argparse(argv: list[str]) -> None:
    plain = _parse_plain(list(argv))
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            expected = vars(_parse_with_argparse(list(argv)))
        except SystemExit:
            expected = None
    if plain is not None:
        assert vars(plain) == expected, argv


def test_the_images_command_line_is_read_plainly() -> None:
    plain = _parse_plain(["--host", "0.0.0.0", "--port", "8474", "-proxy-metrics", "-seed=3"])
    assert plain is not None and (plain.host, plain.port, plain.seed, plain.proxy_metrics) == ("0.0.0.0", 8474, 3, True)
