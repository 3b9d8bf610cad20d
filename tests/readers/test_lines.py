"""readers.lines and the careful readers' texts: a block of whole lines made a frame, and
the lines of it given to the decoder, each copied no more than it must be."""

from __future__ import annotations

import itertools
from pathlib import Path

import polars as pl
import pytest

from egress_offline.fields import HUNT
from egress_offline.readers import tuning
from egress_offline.readers.jsondoc import read_json_document
from egress_offline.readers.lines import _lines, line_blocks
from egress_offline.readers.linescan import filled, record_texts
from egress_offline.readers.model import POS, FileReport, InputFile


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


def test_a_block_of_many_short_lines_is_handed_on_in_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each line becomes a record of a dozen lists in the careful readers: a block of 8
    MiB of 3-byte lines held millions of them (a 4 KB zstd _bulk body of 1 million empty
    documents peaked at 1.19 GB; 469 MB in parts). Parts of at most DECODE_RECORDS lines,
    numbered on, every line once."""
    monkeypatch.setattr(tuning, "DECODE_RECORDS", 1000)
    path = tmp_path / "short.ndjson"
    path.write_bytes(b"{}\n" * 4500 + b"{}")  # the last line has no end
    file = InputFile(path, path.name, path.stat().st_size, "ndjson", "none")
    parts = list(line_blocks(file, report(), strict=False))
    assert [part.height for part in parts] == [1000, 1000, 1000, 1000, 500, 1]
    assert pl.concat(parts).get_column(POS).to_list() == list(range(1, 4502))


def test_a_json_document_s_values_are_decoded_a_bounded_number_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However short they are: 10 million empty hits of a 2.7 KB response were 16 MiB of
    text a batch, each hit a record of a dozen lists."""
    monkeypatch.setattr(tuning, "DECODE_RECORDS", 1000)
    path = tmp_path / "hits.json"
    path.write_text('{"hits": {"hits": [' + ",".join(['{"_source": {}}'] * 2500) + "]}}")
    file = InputFile(path, path.name, path.stat().st_size, "json", "none")
    batches = list(read_json_document(file, report(), strict=False, fields=HUNT))
    assert [batch.height for batch in batches if batch.height] == [1000, 1000, 500]
