"""The page-header check (readers/parquet_pages): every page of real writers' files is
walked exactly, and a row group whose pages would decompress past the room is refused
before any page is read."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from egress_offline import HuntSpec, InputError, run_hunt
from egress_offline.cli import app
from egress_offline.readers import parquet_pages, parquet_thrift, tuning
from egress_offline.readers.parquet_pages import PageError, check_pages, page_header
from tests.helpers import NOW
from tests.hostile_inputs import dictionary_entries, parquet_rows

MiB = 1 << 20


def _table(rows: int = 3_000) -> pa.Table:
    return pa.table(
        {
            "@timestamp": [f"2024-05-01T11:{i % 60:02d}:00Z" for i in range(rows)],
            "event.action": ["disconnect_received", "connection_attempted"] * (rows // 2),
            "event.category": [["network"]] * rows,
            "source.bytes": list(range(rows)),
            "flag": [i % 3 == 0 for i in range(rows)],
            "maybe": [None if i % 2 else "x" * (i % 50) for i in range(rows)],
        }
    )


WRITERS = {
    "defaults": {},
    "no compression": {"compression": "none"},
    "snappy": {"compression": "snappy"},
    "gzip": {"compression": "gzip"},
    "brotli": {"compression": "brotli"},
    "lz4": {"compression": "lz4"},
    "plain, no statistics": {"use_dictionary": False, "write_statistics": False},
    "data page v2": {"data_page_version": "2.0"},
    "small pages, checksums, page index": {
        "data_page_size": 512, "write_page_checksum": True, "write_page_index": True,
    },
    "delta encodings": {
        "use_dictionary": False,
        "column_encoding": {"source.bytes": "DELTA_BINARY_PACKED",
                            "@timestamp": "DELTA_BYTE_ARRAY"},
    },
}  # fmt: skip


@pytest.mark.parametrize("options", list(WRITERS.values()), ids=list(WRITERS))
def test_every_page_of_a_pyarrow_file_is_walked_to_its_chunk_end(
    tmp_path: Path, options: dict[str, object]
) -> None:
    path = tmp_path / "x.parquet"
    pq.write_table(_table(), path, row_group_size=1_000, **options)  # type: ignore[arg-type]
    metadata = pq.ParquetFile(path).metadata
    with pa.OSFile(str(path)) as source:
        for group in range(metadata.num_row_groups):
            for index in range(metadata.num_columns):
                chunk = metadata.row_group(group).column(index)
                start = chunk.data_page_offset
                if chunk.has_dictionary_page and 0 < chunk.dictionary_page_offset < start:
                    start = chunk.dictionary_page_offset
                at, decompressed = start, 0
                while at < start + chunk.total_compressed_size:
                    page = page_header(source.read_at(1 << 16, at))
                    size, compressed, header = page.decompressed, page.compressed, page.header
                    at += header + compressed
                    decompressed += header + size
                assert at == start + chunk.total_compressed_size  # no header misread
                assert decompressed == chunk.total_uncompressed_size
        check_pages(source, metadata, list(range(metadata.num_columns)), "x.parquet")


def test_a_polars_file_is_checked_and_read(tmp_path: Path) -> None:

    path = tmp_path / "p.parquet"
    pl.from_arrow(_table()).write_parquet(path, row_group_size=700)  # type: ignore[union-attr]
    with pa.OSFile(str(path)) as source:
        metadata = pq.ParquetFile(path).metadata
        check_pages(source, metadata, list(range(metadata.num_columns)), "p.parquet")


def test_pages_past_the_room_are_refused_before_any_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """80 rows of one 1 MiB text, plain: pyarrow writes them in one 80 MiB page (1,900
    such rows, 0.1 MiB of file, took 1.4 GB to read before)."""
    path = parquet_rows(tmp_path / "wide.parquet", 80, executable="C:\\" + "x" * (MiB - 3),
                        dictionary=False, arrow_schema=False)  # fmt: skip
    read: list[object] = []
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", lambda *a, **k: read.append(a))
    with pytest.raises(InputError) as caught:
        run_hunt([str(path)], HuntSpec(now=NOW))
    message = str(caught.value)
    assert message.startswith(f"{path}: row group 0 has pages too large to read within bounds")
    assert "(process.executable: 83,886,407)" in message  # 80 values of 1 MiB, one page
    assert "over 64 MiB; write the file again with smaller pages" in message
    assert read == []
    result = CliRunner().invoke(app, ["hunt", str(path), "--now", "2024-05-01T12:00:00Z"])
    assert result.exit_code == 1
    assert "pages too large to read within bounds" in result.output


def test_pages_within_the_room_are_read(tmp_path: Path) -> None:
    path = parquet_rows(tmp_path / "wide.parquet", 30, executable="C:\\" + "x" * (MiB - 3),
                        dictionary=False, arrow_schema=False)  # fmt: skip
    result = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1))
    assert sorted(result.rows["process.entity_id"].to_list()) == ["E0", "E1", "E2"]


def test_a_damaged_page_header_names_the_row_group_and_column(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pq.write_table(_table(), path, compression="none")
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(1)
    start = chunk.data_page_offset
    if chunk.has_dictionary_page and 0 < chunk.dictionary_page_offset < start:
        start = chunk.dictionary_page_offset
    data = bytearray(path.read_bytes())
    data[start] = 0x1F  # a field of wire type 15: no such type
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as caught:
        run_hunt([str(path)], HuntSpec(now=NOW))
    assert str(caught.value) == (
        f"{path}: Parquet data cannot be read (row group 0, column event.action: not a "
        "page header (wire type 15)); the copy may be damaged, export it again"
    )


@pytest.mark.parametrize(
    ("buffer", "error"),
    [
        (b"\x15\x04\x00", "a page header without its type or sizes"),
        (b"\x15\x00\x15\x03\x15\x02\x00", "a page header with a negative size (-2, 1)"),
        (b"\x16" + b"\xff" * 10 + b"\x01", "not a page header (a varint over 64 bits)"),
    ],
)
def test_page_headers_that_cannot_be(buffer: bytes, error: str) -> None:
    with pytest.raises(PageError, match=f"^{error}$".replace("(", r"\(").replace(")", r"\)")):
        page_header(buffer)


def test_a_dictionary_page_header_says_its_entries() -> None:
    """``DictionaryPageHeader`` (field 7): its entries (1), encoding (2) and whether it is
    sorted (3, a bool, skipped)."""
    dictionary = b"\x4c\x15\x80\x01\x15\x00\x11\x00"  # 64 entries, PLAIN, sorted
    buffer = bytes([0x15, 0x04, 0x15, 0xC8, 0x01, 0x15, 0x64]) + dictionary + b"\x00"
    page = page_header(buffer)
    assert page == parquet_pages.Page(2, 100, 50, len(buffer), 64, 0, {1: 64, 2: 0})


def test_a_dictionary_page_is_charged_for_each_entry_pyarrow_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dictionary page's entries cost pyarrow 20 bytes each beside the page, however
    short: a 4.7 KB file whose dictionary page said 15.7 M empty texts (60 MiB of zero
    lengths, compressed) took 506 MB charged its 60 MiB. Here 60,000 entries in 0.66 MB
    of page are 1.86 MB held, refused within a room of 1 MiB (their page alone fits)."""
    path = dictionary_entries(tmp_path / "x.parquet", 60_000)
    monkeypatch.setattr(tuning, "PAGE_ROOM", MiB)
    with pytest.raises(InputError) as caught:
        run_hunt([str(path)], HuntSpec(now=NOW, threshold=1))
    assert str(caught.value).startswith(
        f"{path}: row group 0 has pages too large to read within bounds: its columns' "
        "largest pages come to "
    )
    assert str(caught.value).endswith(
        "(process.executable's dictionary page and its entries: 1,860,000), over 1 MiB; write "
        "the file again with smaller dictionaries (pyarrow: write_table(..., "
        "dictionary_pagesize_limit=1 << 20))"
    )
    monkeypatch.setattr(tuning, "PAGE_ROOM", 2 * MiB)
    result = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1))
    assert sorted(result.rows["process.executable"].to_list()) == ["0000000", "0000001", "0000002"]


