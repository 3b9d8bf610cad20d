"""readers.lines and the careful readers' texts: a block of whole lines made a frame, and
the lines of it given to the decoder, each copied no more than it must be."""

from __future__ import annotations

import itertools

import polars as pl
import pytest

from egress_offline.readers import tuning
from egress_offline.readers.lines import _lines
from egress_offline.readers.linescan import filled, record_texts
from egress_offline.readers.model import POS, FileReport


def report() -> FileReport:
    return FileReport("x.ndjson", "ndjson", "none", 0, "line")


def test_filled_reads_a_line_as_stripping_one_mark_and_looking_for_non_space() -> None:
    """The pattern gives what stripping a leading byte order mark and then looking for a
    character that is not white space gives (the former definition), on every line of up
    to four characters of eight: marks, spaces of several kinds, a letter."""
    alphabet = ["\ufeff", " ", "\t", "a", "\u00a0", "\r", "\u2028", "é"]
    lines = [""] + ["".join(p) for n in range(1, 5) for p in itertools.product(alphabet, repeat=n)]
    text = pl.col("line")
    found = pl.DataFrame({"line": lines}).select(
        filled(text).alias("pattern"),
        text.str.strip_prefix("\ufeff").str.contains(r"\S").alias("stripped"),
    )
    assert found.height == 4_681
    assert found.filter(pl.col("pattern") != pl.col("stripped")).height == 0


def test_record_texts_copies_nothing_when_every_line_is_a_tidy_record() -> None:
    lines = pl.DataFrame({POS: [1, 2], "line": ['{"a":1}', '{"b":2}']})
    assert record_texts(lines) is lines


def test_record_texts_drops_blank_and_unreadable_lines_and_strips_the_others() -> None:
    lines = pl.DataFrame(
        {
            POS: [1, 2, 3, 4, 5, 6],
            "line": ['\ufeff{"a":1}', "   ", '{"b":2}\r', None, "\ufeff", '{"c":3}'],
        }
    )
    kept = record_texts(lines)
    assert kept.to_dicts() == [
        {POS: 1, "line": '{"a":1}'},
        {POS: 3, "line": '{"b":2}'},
        {POS: 6, "line": '{"c":3}'},
    ]


def test_record_texts_filters_without_stripping_when_no_line_needs_it() -> None:
    lines = pl.DataFrame({POS: [1, 2, 3], "line": ['{"a":1}', "", '{"c":3}']})
    assert record_texts(lines).to_dicts() == [
        {POS: 1, "line": '{"a":1}'},
        {POS: 3, "line": '{"c":3}'},
    ]


def test_a_block_s_lines_are_numbered_and_a_line_not_utf8_is_null() -> None:
    block = b'{"a":1}\n\xff\xfe{"b":2}\n\n{"c":"\xc3\xa9"}\n'
    frame = _lines(block, 10, report(), strict=False)
    assert frame.schema == pl.Schema({POS: pl.Int64, "line": pl.String})
    assert frame.to_dicts() == [
        {POS: 11, "line": '{"a":1}'},
        {POS: 12, "line": None},
        {POS: 13, "line": ""},
        {POS: 14, "line": '{"c":"é"}'},
    ]


def test_the_last_line_of_a_file_may_have_no_end() -> None:
    assert _lines(b'{"a":1}\r\n{"b":2}', 0, report(), strict=False).to_dicts() == [
        {POS: 1, "line": '{"a":1}\r'},
        {POS: 2, "line": '{"b":2}'},
    ]


@pytest.mark.parametrize("utf8", [True, False])
def test_a_line_over_the_limit_held_in_a_block_is_counted_and_never_copied(
    monkeypatch: pytest.MonkeyPatch, utf8: bool
) -> None:
    """A block holds a whole line over the limit only when the limit is below the size of
    a decompressed piece: it is counted as a malformed record by its bytes (whether or not
    they are UTF-8) and left out of the frame, the other lines keeping their numbers."""
    monkeypatch.setattr(tuning, "LINE_LIMIT", 16)
    long = b"A" * 20 if utf8 else b"\xff" * 20
    counted = report()
    frame = _lines(b'{"a":1}\n' + long + b'\n{"b":2}\n', 0, counted, strict=False)
    assert frame.to_dicts() == [{POS: 1, "line": '{"a":1}'}, {POS: 3, "line": '{"b":2}'}]
    assert counted.records == 1
    assert counted.malformed == 1
    assert counted.positions == ["line 2: line longer than 16 bytes (20 bytes, skipped unread)"]
