"""Where a list column's rows start in its pages (``readers/parquet_levels.py``), and how
reads are sized by them (``readers/parquet_reach.py``): a row's levels are counted as
pyarrow reads them, a row whose values reach more than a document may hold is refused
before any page is read, and a few wide rows among many short ones are read in small
reads while the short ones are not."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from egress_offline import HuntSpec, InputError, run_hunt
from egress_offline.cli import app
from egress_offline.readers import parquet_levels, tuning
from egress_offline.readers.parquet_levels import (
    Budget,
    LevelsUnread,
    decoded_zeros,
    hybrid_zeros,
    packed_zeros,
    row_pages,
)
from egress_offline.readers.parquet_pages import _Walk, check_pages, page_header
from egress_offline.readers.parquet_prefixes import _varint_bytes
from egress_offline.readers.parquet_reach import Charge, Reads
from egress_offline.readers.parquet_thrift import Page
from tests.helpers import NOW
from tests.hostile_inputs import level_run, list_file, list_page, one_list_row

KiB = 1 << 10
_I32, _I64, _BINARY, _LIST, _STRUCT = 5, 6, 8, 9, 12


# ------------------------------------------------------------------ hybrid runs of levels


def _packed(values: list[int], width: int = 1) -> bytes:
    """A bit-packed run of ``values`` (padded to groups of 8 with 1s), lowest bits first."""
    padded = values + [1] * (-len(values) % 8)
    bits = sum(value << (i * width) for i, value in enumerate(padded))
    return _varint_bytes(len(padded) // 8 << 1 | 1) + bits.to_bytes(len(padded) * width // 8,
                                                                     "little")  # fmt: skip


def _decoded(stream: bytes, width: int, count: int) -> list[int]:
    """The first ``count`` values of hybrid runs, value by value (the tests' reference),
    as many as they hold where fewer."""
    out: list[int] = []
    at = 0
    while len(out) < count and at < len(stream):
        header = shift = 0
        while True:
            byte = stream[at]
            at += 1
            header |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if header & 1:
            size = (header >> 1) * width
            bits = int.from_bytes(stream[at : at + size], "little")
            out += [bits >> (i * width) & ((1 << width) - 1) for i in range(size * 8 // width)]
            at += size
        else:
            size = (width + 7) // 8
            out += [int.from_bytes(stream[at : at + size], "little")] * (header >> 1)
            at += size
    return out[:count]


def test_runs_of_one_value_and_bit_packed_groups_are_counted() -> None:
    """Rows start at levels of 0: an RLE run counts whole, a bit-packed run its zeros,
    a padded last group only as far as the page's values (here 13 of 16)."""
    stream = level_run(0, 3) + level_run(1, 5) + _packed([0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0])
    assert hybrid_zeros(stream, 1, 21, Budget()) == 3 + 6
    assert hybrid_zeros(stream, 1, 20, Budget()) == 3 + 5  # the last value not read
    assert hybrid_zeros(stream, 1, 4, Budget()) == 3  # a run read in part
    assert decoded_zeros([(stream, 21), (stream, 4)], 1) == [9, 3]
    wide = level_run(2, 4, 2) + _packed([0, 3, 2, 0, 1], 2)
    assert hybrid_zeros(wide, 2, 9, Budget()) == 2
    assert decoded_zeros([(wide, 9)], 2) == [2]


@pytest.mark.parametrize("piece", [1, 1024], ids=["a piece at a time", "summed along"])
def test_pages_decoded_together_are_each_counted(monkeypatch: pytest.MonkeyPatch,
                                                 piece: int) -> None:  # fmt: skip
    """Pages decoded in one file, across its reads (of 4 values here)."""
    monkeypatch.setattr(parquet_levels, "_PASS_VALUES", 4)
    monkeypatch.setattr(parquet_levels, "_PIECE_VALUES", piece)
    pages = [(level_run(0, 3) + level_run(1, 4), 7), (_packed([1, 0, 0, 1, 0]), 5),
             (level_run(0, 1), 1), (level_run(1, 9), 9)]  # fmt: skip
    assert decoded_zeros(pages, 1) == [3, 3, 1, 0]


def test_long_runs_are_counted_a_run_at_a_time() -> None:
    """A page's levels of more values than 256 a byte are long runs, counted here a run
    at a time: pyarrow decodes every value (a run of 2**30 in 5 bytes)."""

    waiting = parquet_levels._Waiting(1, Budget())
    waiting.add((0, 1), level_run(0, 1 << 30), 1 << 30)
    waiting.add((1, 1), level_run(0, 2) + level_run(1, 3), 5)
    assert sorted(waiting.counted()) == [((0, 1), 1 << 30), ((1, 1), 2)]


@pytest.mark.parametrize(
    ("stream", "count"),
    [
        (level_run(0, 2), 3),  # ends before the page's values
        (level_run(0, 0) + level_run(1, 3), 3),  # a run of no values
        (_varint_bytes(1) + level_run(1, 3), 3),  # a bit-packed run of no groups
        (_varint_bytes(2 << 1 | 1) + b"\x01", 12),  # a bit-packed run past the levels
        (b"\x80\x80", 3),  # a run header past the levels
        (b"", 1),
    ],
    ids=["short", "empty RLE run", "empty bit-packed run", "packed past", "header", "none"],
)
def test_levels_that_are_not_as_pyarrow_reads_them_are_not_counted(
    stream: bytes, count: int
) -> None:
    """pyarrow refuses such a page ("Number of decoded rep / def levels do not match"),
    and so does its decoder of indices, which counts them here."""
    with pytest.raises(LevelsUnread):
        hybrid_zeros(stream, 1, count, Budget())
    with pytest.raises((ValueError, OSError, LevelsUnread)):
        decoded_zeros([(stream, count)], 1)


def test_runs_past_the_walks_budget_are_not_counted() -> None:
    stream = level_run(0, 1) * 10
    budget = Budget(runs=9)
    with pytest.raises(LevelsUnread, match="more runs"):
        hybrid_zeros(stream, 1, 10, budget)
    assert hybrid_zeros(stream, 1, 10, Budget(runs=10)) == 10


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 3),
    runs=st.lists(st.tuples(st.booleans(), st.integers(1, 40), st.integers(0, 7)), min_size=1,
                  max_size=30),
    seed=st.integers(0, 1 << 16),
)  # fmt: skip
def test_levels_decoded_by_pyarrow_and_counted_here_agree(
    width: int, runs: list[tuple[bool, int, int]], seed: int
) -> None:
    """Every stream of runs: pyarrow's decoding (as indices into a dictionary) and the
    count here, a run at a time, give the zeros of the value-by-value reading."""
    rnd = random.Random(seed)
    stream = b""
    for packed, count, drawn in runs:
        value = drawn & ((1 << width) - 1)
        if packed:
            stream += _packed([rnd.choice([0, value]) for _ in range(count)], width)
        else:
            stream += level_run(value, count, width)
    total = len(_decoded(stream, width, 1 << 30)) if stream else 0
    count = rnd.randint(1, total)
    expected = _decoded(stream, width, count).count(0)
    assert hybrid_zeros(stream, width, count, Budget()) == expected
    assert decoded_zeros([(stream, count), (stream, total)], width) == [
        expected, _decoded(stream, width, total).count(0)]  # fmt: skip


