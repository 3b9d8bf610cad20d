"""readers.linescan: every line marked from its text, in one streaming pass."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from egress_offline.readers.linescan import (
    BYTES,
    KEYS,
    MAY,
    SHAPED,
    STAMP,
    line_scan,
    marked,
    plain_stamp_text,
    scan_stages,
)
from egress_offline.readers.model import POS
from egress_offline.readers.prefilter import Prefilter
from egress_offline.readers.sniff import describe

HUNT_LINES = Prefilter(families=("windows",), actions=("disconnect_received",))


def scan(tmp_path: Path, text: str, floor_ms: int | None = None) -> list[dict[str, object]]:
    path = tmp_path / "x.ndjson"
    path.write_text(text)
    file = describe(path, name="x", explicit=True)
    assert not isinstance(file, str)
    return line_scan(file, HUNT_LINES, floor_ms).collect().drop(KEYS, strict=False).to_dicts()


def marked_lines(tmp_path: Path, lines: list[str]) -> pl.DataFrame:
    """``lines`` written to a file and marked by the scan's stages (every column)."""
    path = tmp_path / "marked.ndjson"
    path.write_text("\n".join(lines) + "\n")
    stages = scan_stages(HUNT_LINES, None)[0]
    return marked(pl.scan_lines(path, name="line"), stages).collect()


MATCH = '{"@timestamp":"2024-05-01T10:00:00.1234567Z","a":"disconnect_received","f":"windows"}'
OTHER = '{"@timestamp":"2024-05-01T10:00:00.5Z","a":"x"}'
TWICE = '{"@timestamp":"2024-05-01T10:00:00Z","p":{"@timestamp":"2024-05-01T09:00:00Z"}}'


def test_each_line_is_marked_and_only_needed_text_is_kept(tmp_path: Path) -> None:
    rows = scan(tmp_path, "\n".join([MATCH, OTHER, TWICE, "junk", ""]) + "\n")
    assert [row[POS] for row in rows] == [1, 2, 3, 4, 5]
    assert [row[MAY] for row in rows] == [True, False, False, False, False]
    assert [row[SHAPED] for row in rows] == [True, True, True, False, False]
    assert [row[BYTES] for row in rows] == [len(MATCH) + 1, len(OTHER) + 1, len(TWICE) + 1, 5, 1]
    # the canonical form only (.5Z is not: it is read later), one key only
    assert [row[STAMP] for row in rows] == [1714557600123, None, None, None, None]
    # the text leaves the scan where it is needed: to decode, to check a shape, to read
    # a timestamp the scan did not
    assert [row["line"] for row in rows] == [MATCH, OTHER, TWICE, "junk", ""]


def test_a_line_older_than_the_floor_is_not_searched_nor_kept(tmp_path: Path) -> None:
    rows = scan(tmp_path, MATCH + "\n", floor_ms=1714557600123)
    assert (rows[0][MAY], rows[0]["line"]) == (False, None)
    rows = scan(tmp_path, MATCH + "\n", floor_ms=1714557600122)
    assert (rows[0][MAY], rows[0]["line"]) == (True, MATCH)


def test_the_timestamp_is_read_after_the_only_key_wherever_it_is(tmp_path: Path) -> None:
    # the key found by its byte offset (after text of 2- and 4-byte characters), the
    # value only when `:"` follows the key at once, no value past the line's end, and the
    # key counted however often it appears (even run together with itself)
    lines = [
        '{"é😀x":"y","@timestamp":"2024-05-01T10:00:00.123Z"}',
        '{"@timestamp" :"2024-05-01T10:00:00.123Z"}',
        '{"@timestamp":2024}',
        '{"a":1,"@timestamp":"',
        '{"@timestamp":"2024-05-01T10:00:00Z"}',
        '{"@timestamp"@timestamp":"2024-05-01T10:00:00Z"}',
        '{"@timestamp":"2024-05-01T10:00:00Z","p":{"@timestamp":"x"}}',
        '{"a":"2024-05-01T10:00:00Z","b":"éééééééééééééééééé","@timestamp":"x"}',
    ]
    path = tmp_path / "x.ndjson"
    path.write_text("\n".join(lines) + "\n")
    file = describe(path, name="x", explicit=True)
    assert not isinstance(file, str)
    rows = line_scan(file, HUNT_LINES, None).collect()
    assert rows.get_column(STAMP).to_list() == [
        1714557600123,
        None,
        None,
        None,
        1714557600000,
        None,
        None,
        None,
    ]
    keys = marked_lines(tmp_path, lines).get_column(KEYS)
    assert keys.to_list() == [1, 1, 1, 1, 1, 1, 2, 1]


def test_the_sampled_timestamp_text_ends_at_its_quote_after_wide_characters() -> None:
    # plain_stamp_text: the value's text up to its closing quote, counted the same way on
    # every Polars version (2.1 found in bytes and cut in characters: 'é"' for the
    # second line); null where no quote closes it within reach, or no key
    lines = [
        '{"é😀":1,"@timestamp":"2024-05-01T10:00:00Z"}',
        '{"@timestamp":"éé","x":"abc"}',
        '{"@timestamp":"' + "9" * 40 + '"}',
        '{"a":1}',
    ]
    line = pl.col("line")
    texts = pl.DataFrame({"line": lines}).select(plain_stamp_text(line)).to_series()
    assert texts.to_list() == ["2024-05-01T10:00:00Z", "éé", None, None]


def test_a_key_is_not_taken_from_the_text_where_escapes_may_hide_or_fake_one(
    tmp_path: Path,
) -> None:
    # one "@timestamp" key read from the text only when its quote is not escaped and no
    # \u00 escape could spell another; else "several" (2): the line is decoded
    lines = [
        '{"@timestamp":"2024-05-01T10:00:00Z"}',
        '{"\\"@timestamp":"2024-05-01T10:00:00Z"}',
        '{"\\\\":1,"@timestamp":"2024-05-01T10:00:00Z"}',
        '{"p":{"@timestamp":"2024-04-01T10:00:00Z"},"\\u0040timestamp":"2024-05-01T10:00:00Z"}',
        '{"\\u0040timestamp":"2024-05-01T10:00:00Z"}',
        '{"a":"\\\\users"}',
        '{"a":1}',
    ]
    rows = marked_lines(tmp_path, lines)
    assert rows.get_column(KEYS).to_list() == [1, 2, 1, 2, 2, 0, 0]
    assert rows.get_column(STAMP).to_list() == [
        1714557600000,
        None,
        1714557600000,
        None,
        None,
        None,
        None,
    ]
