"""readers.prefilter: which lines may hold a record that matters, from the text alone."""

from __future__ import annotations

import polars as pl

from egress_offline.readers.prefilter import IdPrefilter, Prefilter, any_of


def may(prefilter: Prefilter | IdPrefilter, *lines: str) -> list[bool]:
    frame = pl.DataFrame({"line": list(lines)})
    return frame.select(prefilter.could_match(pl.col("line"))).to_series().to_list()


def test_any_of_matches_its_texts_literally() -> None:
    frame = pl.DataFrame({"t": ["a.b", "axb", "(x", "y"]})
    assert frame.select(pl.col("t").str.contains(any_of("a.b", "(x"))).to_series().to_list() == [
        True,
        False,
        True,
        False,
    ]


def test_a_line_needs_an_action_and_a_family_or_an_escape() -> None:
    hunt = Prefilter(families=("windows",), actions=("disconnect_received",))
    assert may(
        hunt,
        '{"event":{"action":"disconnect_received"},"host":{"os":{"family":"windows"}}}',
        '{"event":{"action":"disconnect_received"},"host":{"os":{"family":"linux"}}}',
        '{"event":{"action":"connection_attempted"},"host":{"os":{"family":"windows"}}}',
        '{"event":{"action":"disconnect\\u005freceived"},"host":{"os":{"family":"windows"}}}',
    ) == [True, False, False, True]


def test_any_family_and_several_actions() -> None:
    wide = Prefilter(families=None, actions=("connection_accepted", "disconnect_received"))
    assert may(wide, '{"a":"connection_accepted"}', '{"a":"disconnect_received"}', '{"a":"x"}') == [
        True,
        True,
        False,
    ]


def test_ids_are_found_literally_or_behind_an_escape() -> None:
    ids = IdPrefilter(("MTE/x",))
    assert may(
        ids, '{"id":"MTE/x"}', '{"id":"MTE\\/x"}', '{"id":"\\u004dTE/x"}', '{"id":"other"}'
    ) == [
        True,
        True,
        True,
        False,
    ]
    quoted = IdPrefilter(('a"b',))
    assert may(quoted, '{"id":"a\\"b"}', '{"id":"ab"}') == [True, False]