def test_bit_packed_values_are_counted_a_piece_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Integers of at most ``_PACKED_STEP`` times the width, the padding left out."""
    values = [0, 1, 2, 3, 0, 0, 3, 1, 0, 2, 1] * 7
    bits = sum(value << (2 * i) for i, value in enumerate(values))
    packed = bits.to_bytes(-(-len(values) * 2 // 8) + 1, "little")
    for step in (1, 2, 3, 64 << 10):
        monkeypatch.setattr(parquet_levels, "_PACKED_STEP", step)
        monkeypatch.setattr(parquet_levels, "_MASKS", {})
        assert packed_zeros(packed, 2, len(values)) == values.count(0)
        assert packed_zeros(packed, 2, 9) == values[:9].count(0)


def test_pages_that_start_no_row_continue_the_row_before_them() -> None:
    """Pages before the first start are the first row's; a chunk of none is one row."""
    runs = [(1, 10), (1, 20), (5, 30), (1, 40), (1, 50)]
    assert row_pages(runs, [0, 2, 0, 3, 0]) == ((2, 60, 3), (3, 90, 2))
    assert row_pages(runs, [1, 1, 1, 1, 1]) == tuple((1, size, 1) for _, size in runs)
    assert row_pages(runs, [0] * 5) == ((1, 150, 5),)
    assert row_pages([], []) == ()


