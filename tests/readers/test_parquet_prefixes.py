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

from egress_offline.errors import InputError
from egress_offline.readers.parquet_pages import check_pages, page_header
from egress_offline.readers.parquet_prefixes import Prefixed, PrefixedPages

CODECS = ["none", "snappy", "gzip", "brotli", "zstd", "lz4"]
TEXTS = st.lists(
    st.one_of(st.none(), st.text(alphabet="ab/\\é\U0001f600", max_size=40)), max_size=300
)


def _walked(path: Path, column: int = 0) -> list[tuple[int, int] | None]:
    """Per row group: the column's (decoded bytes, bound on the longest) from the walk, or
    None where it sized a page by its bytes."""
    metadata = pq.ParquetFile(path).metadata
    with pa.OSFile(str(path)) as source:
        sizes = check_pages(source, metadata, [column], "x.parquet")
    found = []
    for group in range(metadata.num_row_groups):
        if metadata.row_group(group).num_rows == 0:  # no page of it is read
            continue
        chunk = sizes[group, column]
        found.append(None if chunk.whole is None else (chunk.whole.decoded, chunk.prefixed))
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
    for group, walked in enumerate(_walked(path)):
        lengths = _lengths(texts[group * 128 : (group + 1) * 128])
        # pyarrow writes a V2 page whose values do not compress (nulls, a few short
        # texts) uncompressed, saying so: read both ways, as pyarrow may
        assert walked is not None
        decoded, longest = walked
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


@pytest.mark.parametrize("compression", ["UNKNOWN", "LZO", "LZ4_HADOOP", "SNAPPY", "LZ4_RAW"])
def test_a_codec_not_read_here_or_bytes_it_cannot_read(compression: str) -> None:
    """Hadoop's LZ4 and LZO are not read (the walk refuses such a file: see below), nor
    bytes that do not decompress to the size their header says."""
    page, raw = _page(["abc", "abd"] * 50)
    assert _sized(page, raw, compression) is None


def test_a_page_not_read_is_sized_by_its_bytes() -> None:
    page, raw = _page(["abc", "abd"])
    pages = PrefixedPages("UNCOMPRESSED", (0, 1))
    pages.skip()
    pages.add(page, raw)
    assert pages.sizes() == [None, Prefixed(6, 2 + 3)]


CRAFTED = Path(__file__).resolve().parent.parent / "fixtures" / "crafted"


@pytest.mark.parametrize(
    ("name", "column"),
    [("v2-polyglot-old-writer.parquet", 0), ("v2-is-compressed-as-i32.parquet", 7)],
)
def test_a_page_pyarrow_may_decompress_is_sized_as_decompressed(name: str, column: int) -> None:
    """A V2 page saying it is not compressed, in a compressed chunk, whose bytes read as
    two empty runs as they lie and as real lengths decompressed: pyarrow decompresses it
    (an old parquet-cpp's file; ``is_compressed`` written as an i32, which Thrift's C++
    reader skips). The walk said 0 bytes where pyarrow decodes 1 MiB (a larger copy: 2.1
    GB peak for the hunt, 4.75 GB)."""
    path = CRAFTED / name
    parquet = pq.ParquetFile(path)
    values = parquet.read_row_group(0, [parquet.schema.column(column).path]).column(0)
    lengths = [len(text) for text in values.to_pylist()]
    assert sum(lengths) >= 1 << 20
    metadata = parquet.metadata
    with pa.OSFile(str(path)) as source:
        chunk = check_pages(source, metadata, [column], name)[0, column]
    assert chunk.whole is not None and chunk.whole.decoded >= sum(lengths)
    assert chunk.prefixed >= max(lengths)


def test_lengths_a_page_claims_count_as_its_room() -> None:
    """pyarrow holds 4 bytes for each length a page's runs claim, whatever its values:
    a 407-byte file of one value whose runs claim 2**28 lengths each took 2.2 GB to read.
    Its row group is refused, as one of pages too large."""
    path = CRAFTED / "lengths-claimed.parquet"
    with pa.OSFile(str(path)) as source, pytest.raises(InputError, match="pages too large"):
        check_pages(source, pq.ParquetFile(path).metadata, [0], "x.parquet")


