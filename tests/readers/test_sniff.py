"""readers.sniff: the format from the first bytes, never from the name."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from egress_offline.errors import InputError
from egress_offline.readers.model import InputFile
from egress_offline.readers.sniff import describe, sniff_json


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'{"a": 1}\n{"a": 2}\n', "ndjson"),
        (b'\xef\xbb\xbf{"a": 1}\r\n', "ndjson"),
        (b'{\n  "a": 1\n}\n', "json"),
        (b'[\n  {"a": 1}\n]\n', "json"),
        (b'[{"a": 1}, {"a": 2}]', "json"),
        (json.dumps({"took": 1, "hits": {"hits": []}}).encode(), "json"),
        (b'not json\n{"a": 1}\n', "ndjson"),  # a damaged first line does not decide
        (b"  \n\n", "ndjson"),  # nothing but white space: an empty export
        (b"hello world\nsecond line\n", None),
        (b"\x89PNG\r\n", None),
    ],
)
def test_the_json_layout_is_told_from_the_text(text: bytes, expected: str | None) -> None:
    assert sniff_json(text) == expected


def test_a_named_file_that_is_no_export_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n")
    with pytest.raises(InputError, match=r"notes\.txt: not a supported format; give NDJSON"):
        describe(path, name=str(path), explicit=True)
    assert describe(path, name=str(path), explicit=False) == (
        "not an export this tool reads (skipped)"
    )


def test_an_empty_compressed_file_is_an_incomplete_copy(tmp_path: Path) -> None:
    path = tmp_path / "x.ndjson.gz"
    path.write_bytes(b"")
    with pytest.raises(InputError) as raised:
        describe(path, name="x.ndjson.gz", explicit=True)
    assert (
        str(raised.value)
        == "x.ndjson.gz: is empty (0 bytes); the copy is incomplete, export it again"
    )
    assert raised.value.file == "x.ndjson.gz"


def test_a_gzip_file_s_text_size_and_line_length_are_estimated(tmp_path: Path) -> None:
    lines = b"".join(b'{"n": %06d}\n' % i for i in range(100_000))
    path = tmp_path / "export.bin"  # the name says nothing
    path.write_bytes(gzip.compress(lines))
    described = describe(path, name="export.bin", explicit=True)
    assert isinstance(described, InputFile)
    assert (described.format, described.compression) == ("ndjson", "gzip")
    assert described.line_bytes == len(b'{"n": 000000}\n')
    assert 0.5 * len(lines) < described.text_size < 2 * len(lines)


def test_parquet_is_told_from_its_magic(tmp_path: Path) -> None:
    import polars as pl  # noqa: PLC0415

    path = tmp_path / "rows.dat"
    pl.DataFrame({"event.action": ["x"]}).write_parquet(path)
    described = describe(path, name="rows.dat", explicit=True)
    assert isinstance(described, InputFile) and described.format == "parquet"


def test_a_first_line_nested_deeper_than_the_parser_goes_is_sniffed(tmp_path: Path) -> None:
    """It stopped the run with a RecursionError traceback; now the line decides nothing,
    as a damaged one does, and a record after it tells the layout."""
    path = tmp_path / "deep.ndjson"
    path.write_text('{"a": ' + "[" * 30_000 + "]" * 30_000 + '}\n{"source": {"bytes": 1}}\n')
    described = describe(path, name=str(path), explicit=True)
    assert isinstance(described, InputFile)
    assert (described.format, described.layout, described.understood) == (
        "ndjson", "documents", True,
    )  # fmt: skip