# ------------------------------------------------------------------------ real writers


@pytest.mark.parametrize("version", ["1.0", "2.0"])
@pytest.mark.parametrize("compression", ["none", "snappy", "zstd", "gzip", "lz4", "brotli"])
def test_the_rows_of_a_pyarrow_files_pages_are_counted(tmp_path: Path, compression: str,
                                                       version: str) -> None:  # fmt: skip
    """pyarrow keeps a row in one page: each page's starts are its rows, as a V2 page's
    header says (its ``num_rows``), and they come to the row group's."""
    rnd = random.Random(3)
    rows = [[f"v{rnd.randint(0, 9)}" * rnd.randint(1, 30) for _ in range(rnd.randint(0, 12))]
            for _ in range(20_000)]  # fmt: skip
    nested = [[row[:2], [], row[2:]] for row in rows]
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"a": pa.array(rows, pa.list_(pa.string())),
                             "b": pa.array(nested, pa.list_(pa.list_(pa.string())))}),
                   path, compression=compression, data_page_version=version, use_dictionary=False,
                   data_page_size=8 << 10)  # fmt: skip
    metadata = pq.ParquetFile(path).metadata
    with pa.OSFile(str(path)) as source:
        walk = _Walk(source, source.size())
        for index in (0, 1):
            chunk = metadata.row_group(0).column(index)
            column = metadata.schema.column(index)
            pages = _pages(source, chunk)
            width = column.max_repetition_level.bit_length()
            found = parquet_levels.chunk_starts(pages, walk, width,
                                                lambda index=index: walk.codec(0, index))  # fmt: skip
            assert sum(found) == 20_000
            assert len(found) > 10
            if version == "2.0":
                assert list(found) == [(page.data or {})[3] for _, page in pages]


def _pages(source: pa.NativeFile, chunk: pq.ColumnChunkMetaData) -> list[tuple[int, Page]]:
    at, pages = chunk.data_page_offset, []
    while at < chunk.data_page_offset + chunk.total_compressed_size:
        page = page_header(source.read_at(1 << 16, at))
        pages.append((at, page))
        at += page.header + page.compressed
    return pages


# --------------------------------------------------------- a list column of crafted pages