def test_a_dictionary_of_numbers_is_charged_its_bytes_and_of_texts_more(tmp_path: Path) -> None:
    """Each entry of a text dictionary costs pyarrow 20 bytes beside the page; a number's
    entries are its page's bytes (a Polars file of 2 M rows in one row group, its byte
    counts a dictionary of 892,000 entries, was refused when numbers were charged as
    texts)."""
    rows = 50_000
    table = _hunt_table(rows, ["E1"] * rows, [f"C:\\{i:06d}.exe" for i in range(rows)])
    table = table.set_column(8, "source.bytes", pa.array(range(rows), pa.int64()))
    path = tmp_path / "x.parquet"
    pq.write_table(table, path, compression="none", dictionary_pagesize_limit=1 << 30)
    metadata = pq.ParquetFile(path).metadata
    with pa.OSFile(str(path)) as source:
        sizes = check_pages(source, metadata, list(range(metadata.num_columns)), "x.parquet")
    assert sizes[0, 8].dictionary_held == rows * 8  # PLAIN longs: the page, no more
    assert sizes[0, 7].dictionary_held == rows * (4 + 13) + rows * 20  # lengths and texts


def test_a_dictionary_page_of_fewer_than_no_entries_is_damage(tmp_path: Path) -> None:
    path = dictionary_entries(tmp_path / "x.parquet", 64)
    metadata = pq.ParquetFile(path).metadata
    names = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
    chunk = metadata.row_group(0).column(names.index("process.executable"))
    data = bytearray(path.read_bytes())
    header = data[chunk.dictionary_page_offset :]
    at = header.index(b"\x4c\x15\x80\x01")  # its DictionaryPageHeader: 64 entries
    data[chunk.dictionary_page_offset + at + 2] = 0x7F  # -64: zigzag 127
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as caught:
        run_hunt([str(path)], HuntSpec(now=NOW))
    assert str(caught.value) == (
        f"{path}: Parquet data cannot be read (row group 0, column process.executable: a "
        "dictionary page of -64 entries); the copy may be damaged, export it again"
    )


