"""The sizes of pages of texts with shared prefixes (``DELTA_BYTE_ARRAY``), read from their
lengths (``readers/parquet_prefixes.py``): exact on every codec and page version pyarrow
writes, and never an error or an unbounded read on a page that is not as it says."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egress_offline.readers.parquet_pages import check_pages, page_header
from egress_offline.readers.parquet_prefixes import Prefixed, PrefixedPages

CODECS = ["none", "snappy", "gzip", "brotli", "zstd", "lz4"]
TEXTS = st.lists(
    st.one_of(st.none(), st.text(alphabet="ab/\\é\U0001f600", max_size=40)), max_size=300
)


def _walked(path: Path, column: int = 0) -> list[tuple[int, int]]:
    """Per row group: the column's (decoded bytes, bound on the longest) from the walk."""
    metadata = pq.ParquetFile(path).metadata
    with pa.OSFile(str(path)) as source:
        sizes = check_pages(source, metadata, [column], "x.parquet")
    found = []
    for group in range(metadata.num_row_groups):
        if metadata.row_group(group).num_rows == 0:  # no page of it is read
            continue
        chunk = sizes[group, column]
        assert chunk.whole is not None, "the lengths were read"
        found.append((chunk.whole.decoded, chunk.prefixed))
    return found


def _lengths(values: list[str | None]) -> list[int]:
    return [len(value.encode()) for value in values if value is not None]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=TEXTS, codec=st.sampled_from(CODECS), version=st.sampled_from(["1.0", "2.0"]),
       page=st.sampled_from([64, 512, 1 << 20]))  # fmt: skip
def test_the_lengths_give_each_chunk_its_values_bytes_exactly(
    tmp_path: Path, texts: list[str | None], codec: str, version: str, page: int
) -> None:
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"t": pa.array(texts, pa.string())}), path, use_dictionary=False,
                   column_encoding={"t": "DELTA_BYTE_ARRAY"}, compression=codec,
                   data_page_version=version, data_page_size=page, row_group_size=128)  # fmt: skip
    for group, (decoded, longest) in enumerate(_walked(path)):
        lengths = _lengths(texts[group * 128 : (group + 1) * 128])
        assert decoded == sum(lengths)
        assert max(lengths, default=0) <= longest <= 2 * max(lengths, default=0)


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_a_list_of_texts_is_read_past_its_levels(tmp_path: Path, version: str) -> None:
    """A list's element column has repetition and definition levels before its values."""
    rows = [["C:\\a.exe", None, "C:\\a.exe2"], None, [], ["x" * 300] * 5] * 50
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"l": rows}), path, use_dictionary=False,
                   column_encoding={"l.list.element": "DELTA_BYTE_ARRAY"},
                   data_page_version=version)  # fmt: skip
    texts = [text for row in rows if row for text in row]
    assert _walked(path) == [(sum(_lengths(texts)), 300 + 300)]


def test_one_long_text_shared_by_every_row_is_counted_for_each(tmp_path: Path) -> None:
    """The case the lengths are read for: 2,048 rows sharing one 64 KiB text are a page
    of a few bytes that decodes to 128 MiB."""
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"t": ["x" * 65_536] * 2_048}), path, use_dictionary=False,
                   column_encoding={"t": "DELTA_BYTE_ARRAY"})  # fmt: skip
    assert path.stat().st_size < 32 * 1024
    assert _walked(path) == [(2_048 * 65_536, 2 * 65_536)]


def _page(texts: list[str], **options: object) -> tuple[object, bytes]:
    """The first data page of a one-column file of ``texts``: its header and bytes."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"t": texts}), sink, use_dictionary=False, compression="none",
                   column_encoding={"t": "DELTA_BYTE_ARRAY"}, **options)  # fmt: skip
    data = sink.getvalue().to_pybytes()
    chunk = pq.ParquetFile(pa.BufferReader(data)).metadata.row_group(0).column(0)
    page = page_header(data[chunk.data_page_offset :])
    start = chunk.data_page_offset + page.header
    return page, data[start : start + page.compressed]


def _sized(page: object, raw: bytes, compression: str = "UNCOMPRESSED") -> Prefixed | None:
    pages = PrefixedPages(compression, (0, 1))
    pages.add(page, raw)
    (found,) = pages.sizes()
    return found


def test_a_page_read_as_written() -> None:
    page, raw = _page(["abc", "abd", "abdef", "", "zz"])
    assert _sized(page, raw) == Prefixed(3 + 3 + 5 + 0 + 2, 3 + 3)


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[:5],  # cut short
        lambda raw: raw[:-3],  # the suffixes run past the page's end
        lambda raw: raw[:2] + b"\xff" * 8 + raw[10:],  # a varint over 64 bits
        lambda raw: raw[:2] + b"\x81\x01" + raw[4:],  # a block of 129 values
        lambda raw: b"",
    ],
    ids=["short", "suffixes past the end", "varint", "block size", "empty"],
)
def test_a_page_not_as_it_says_is_sized_by_its_bytes(damage: object) -> None:
    """Never an error: the page is then sized as before (each value as long as its page),
    and pyarrow says what is wrong with it when the rows are read."""
    page, raw = _page(["abc", "abd", "abdef", "", "zz"] * 100)
    assert _sized(page, damage(raw)) is None  # type: ignore[operator]


def test_a_run_claiming_billions_of_values_is_not_unpacked() -> None:
    """A run's header may claim two billion lengths of width 0 in a few bytes: it is not
    unpacked (its page is sized by its bytes)."""
    page, _ = _page(["a"] * 10)
    # block 128, 4 miniblocks, 2**31 - 1 values, first 0; a block of width 0 and least 0
    run = b"\x80\x01\x04\xfe\xff\xff\xff\x0f\x00" + b"\x00" + b"\x00" * 4
    assert _sized(page, run + run) is None


def test_a_negative_length_is_not_a_size() -> None:
    page, _ = _page(["a"] * 10)
    # 2 values: first 0, then a difference of -1 (zigzag 1) at width 0
    run = b"\x80\x01\x04\x02\x00" + b"\x01" + b"\x00" * 4
    assert _sized(page, run + b"\x80\x01\x04\x02\x02\x00\x00\x00\x00\x00" + b"aa") is None


@pytest.mark.parametrize("compression", ["UNKNOWN", "LZO", "SNAPPY", "LZ4"])
def test_a_codec_not_read_here_or_bytes_it_cannot_read(compression: str) -> None:
    """Hadoop's LZ4 (pyarrow: UNKNOWN) and LZO are not read (their pages are sized by
    their bytes), nor bytes that do not decompress to the size their header says."""
    page, raw = _page(["abc", "abd"] * 50)
    assert _sized(page, raw, compression) is None


def test_a_page_not_read_is_sized_by_its_bytes() -> None:
    page, raw = _page(["abc", "abd"])
    pages = PrefixedPages("UNCOMPRESSED", (0, 1))
    pages.skip()
    pages.add(page, raw)
    assert pages.sizes() == [None, Prefixed(6, 2 + 3)]