@pytest.mark.parametrize("version", [1, 2])
def test_a_row_larger_than_a_document_may_be_is_refused_before_any_page_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: int
) -> None:
    """One row of a list of 40 values of 40 MiB, each its own page, is 55 KB of zstd:
    pyarrow holds the row whole however few rows it is asked for (over 3 GB), where
    each page is within the room. A row whose values in a column come to more than
    LINE_LIMIT (Elasticsearch's 100 MB) besides its largest page is refused. Here 20
    values of 64 KiB and a limit of 1 MiB."""
    path = one_list_row(tmp_path / "x.parquet", 20, 64 * KiB, version=version)
    monkeypatch.setattr(tuning, "READ_ROOM", 256 * KiB)
    monkeypatch.setattr(tuning, "LINE_LIMIT", 1 << 20)
    read: list[object] = []
    real = pq.ParquetFile.iter_batches

    def spied(self: object, *args: object, **options: object) -> object:
        if "columns" not in options:  # the levels' own file (``decoded_zeros``)
            return real(self, *args, **options)  # type: ignore[arg-type]
        read.append(options["columns"])
        return iter(())

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spied)
    with pytest.raises(InputError) as caught:
        run_hunt([str(path)], HuntSpec(now=NOW))
    with pa.OSFile(str(path)) as source:  # each page as pyarrow holds it
        chunk = pq.ParquetFile(path).metadata.row_group(0).column(0)
        sizes = [max(page.decompressed, page.compressed) for _, page in _pages(source, chunk)]
    # levels (V1: each with its length), the text's length and its 4 digits and 64 KiB
    assert sizes[1] == (12 if version == 1 else 4) + 4 + 4 + 64 * KiB
    assert str(caught.value) == (
        f"{path}: row group 0 has a row too large to read within bounds: its values in "
        f"event.category come to {sum(sizes):,} bytes decompressed in 21 pages, over "
        f"1 MiB besides the largest ({max(sizes):,}), and pyarrow holds a row whole; no export "
        "holds such a row (Elasticsearch refuses a document over 100 MB): write the file "
        "again without it"
    )
    assert read == []
    result = CliRunner().invoke(app, ["hunt", str(path), "--now", "2024-05-01T12:00:00Z"])
    assert result.exit_code == 1
    assert [line for line in result.output.splitlines() if line.startswith("Error:")] == [
        f"Error: {caught.value}"]  # fmt: skip
    assert "Traceback" not in result.output