def test_a_header_longer_than_the_first_read_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Page statistics of long texts make headers of kilobytes."""
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"event.action": ["y" * 3_000, "z" * 3_000]}), path,
                   use_dictionary=False)  # fmt: skip
    monkeypatch.setattr(parquet_pages, "_HEADER_FIRST", 16)
    with pa.OSFile(str(path)) as source:
        check_pages(source, pq.ParquetFile(path).metadata, [0], "x.parquet")


def test_the_pages_say_which_chunks_hold_their_values_whole(tmp_path: Path) -> None:
    """A chunk whose every page is a data page of values stored whole (plain, or lengths
    then bytes) has its pages' bytes and values counted from their headers, one of
    values of shared prefixes its values' bytes from their lengths; a chunk with a
    dictionary page has no such bound."""
    path = tmp_path / "x.parquet"
    pq.write_table(_table(), path, row_group_size=1_000, data_page_size=2_048,
                   use_dictionary=["event.action"],
                   column_encoding={"@timestamp": "DELTA_BYTE_ARRAY",
                                    "maybe": "DELTA_LENGTH_BYTE_ARRAY"})  # fmt: skip
    metadata = pq.ParquetFile(path).metadata
    names = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
    with pa.OSFile(str(path)) as source:
        sizes = check_pages(source, metadata, list(range(metadata.num_columns)), "x.parquet")
        for group in range(metadata.num_row_groups):
            found = {name: sizes[group, index] for index, name in enumerate(names)}
            assert found["event.action"].whole is None
            # a dictionary page, whatever the footer says; pages of shared prefixes,
            # their values' bytes exactly, and a bound on the longest: its longest prefix
            # and longest suffix
            assert found["event.action"].dictionary and not found["@timestamp"].dictionary
            stamps = pq.ParquetFile(path).read_row_group(group, ["@timestamp"]).column(0)
            lengths = [len(text.encode()) for text in stamps.to_pylist()]
            assert found["@timestamp"].whole == parquet_pages.PlainPages(sum(lengths), 1_000)
            assert max(lengths) <= found["@timestamp"].prefixed <= 2 * max(lengths)
            assert found["event.action"].prefixed == found["maybe"].prefixed == 0
            for name in ("event.category.list.element", "source.bytes", "flag", "maybe"):
                chunk = metadata.row_group(group).column(names.index(name))
                pages = _pages(source, chunk)
                assert found[name].whole == parquet_pages.PlainPages(
                    sum(page.decompressed for page in pages), chunk.num_values
                )
                whole = found[name].whole
                assert (
                    whole is not None and whole.values == 1_000
                )  # a null, or a list's one value: a level


def _pages(source: pa.NativeFile, chunk: pq.ColumnChunkMetaData) -> list[parquet_pages.Page]:
    at, pages = chunk.data_page_offset, []
    while at < chunk.data_page_offset + chunk.total_compressed_size:
        pages.append(page_header(source.read_at(1 << 16, at)))
        at += pages[-1].header + pages[-1].compressed
    return pages


@pytest.mark.parametrize(
    ("encoding", "room", "largest"),
    [
        ("PLAIN", 64 * MiB, 10_000),
        ("PLAIN", 2 * MiB, 4_096),  # 4,096 rows reach 1.3 MiB of pages; all are 2.7
        ("DELTA_BYTE_ARRAY", 64 * MiB, 10_000),
        ("DELTA_BYTE_ARRAY", MiB, 4_096),
    ],
    ids=[
        "plain, within the room",
        "plain, past it",
        "shared prefixes, within the room",
        "shared prefixes, past it",
    ],
)
def test_plain_texts_are_read_whole_only_when_their_pages_say_they_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str, room: int, largest: int
) -> None:
    """Plain text columns are read a few thousand rows at a time (rows that are short
    first may be long after), unless their pages say that all their values fit
    READ_ROOM: then a batch at a time. 10,000 rows of a 200-byte executable, one row
    group; of shared prefixes (``DELTA_BYTE_ARRAY``) the pages are a few bytes, and their
    lengths say what the values decode to (before stop 39 such a column was read 4,096
    rows at a time, or fewer, however short its values)."""
    from egress_offline.readers import tuning  # noqa: PLC0415

    rows = 10_000
    table = _hunt_table(rows, [f"E{i % 3}" for i in range(rows)], ["C:\\" + "x" * 197] * rows)
    pq.write_table(table, tmp_path / "x.parquet", use_dictionary=False,
                   column_encoding={"process.executable": encoding},
                   data_page_size=64 << 10, write_batch_size=64)  # fmt: skip  # pages of 0.1 MiB
    monkeypatch.setattr(tuning, "READ_ROOM", room)
    reads = _spied_reads(monkeypatch)
    result = run_hunt([str(tmp_path / "x.parquet")], HuntSpec(now=NOW, threshold=1))
    assert sorted(result.rows["total_bytes_out"].to_list()) == [3333, 3333, 3334]
    assert max(reads) == largest


@pytest.mark.parametrize(("kind", "encoding"), [(0, 0), (3, 7)], ids=["v1", "v2"])
def test_a_data_page_is_read_by_the_header_of_its_own_type(kind: int, encoding: int) -> None:
    """A V2 page may also carry a V1 header saying PLAIN: pyarrow decodes it by its V2
    header (here DELTA_BYTE_ARRAY, 7), and so does the walk (an attacker's 18 KB file
    read 65,536 rows of 16 KiB values at once: 2.3 GB)."""
    v1 = b"\x2c\x15\x14\x15\x00\x00"  # field 5: 10 values, PLAIN
    v2 = b"\x3c\x15\x14\x15\x00\x15\x14\x15\x0e\x00"  # field 8: 10 values, encoding 7
    buffer = bytes([0x15, kind * 2, 0x15, 0xC8, 0x01, 0x15, 0x64]) + v1 + v2 + b"\x00"
    page = page_header(buffer)
    data = {1: 10, 2: encoding} if kind == 0 else {1: 10, 3: 10, 4: encoding}  # V2: its rows
    assert page == parquet_pages.Page(kind, 100, 50, len(buffer), 10, encoding, data)


def test_a_floor_past_year_9999_gives_no_statistics_hint(tmp_path: Path) -> None:
    """A text read as epoch milliseconds can raise --now latest's floor past what a
    datetime holds: no hint then (it made the file's Error: line)."""
    from egress_offline.readers.parquet_spans import written_newer  # noqa: PLC0415

    path = tmp_path / "x.parquet"
    pq.write_table(_table(), path)
    parquet = pq.ParquetFile(path)
    assert written_newer(parquet, (0,), ["@timestamp"], 0)
    assert not written_newer(parquet, (0,), ["@timestamp"], 9_999_999_999_999_999)


def test_values_of_shared_prefixes_are_read_as_few_as_their_pages_allow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page of values with shared prefixes (``DELTA_BYTE_ARRAY``) may repeat one long
    text: each value is at most its page long, so a read holds PREFIXED_ROOM over that
    many rows (8,192 rows sharing one 1 MiB text, a 7 KB file, took 7.4 GB read 4,096
    rows at a time). Here 2,048 rows of one 64 KiB executable, read with a 1 MiB room."""
    from egress_offline.readers import tuning  # noqa: PLC0415

    rows, wide = 2_048, 64 * 1024
    table = _hunt_table(rows, ["E1"] * rows, ["x" * wide] * rows)
    path = tmp_path / "x.parquet"
    pq.write_table(table, path, use_dictionary=False,
                   column_encoding={"process.executable": "DELTA_BYTE_ARRAY"})  # fmt: skip
    assert path.stat().st_size < 32 * 1024  # 128 MiB of text
    monkeypatch.setattr(tuning, "PREFIXED_ROOM", MiB)
    reads = _spied_reads(monkeypatch)
    result = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1))
    assert result.rows["total_bytes_out"].to_list() == [rows]
    assert sum(reads) == rows and 0 < max(reads) <= MiB // wide


def _hunt_table(rows: int, entity_ids: list[str], executables: list[str]) -> pa.Table:
    """Rows the default hunt keeps, one byte each, of these processes."""
    return pa.table({
        "@timestamp": ["2024-05-01T11:30:00.000Z"] * rows,
        "event.action": ["disconnect_received"] * rows,
        "host.os.family": ["windows"] * rows,
        "event.category": [["network"]] * rows,
        "destination.ip": ["8.8.8.8"] * rows,
        "destination.address": ["8.8.8.8"] * rows,
        "process.entity_id": entity_ids,
        "process.executable": executables,
        "source.bytes": [1] * rows,
    })  # fmt: skip


def _spied_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of each read of pyarrow's that holds the executable, as they are read."""
    reads: list[int] = []
    real = pq.ParquetFile.iter_batches

    def spied(self: object, *args: object, **options: object) -> object:
        for read in real(self, *args, **options):  # type: ignore[arg-type]
            if "process" in read.schema.names or "process.executable" in read.schema.names:
                reads.append(read.num_rows)
            yield read

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spied)
    return reads