def test_the_walk_decompresses_within_its_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A walk decompresses shared-prefix pages up to 64 MiB and 16 times the file, then
    refuses the file: 200 pages of 1.9 KB of zstd, each 60 MiB of bytes pyarrow refuses,
    took 7.5 s to walk, and pages skipped past the room let a later one claim 2**28
    lengths (2.26 GB from a 7 KB file)."""
    from egress_offline.readers import parquet_pages  # noqa: PLC0415

    path = tmp_path / "x.parquet"
    texts = [f"C:\\{i % 7}" * 5 for i in range(4_000)]
    pq.write_table(pa.table({"t": texts}), path, use_dictionary=False, data_page_size=512,
                   column_encoding={"t": "DELTA_BYTE_ARRAY"}, row_group_size=1_000)  # fmt: skip
    assert all(found is not None for found in _walked(path))
    monkeypatch.setattr(parquet_pages, "_DECOMPRESS_ROOM", 4_096)
    monkeypatch.setattr(parquet_pages, "_DECOMPRESS_TIMES", 0)
    refused = r"^x.parquet: row group \d+, column t: its texts of shared prefixes \(DELTA"
    with pytest.raises(InputError, match=refused + r"_BYTE_ARRAY\) decompress to more than 0 MiB"):
        _walked(path)


def _with_codec(path: Path, written: str, codec: int) -> Path:
    """A one-column file of shared-prefix texts written with ``written``, its footer then
    saying codec ``codec``: the column's codec follows its path ("t") in the footer."""
    pq.write_table(pa.table({"t": ["a", "ab"]}), path, use_dictionary=False,
                   column_encoding={"t": "DELTA_BYTE_ARRAY"}, compression=written)  # fmt: skip
    data = bytearray(path.read_bytes())
    length = int.from_bytes(data[-8:-4], "little")
    at = data[-8 - length : -8].index(b"\x18\x01t\x15") + 4
    data[len(data) - 8 - length + at] = codec * 2  # zigzag
    path.write_bytes(bytes(data))
    return path


def test_a_codec_whose_lengths_cannot_be_counted_is_refused(tmp_path: Path) -> None:
    """Shared-prefix pages compressed with a codec not read here cannot be counted: the
    file is refused, not read with lengths uncounted (a 2.7 KB file claiming 2**28
    lengths took 2.26 GB). The codec is read from the footer's bytes: pyarrow's
    ``ColumnChunkMetaData.compression`` aborts the process on a value it does not know
    (8)."""
    path = _with_codec(tmp_path / "x.parquet", "zstd", 8)
    with pytest.raises(
        InputError,
        match=r"^x.parquet: row group 0, column t: its texts of shared prefixes \(DELTA_BYTE_ARRAY\) are compressed with UNKNOWN, which is not read here",
    ):
        _walked(path)


def test_hadoops_lz4_is_read_as_arrow_reads_it(tmp_path: Path) -> None:
    """Parquet's codec 5 (Hadoop's frames of LZ4 blocks, else one raw block, as Arrow's
    ``Lz4HadoopCodec`` reads them): the pages are read and sized as any other."""
    path = _with_codec(tmp_path / "x.parquet", "lz4", 5)
    assert pq.read_table(path).column(0).to_pylist() == ["a", "ab"]
    assert _walked(path) == [(3, 2)]


def test_a_data_header_given_twice_is_one_of_both() -> None:
    """As Thrift's C++ reader merges a struct given twice (a crafted V2 header said "not
    compressed" in a first copy, its counts in a second), so does the walk; a bool field
    written as another type is skipped, as there."""
    v2 = bytes([0x15, 0x06, 0x15, 0xC8, 0x01, 0x15, 0x64])  # a V2 page, 100 bytes, 50
    first = bytes([0x5C, 0x72, 0x00])  # field 8: is_compressed false
    second = bytes([0x0C, 0x10, 0x15, 0x14, 0x35, 0x0E, 0x00])  # field 8 again: 10, encoding 7
    page = page_header(v2 + first + second + b"\x00")
    assert (page.values, page.encoding, page.data) == (10, 7, {7: 0, 1: 10, 4: 7})
    as_i32 = bytes([0x5C, 0x75, 0x00, 0x00])  # field 7 as an i32 0: skipped
    assert page_header(v2 + as_i32 + b"\x00").data == {}


@pytest.mark.parametrize(
    ("name", "why"),
    [("hadoop-lz4-short-frame.parquet", "a Hadoop LZ4 frame that decompresses short"),
     ("run-of-two-byte-blocks.parquet", "a first run of 2**32 lengths in two-byte blocks")],
    ids=["short frame", "two-byte blocks"],
)  # fmt: skip
def test_crafted_shared_prefix_pages_are_refused_at_once(name: str, why: str) -> None:
    """Found by a second attacker's pass (stop 40). A Hadoop LZ4 page whose frame
    decompresses to less than it says is read by Arrow as one raw block, where its runs
    claim 2**28 - 1 lengths each (3.2 KB: 2.19 GB, exit 0): it is read both ways here,
    as ``pa.decompress`` gives the size asked for whatever the block holds. A first run
    claiming more lengths than its page's values is not walked block by block (4.8 KB:
    27.5 s), and its page counts as claiming all."""
    path = CRAFTED / name
    columns = pq.ParquetFile(path).metadata.num_columns
    with pa.OSFile(str(path)) as source, pytest.raises(InputError, match="pages too large"):
        check_pages(source, pq.ParquetFile(path).metadata, list(range(columns)), why)