def test_pages_whose_levels_cannot_be_counted_start_no_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Levels past a page's first 64 KiB are read with the page decompressed whole,
    within the room a walk may decompress: an attacker's pages that each hold 40,000
    empty texts before their long one spend it, and taken to hold the chunk's mean of
    values, the row was read whole. Pages whose levels are not counted are taken to
    start no row: the row is refused all the same. Here every page but the first
    starts a row, but only the first two are counted within a room of 512 KiB."""
    pages = [list_page([b"network"], level_run(0, 1))]
    for i in range(20):
        texts = [b"%04d" % i + b"x" * 64 * KiB, *[b""] * 40_000]
        pages.append(list_page(texts, level_run(0, 1) + level_run(1, 1) * 40_000))
    path = list_file(tmp_path / "x.parquet", pages, 21, 1 + 20 * 40_001)
    monkeypatch.setattr(tuning, "READ_ROOM", 256 * KiB)
    monkeypatch.setattr(tuning, "LINE_LIMIT", 1 << 20)
    monkeypatch.setattr("egress_offline.readers.parquet_pages._DECOMPRESS_ROOM", 512 * KiB)
    monkeypatch.setattr("egress_offline.readers.parquet_pages._DECOMPRESS_TIMES", 0)
    with pa.OSFile(str(path)) as source, pytest.raises(InputError, match="a row too large"):
        check_pages(source, pq.ParquetFile(path).metadata, [0], "x.parquet")
    monkeypatch.setattr("egress_offline.readers.parquet_pages._DECOMPRESS_ROOM", 64 << 20)
    with pa.OSFile(str(path)) as source:
        sizes = check_pages(source, pq.ParquetFile(path).metadata, [0], "x.parquet")
    assert sizes[0, 0].starts == (1,) * 21


def test_a_row_within_a_document_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """6 values of 64 KiB: 384 KiB, 320 besides the largest page, within 512 KiB."""
    path = one_list_row(tmp_path / "x.parquet", 6, 64 * KiB)
    monkeypatch.setattr(tuning, "READ_ROOM", 256 * KiB)
    monkeypatch.setattr(tuning, "LINE_LIMIT", 512 * KiB)
    with pa.OSFile(str(path)) as source:
        sizes = check_pages(source, pq.ParquetFile(path).metadata, [0], "x.parquet")
    assert sizes[0, 0].starts == (1, 0, 0, 0, 0, 0, 0)
    assert pq.read_table(path).column(0).to_pylist()[0][0] == "network"


# ------------------------------------------------------------------------------ reads


def test_a_read_is_charged_the_pages_its_rows_reach() -> None:
    """A list column's pages in rows: a read of R rows reaches the pages of R + 1 (its
    last row may run on into the page where the next starts). 10,000 short rows in a
    page of 100 KB, then 30 rows of 40 MiB, then 10,000 short ones; the room 64 MiB and
    the largest page, 40 MiB: a read of one wide row reaches the next one's page too, 80
    MiB, and of two, 120: one row at a time fits wherever a read starts. Each read is
    sized where it starts: 4,096 short rows at once, one wide one."""
    pages = ((10_000, 100_000), *((1, 40 << 20),) * 30, (10_000, 100_000))
    reads = Reads([Charge(1, 1, pages, 40 << 20, exact=True)], 9, 4_096)
    assert reads.rows == 1
    assert reads.varies
    assert reads.at(0) == 4_096
    assert reads.at(6_000) == 4_001  # up to the first wide row, and the second's page
    assert reads.at(10_000) == reads.at(10_010) == 1
    assert reads.at(10_029) == reads.at(10_030) == 4_096  # the last wide row, then short
    assert reads.at(20_029) == 4_096  # past the last row: nothing more
    # taken to hold the chunk's mean of values (two), a read reaches two values a row
    mean = Reads([Charge(2, 0, pages, 40 << 20)], 9, 4_096)
    assert mean.rows == 1
    assert not mean.varies


def test_wide_rows_among_short_ones_are_read_a_few_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40,000 rows whose category is ``network``, but for 30 of them in a row holding 64
    values of 4 KiB (256 KiB, each row a page): taken to hold the mean of values a row
    (two), a read of 4,096 rows took all 30 at once, 7.5 MiB past a room of 1 MiB. Told
    apart by their levels, a read of them takes as many as fit, and a read of the short
    rows 4,096."""
    thin = 20_000
    cats = ([["network"]] * thin + [[f"{r}-{v}" + "x" * 4096 for v in range(64)]
                                    for r in range(30)] + [["network"]] * thin)  # fmt: skip
    rows = len(cats)
    table = pa.table({
        "@timestamp": ["2024-05-01T11:00:00.000Z"] * rows,
        "host.os.family": ["windows"] * rows,
        "event.category": pa.array(cats, pa.list_(pa.string())),
        "event.action": ["disconnect_received"] * rows,
        "destination.ip": ["8.8.8.8"] * rows,
        "process.entity_id": [f"E{i % 3}" for i in range(rows)],
        "source.bytes": [1] * rows,
    })  # fmt: skip
    path = tmp_path / "x.parquet"
    pq.write_table(table, path, use_dictionary=["@timestamp", "host.os.family", "event.action",
                                                "destination.ip", "process.entity_id"],
                   data_page_size=64 << 10, write_batch_size=64)  # fmt: skip
    monkeypatch.setattr(tuning, "READ_ROOM", 1 << 20)
    held: list[tuple[int, int]] = []
    real = pq.ParquetFile.iter_batches

    def spied(self: object, *args: object, **options: object) -> object:
        for read in real(self, *args, **options):  # type: ignore[arg-type]
            if "event.category" in read.schema.names:
                held.append((read.num_rows, read.column("event.category").nbytes))
            yield read

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spied)
    result = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1))
    assert sorted(result.rows["total_bytes_out"].to_list()) == [13_333, 13_333, 13_334]
    wide = [size for _, size in held]
    # the room, a page of each column, and a row's offsets and validity
    assert max(wide) < (1 << 20) + 2 * 263_000
    assert max(count for count, _ in held) == 4_096