def test_the_columns_read_in_step_keep_each_their_own_batch_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deciding columns and the wanted ones are read in step, each by a reader of its
    own: pyarrow's readers of one file share the batch size last asked for, and once the
    wanted columns were read 65,536 rows at a time, 1 MiB timestamps of shared prefixes
    came 2,047 at a time (9.6 GB for a 7 KB file). Every other row here is kept, every
    other has a 64 KiB timestamp (not a date)."""
    from egress_offline.readers import tuning  # noqa: PLC0415

    rows, wide = 2_048, 64 * 1024
    table = _hunt_table(rows, ["E1"] * rows, ["x"] * rows)
    stamps = ["2024-05-01T11:30:00.000Z" if i % 2 else "x" * wide for i in range(rows)]
    table = table.set_column(0, "@timestamp", pa.array(stamps))
    path = tmp_path / "x.parquet"
    pq.write_table(table, path, use_dictionary=False,
                   column_encoding={"@timestamp": "DELTA_BYTE_ARRAY"})  # fmt: skip
    monkeypatch.setattr(tuning, "PREFIXED_ROOM", MiB)
    stamped: list[int] = []
    real = pq.ParquetFile.iter_batches

    def spied(self: object, *args: object, **options: object) -> object:
        for read in real(self, *args, **options):  # type: ignore[arg-type]
            if "@timestamp" in read.schema.names:
                stamped.append(read.num_rows)
            yield read

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spied)
    result = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1))
    assert result.rows["total_bytes_out"].to_list() == [rows // 2]
    assert 0 < max(stamped) <= MiB // wide


def test_a_dictionary_page_the_walk_finds_is_read_as_a_dictionary(tmp_path: Path) -> None:
    """A footer may leave a chunk's dictionary page unnamed (no dictionary_page_offset)
    while its first page is one: pyarrow reads it, and without ``read_dictionary`` gives
    each row its own copy of the value (a 1 MiB value in every row). The column is read
    as a dictionary when the page walk saw a dictionary page, whatever the footer says:
    here the footer says none, and the walk's word is given for it."""
    from egress_offline.readers import parquet_batches  # noqa: PLC0415

    path = tmp_path / "x.parquet"
    pq.write_table(_hunt_table(8, ["E1"] * 8, ["x"] * 8), path, use_dictionary=False)
    metadata = pq.ParquetFile(path).metadata
    names = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
    index = names.index("process.executable")
    assert not metadata.row_group(0).column(index).has_dictionary_page
    with pa.OSFile(str(path)) as source:
        pages = check_pages(source, metadata, list(range(metadata.num_columns)), "x.parquet")
        plain = parquet_batches.text_reader(source, metadata, ["process.executable"], pages)
        assert plain.read().schema.field("process.executable").type == pa.string()
        pages[0, index] = pages[0, index]._replace(dictionary_at=4, indexed=1)
        reader = parquet_batches.text_reader(source, metadata, ["process.executable"], pages)
        kind = reader.read().schema.field("process.executable").type
        assert pa.types.is_dictionary(kind)
        rows = list(parquet_batches.batches(reader, (0,), ["process.executable"], 100))
        assert rows[0].column("process.executable").to_pylist() == ["x"] * 8


def _with_list(element: int, count: int, body: bytes) -> bytes:
    """A data page header (100 bytes, 50 in the file) with an unknown field 20 that is a
    list of ``count`` elements of wire type ``element``, ``body`` their bytes."""
    known = bytes([0x15, 0x00, 0x15, 0xC8, 0x01, 0x15, 0x64])
    size = bytearray()
    rest = count
    while rest >= 0x80:
        size.append(rest & 0x7F | 0x80)
        rest >>= 7
    size.append(rest)
    return known + bytes([0x09, 40, 0xF0 | element]) + bytes(size) + body + b"\x00"


@pytest.mark.parametrize(
    ("element", "unit"),
    [(5, b"\x00"), (5, b"\x80\x01"), (6, b"\xff\xff\x03"), (3, b"\x07"), (1, b"\x01"),
     (7, b"\x00" * 8), (8, b"\x01x")],
    ids=["i32", "i32 of two bytes", "i64 of three", "byte", "bool", "double", "binary"],
)  # fmt: skip
def test_a_header_skips_long_lists_whole(element: int, unit: bytes) -> None:
    """Fields a header need not hold are skipped by their wire types; a list of scalars at
    once (a crafted header of a million one-byte elements took seconds one at a time),
    a list of binaries one by one."""
    buffer = _with_list(element, 300_000, unit * 300_000)
    page = page_header(buffer)
    assert (page.kind, page.decompressed, page.compressed, page.header) == (0, 100, 50, len(buffer))
    with pytest.raises(parquet_thrift.Short):  # the list runs past the bytes read
        page_header(buffer[: len(buffer) // 2])


def test_a_header_list_over_pyarrows_limit_is_refused() -> None:
    buffer = _with_list(5, 1_000_001, b"\x00" * 1_000_001)
    with pytest.raises(PageError, match=r"^a page header with a list of 1,000,001 elements "):
        page_header(buffer)


def test_a_header_many_chunks_point_at_is_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk reads each header once, wherever it is pointed at from: a crafted file
    whose every chunk points at one header of megabytes took seconds a chunk."""
    path = tmp_path / "x.parquet"
    pq.write_table(_table(), path, row_group_size=1_000)
    metadata = pq.ParquetFile(path).metadata
    read: list[int] = []
    real = parquet_pages._header_at
    monkeypatch.setattr(parquet_pages, "_header_at",
                        lambda source, at: (read.append(at), real(source, at))[1])  # fmt: skip
    with pa.OSFile(str(path)) as source:
        walk = parquet_pages._Walk(source, source.size())
        chunk = metadata.row_group(0).column(0)
        first = parquet_pages._walk(chunk, walk, (0, 1), (0, 0), 20)
        count = len(read)
        assert parquet_pages._walk(chunk, walk, (0, 1), (0, 0), 20) == first
        assert len(read) == count > 0


@pytest.mark.parametrize("large", [False, True], ids=["list_view", "large_list_view"])
def test_list_views_are_read_as_lists(tmp_path: Path, large: bool) -> None:
    """A file whose stored Arrow schema says ``list_view`` (pyarrow writes one for such an
    array) is read as lists: Polars cannot take a view, and the file was refused as
    damaged ("the copy may be damaged")."""
    view = pa.large_list_view(pa.string()) if large else pa.list_view(pa.string())
    rows = 6
    categories = [["network"], ["network"], None, ["network", "x"], [], ["network"]]
    table = _hunt_table(rows, ["E1", "E2", "E1", "E1", "E1", "E2"], ["x.exe"] * rows)
    table = table.set_column(table.schema.get_field_index("event.category"), "event.category",
                             pa.array(categories, type=view))  # fmt: skip
    path = tmp_path / "x.parquet"
    pq.write_table(table, path)
    assert pq.read_schema(path).field("event.category").type == view
    for strict in (False, True):
        result = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1, strict=strict))
        assert dict(result.rows.select("process.entity_id", "total_bytes_out").iter_rows()) == {
            "E1": 1, "E2": 2,
        }  # fmt: skip


def test_a_slice_of_nested_list_views_is_its_rows() -> None:
    from egress_offline.readers.parquet_arrow import as_text as _as_text  # noqa: PLC0415

    inner = pa.array([["a"], None, [], ["b", "c"], ["d"]], type=pa.list_view(pa.string()))
    nested = pa.StructArray.from_arrays([inner], names=["c"], mask=pa.array(
        [False, False, True, False, False]))  # fmt: skip
    table = pa.Table.from_arrays([nested.slice(1, 3)], names=["s"])
    made = _as_text(table)
    assert made.schema.field("s").type == pa.struct([("c", pa.list_(pa.string()))])
    assert made.column("s").to_pylist() == [{"c": None}, None, {"c": ["b", "c"]}]


def test_a_footer_understating_a_chunk_does_not_size_its_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The footer's sizes are the writer's word: where a chunk's pages say how large its
    values are, that counts too (a footer saying 1,000 bytes of 1 GiB of plain pages let
    4,096 rows of 1 MiB be read at once: 2.3 GB from a 741 KB file)."""
    rows, wide = 512, 64 * 1024
    table = _hunt_table(rows, ["E1"] * rows, ["x" * wide] * rows)
    path = tmp_path / "x.parquet"
    pq.write_table(table, path, use_dictionary=False, compression="zstd")
    data = bytearray(path.read_bytes())
    length = int.from_bytes(data[-8:-4], "little")
    footer = bytes(data[-8 - length : -8])
    # the executable's metadata: its path, codec (5 ZSTD: 0x15 0x0c), values (0x16 ...),
    # then its uncompressed size (0x16 varint), said to be 20 bytes
    at = footer.index(b"process.executable\x15\x0c\x16") + len("process.executable") + 2
    at += 1
    while footer[at] >= 0x80:  # the values' count
        at += 1
    at += 1
    assert footer[at] == 0x16
    end = at + 1
    while footer[end] >= 0x80:
        end += 1
    lied = footer[: at + 1] + bytes([40]) + footer[end + 1 :]
    body = bytes(data[: -8 - length])
    path.write_bytes(body + lied + len(lied).to_bytes(4, "little") + b"PAR1")
    column = pq.ParquetFile(path).metadata.row_group(0).column(7)
    assert column.path_in_schema == "process.executable"
    assert column.total_uncompressed_size == 20
    reads = _spied_reads(monkeypatch)
    result = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1))
    assert result.rows["total_bytes_out"].to_list() == [rows]
    assert max(reads) <= (16 << 20) // wide


def test_a_read_takes_as_few_rows_as_the_pages_they_reach_allow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page may hold one long value among pages of short ones, and the footer's sizes
    are averages (and the writer's word): 10,000 rows, 8 of them in a row with an
    executable of 2 MiB, each its own page, were read 4,096 rows at a time past a room of
    8 MiB, the 8 (16 MiB) in one read (an attacker's 87 KB file of 64 values of 40 MiB
    after a short dictionary page: over 3 GB). A read now takes as many rows as the
    pages they reach allow, in the room and what one row may reach (a page): here 4 of
    the long values, 8 MiB."""
    from egress_offline.readers import tuning  # noqa: PLC0415

    rows, long = 10_000, range(5_000, 5_008)
    executables = [f"C:\\{i}" + "x" * (2 << 20) if i in long else "C:\\a.exe" for i in range(rows)]
    path = tmp_path / "x.parquet"
    pq.write_table(_hunt_table(rows, [f"E{i % 3}" for i in range(rows)], executables), path,
                   use_dictionary=False, write_batch_size=1)  # fmt: skip
    monkeypatch.setattr(tuning, "READ_ROOM", 8 << 20)
    held: list[int] = []
    real = pq.ParquetFile.iter_batches

    def spied(self: object, *args: object, **options: object) -> object:
        for read in real(self, *args, **options):  # type: ignore[arg-type]
            if "process.executable" in read.schema.names:
                held.append(read.column("process.executable").nbytes)
            yield read

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spied)
    result = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1))
    assert len(result.rows) == 3 + len(long)
    assert sum(result.rows["total_bytes_out"]) == rows
    assert 8 << 20 < max(held) < 9 << 20


def test_the_pages_a_read_reaches_are_those_of_its_values() -> None:
    """``reach``: a read starting at a page's last value reaches furthest; a list
    column's rows are taken to hold its mean of values where they are not counted."""
    from egress_offline.readers.parquet_reach import Charge, Reads, prefix_sums, reach  # noqa: PLC0415

    def rows_within(runs: list[tuple[int, tuple[tuple[int, int], ...]]], per_row: int,
                    most: int) -> int:  # fmt: skip
        charges = [Charge(each, 0, found, max(size for _, size in found)) for each, found in runs]
        return Reads(charges, per_row, most).rows

    runs = ((5_000, 60_000), *((1, 2 << 20),) * 8, (4_992, 60_000))
    sums = prefix_sums(runs)
    assert [reach(*sums, count) for count in (1, 2, 9, 10)] == [
        2 << 20, 4 << 20, 60_000 + (16 << 20), 120_000 + (16 << 20)]  # fmt: skip
    assert reach(*sums, 20_000) == 120_000 + (16 << 20)
    # the room is READ_ROOM (64 MiB) and each column's largest page
    assert rows_within([(1, runs)], 9, 4_096) == 4_096  # all within the room
    assert rows_within([(1, ((1, 40 << 20),) * 4)], 9, 4_096) == 2  # 80 MiB of 104
    assert rows_within([(1, ((1, 30 << 20),) * 5)], 9, 4_096) == 3  # 90 MiB of 94
    assert rows_within([(2, ((1, 30 << 20),) * 5)], 9, 4_096) == 1  # two a row: 60 of 94
    assert rows_within([(1, ((1, 30 << 20),) * 5), (1, ((3, 30 << 20),))], 9, 4_096) == 3
    # two pages of 33 MiB of short values: every read reaches both, as one row's may
    assert rows_within([(1, ((1_200_000, 33 << 20),) * 2)], 9, 1 << 18) == 1 << 18


def test_pages_one_row_reaches_do_not_make_every_read_one_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any read of two rows may cross a page end of each column: the largest page of
    each is not charged to the room, or every read of a row group could be one row (an
    attacker's 7.6 KB file of 2.4 million rows in two pages of 34 MiB: 400 s, against
    7). Here the executable and the category are pages of 20,000 rows, 240 and 220 KB,
    and the room 512 KiB: a read crossing a page end of each reaches 920 KB, which fits
    the room and one page of each for reads of up to 3,570 rows, not 1. Each read is
    sized where it starts: one that crosses no page end takes 4,096 rows, the most."""
    from egress_offline.readers import tuning  # noqa: PLC0415

    rows = 100_000
    table = _hunt_table(rows, [f"E{i % 3}" for i in range(rows)], ["C:\\a.exe"] * rows)
    pq.write_table(table, tmp_path / "x.parquet",
                   use_dictionary=[name for name in table.column_names
                                   if name != "process.executable"])  # fmt: skip
    monkeypatch.setattr(tuning, "READ_ROOM", 512 << 10)
    reads = _spied_reads(monkeypatch)
    result = run_hunt([str(tmp_path / "x.parquet")], HuntSpec(now=NOW, threshold=1))
    assert sorted(result.rows["total_bytes_out"].to_list()) == [33333, 33333, 33334]
    assert min(reads[:-1]) == 3_570
    assert max(reads) == 4_096
