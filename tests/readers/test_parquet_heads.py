"""The lengths a page of texts stored with their lengths first (``DELTA_LENGTH_BYTE_ARRAY``)
claims, read from the page's first bytes (``readers/parquet_heads.py``): the partial
decompressors give exactly what pyarrow's whole ones give, the walk counts every page a
real writer writes exactly, and a page claiming more lengths than it holds is refused
before pyarrow holds 4 bytes for each."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from egress_offline.cli import app
from egress_offline.errors import InputError
from egress_offline.readers import parquet_heads, parquet_pages
from egress_offline.readers.parquet_pages import check_pages
from egress_offline.readers.parquet_prefixes import _varint_bytes
from egress_offline.readers.parquet_prefixes import compact_struct as _struct
from tests.helpers import EVERY_READING_COMMAND

# Parquet's codec values and the names the page walk reads them by
CODECS = {"UNCOMPRESSED": 0, "SNAPPY": 1, "GZIP": 2, "BROTLI": 4, "LZ4_HADOOP": 5, "ZSTD": 6,
          "LZ4_RAW": 7}  # fmt: skip
_I32, _I64, _BINARY, _LIST, _STRUCT = 5, 6, 8, 9, 12
# texts that compress into literals and copies of every length and distance
DATA = st.lists(
    st.one_of(st.binary(min_size=1, max_size=70), st.sampled_from([b"a" * 300, b"C:\\Win"])),
    max_size=60,
).map(b"".join)


def _compressed(data: bytes, compression: str) -> bytes:
    if compression == "UNCOMPRESSED":
        return data
    if compression == "LZ4_HADOOP":  # Hadoop's frame: sizes, big-endian, then a raw block
        block = pa.compress(data, codec="lz4_raw", asbytes=True)
        return len(data).to_bytes(4, "big") + len(block).to_bytes(4, "big") + block
    return pa.compress(data, codec=compression.lower(), asbytes=True)


@settings(max_examples=60, deadline=None)
@given(data=DATA, compression=st.sampled_from(sorted(CODECS)), want=st.integers(0, 2_000),
       cut=st.integers(0, 3_000))  # fmt: skip
def test_a_head_is_the_start_of_the_whole_decompression(
    data: bytes, compression: str, want: int, cut: int
) -> None:
    """Every decoder, given the whole stream, gives its first ``want`` bytes (all of it
    where it is shorter); given the stream cut short, the same or "short", never other
    bytes."""
    raw = _compressed(data, compression)
    for decoder in parquet_heads._decoders(compression)[:1]:
        assert decoder(raw, want) == data[:want]
        try:
            head = decoder(raw[:cut], want)
        except parquet_heads._Short:
            continue
        assert data.startswith(head)
        assert len(head) == min(want, len(data)) or cut < len(raw)


def test_zstd_is_given_a_block_at_a_time_and_reads_frames_on() -> None:
    data = bytes(range(256)) * 2_000
    raw = pa.compress(data, codec="zstd", asbytes=True)
    assert parquet_heads._zstd(raw, 40) == data[:40]
    second = pa.compress(b"tail", codec="zstd", asbytes=True)
    first = pa.compress(b"head", codec="zstd", asbytes=True)
    assert parquet_heads._zstd(first + second, 8) == b"headtail"  # as pyarrow reads them


@pytest.mark.parametrize(
    ("compression", "raw"),
    [("SNAPPY", b"\x0a\x05\x01\x00"), ("LZ4_RAW", b"\x0f\x00\x00"), ("SNAPPY", b"\x0a\x01")],
    ids=["a copy before any byte", "a copy from nothing", "a copy from 0 back"],
)
def test_a_stream_that_does_not_decompress_is_damaged(compression: str, raw: bytes) -> None:
    decoder = parquet_heads._decoders(compression)[0]
    with pytest.raises((ValueError, parquet_heads._Short)):
        decoder(raw, 10)


def _run(count: int, first: int = 0, blocks: int = 0) -> bytes:
    """A ``DELTA_BINARY_PACKED`` run claiming ``count`` lengths, with ``blocks`` blocks of
    2**27 lengths of width 0 (a few bytes each)."""
    head = _varint_bytes(1 << 27) + _varint_bytes(1) + _varint_bytes(count)
    return head + _varint_bytes(first << 1) + b"\x00\x00" * blocks


def _dlba_page(values: bytes, compression: str, version: int, levels: bytes = b"",
               trailing: bytes = b"") -> bytes:  # fmt: skip
    """A ``DELTA_LENGTH_BYTE_ARRAY`` data page of one value, ``values`` its bytes past its
    definition levels ``levels`` (none: a required column), ``trailing`` after its
    compressed bytes."""
    rle = len(levels).to_bytes(4, "little") + levels if levels else b""
    if version == 1:
        body = _compressed(rle + values, compression) + trailing
        data = _struct((1, _I32, 1), (2, _I32, 6), (3, _I32, 3), (4, _I32, 3))
        return _struct((1, _I32, 0), (2, _I32, len(rle + values)), (3, _I32, len(body)),
                       (5, _STRUCT, data)) + body  # fmt: skip
    body = levels + _compressed(values, compression) + trailing
    data = _struct((1, _I32, 1), (2, _I32, 0), (3, _I32, 1), (4, _I32, 6),
                   (5, _I32, len(levels)), (6, _I32, 0))  # fmt: skip
    return _struct((1, _I32, 3), (2, _I32, len(levels + values)), (3, _I32, len(body)),
                   (8, _STRUCT, data)) + body  # fmt: skip


def _dlba_file(values: bytes, compression: str, version: int, levels: bytes = b"") -> bytes:
    """A Parquet file of one BYTE_ARRAY column (optional where ``levels`` are given) of
    one :func:`_dlba_page`."""
    page = _dlba_page(values, compression, version, levels)
    return _one_column([page], compression, optional=bool(levels))


def _one_column(pages: list[bytes], compression: str, *, optional: bool = False,
                created_by: bytes | None = None, chunk: int | None = None,
                values: int | None = None) -> bytes:  # fmt: skip
    """A Parquet file of one BYTE_ARRAY column whose one chunk is ``pages``, its footer
    saying it takes ``chunk`` bytes and holds ``values`` values (by default, theirs: a
    value each)."""
    body = b"".join(pages)
    size = len(body) if chunk is None else chunk
    values = len(pages) if values is None else values
    meta = _struct(
        (1, _I32, 6), (2, _LIST, (_I32, [6])), (3, _LIST, (_BINARY, [b"t"])),
        (4, _I32, CODECS[compression]), (5, _I64, values), (6, _I64, size), (7, _I64, size),
        (9, _I64, 4),
    )  # fmt: skip
    column = _struct((2, _I64, 4), (3, _STRUCT, meta))
    group = _struct((1, _LIST, (_STRUCT, [column])), (2, _I64, size), (3, _I64, values))
    root = _struct((4, _BINARY, b"schema"), (5, _I32, 1))
    leaf = _struct((1, _I32, 6), (3, _I32, 1 if optional else 0), (4, _BINARY, b"t"))
    fields = [(1, _I32, 1), (2, _LIST, (_STRUCT, [root, leaf])), (3, _I64, values),
              (4, _LIST, (_STRUCT, [group]))]  # fmt: skip
    if created_by is not None:
        fields.append((6, _BINARY, created_by))
    footer = _struct(*fields)
    return b"PAR1" + body + footer + len(footer).to_bytes(4, "little") + b"PAR1"


def _check(path: Path) -> None:
    with pa.OSFile(str(path)) as source:
        check_pages(source, pq.ParquetFile(path).metadata, [0], "x.parquet")


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("compression", sorted(CODECS))
@pytest.mark.parametrize("levels", [b"", b"\x02\x01"], ids=["required", "optional"])
def test_a_page_claiming_more_lengths_than_it_holds_is_refused(
    tmp_path: Path, compression: str, version: int, levels: bytes
) -> None:
    """One text whose run of lengths claims 2**28 - 1 (pyarrow held 1.2 GB to read it, a
    2.7 KB file, on every codec and page version): refused as a row group of pages too
    large, before any page is read. The same page claiming one length is read."""
    path = tmp_path / "x.parquet"
    path.write_bytes(_dlba_file(_run(1, first=1) + b"q", compression, version, levels))
    _check(path)
    assert pq.read_table(path).column(0).to_pylist() == [b"q"]
    path.write_bytes(_dlba_file(_run((1 << 28) - 1, blocks=2) + b"q", compression, version, levels))
    with pytest.raises(InputError, match=r"^x.parquet: row group 0 has pages too large"):
        _check(path)


def _claims(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The claims the walk reads, in page order."""
    seen: list[int] = []
    original = parquet_pages._length_claim

    def spied(*args: object) -> int:
        seen.append(original(*args))  # type: ignore[arg-type]
        return seen[-1]

    monkeypatch.setattr(parquet_pages, "_length_claim", spied)
    return seen


TEXTS = st.lists(st.one_of(st.none(), st.text(alphabet="ab/\\é", max_size=30)), max_size=400)


@settings(max_examples=30, deadline=None)
@given(texts=TEXTS, codec=st.sampled_from(["none", "snappy", "gzip", "brotli", "zstd", "lz4"]),
       version=st.sampled_from(["1.0", "2.0"]), page=st.sampled_from([64, 1 << 20]),
       nested=st.booleans())  # fmt: skip
def test_a_writers_pages_claim_each_its_values(
    tmp_path_factory: pytest.TempPathFactory, texts: list[str | None], codec: str, *,
    version: str, page: int, nested: bool,
) -> None:  # fmt: skip
    """pyarrow's own pages claim one length for each value not null, in all: the walk
    reads each page's claim exactly, past levels of every kind."""
    path = tmp_path_factory.mktemp("heads") / "x.parquet"
    column = (pa.array([[text] for text in texts], pa.list_(pa.string())) if nested
              else pa.array(texts, pa.string()))  # fmt: skip
    pq.write_table(pa.table({"t": column}), path, use_dictionary=False, compression=codec,
                   column_encoding={"t.list.element" if nested else "t": "DELTA_LENGTH_BYTE_ARRAY"},
                   data_page_version=version, data_page_size=page)  # fmt: skip
    encodings = pq.ParquetFile(path).metadata.row_group(0).column(0).encodings
    assert not texts or "DELTA_LENGTH_BYTE_ARRAY" in encodings
    with pytest.MonkeyPatch.context() as monkeypatch:
        seen = _claims(monkeypatch)
        _check(path)
    assert sum(seen) == sum(text is not None for text in texts)


@pytest.mark.parametrize("compression", sorted(CODECS))
def test_levels_past_the_head_are_read_with_the_page_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compression: str
) -> None:
    """Levels longer than a head may reach: the page is decompressed whole, as Arrow
    does (Hadoop's LZ4 too: its claim was taken as 0, 1.18 GB from a 3 KB file), within
    the walk's room, and its claim counted all the same."""
    monkeypatch.setattr(parquet_heads, "HEAD_MOST", 8)
    path = tmp_path / "x.parquet"
    values = _run((1 << 28) - 1, blocks=2) + b"q"
    path.write_bytes(_dlba_file(values, compression, 1, b"\x02\x01"))
    with pytest.raises(InputError, match="pages too large"):
        _check(path)
    if compression == "UNCOMPRESSED":
        return
    monkeypatch.setattr(parquet_pages, "_DECOMPRESS_ROOM", 0)
    monkeypatch.setattr(parquet_pages, "_DECOMPRESS_TIMES", 0)
    with pytest.raises(InputError, match=r"column t: its texts stored with their lengths first"):
        _check(path)


@pytest.mark.parametrize("version", [1, 2])
def test_bytes_after_a_brotli_stream_are_read_as_arrow_reads_them(
    tmp_path: Path, version: int
) -> None:
    """Arrow's brotli ignores bytes after the stream, where a streaming read takes them
    for a second stream cut short: such a page's claim was 0 (1.18 GB from 2.7 KB). A
    stream that ends before its start is read whole, as Arrow reads it."""
    values = _run((1 << 28) - 1, blocks=2) + b"q"
    path = tmp_path / "x.parquet"
    page = _dlba_page(values, "BROTLI", version, trailing=b"\x00")
    path.write_bytes(_one_column([page], "BROTLI"))
    with pytest.raises(InputError, match="pages too large"):
        _check(path)


def test_a_long_run_of_lz4_length_bytes_is_read_at_once() -> None:
    """An LZ4 literal's length goes on while its bytes are 255: 16 MiB of them took 6.9 s
    read a byte at a time (and again at each longer read)."""
    raw = b"\xf0" + b"\xff" * (16 << 20)
    with pytest.raises(parquet_heads._Short):
        parquet_heads._lz4(raw, 40)
    assert parquet_heads._lz4(b"\xf0\xff\x01" + b"x" * 271, 5) == b"xxxxx"


OLD_WRITER = b"parquet-mr version 1.2.8 (build 0123456789abcdef)"


@pytest.mark.parametrize(
    ("created_by", "read_past"),
    [(OLD_WRITER, True), (b"parquet-mr version 1.2 (build x)", True), (b"parquet-mr", True),
     (b"parquet-mr version 1.3-SNAPSHOT (build x)", True), (b"parquet-mr version 2x", True),
     (b"parquet-mr version 4294967295.0.0", True),
     (b"Parquet-MR version 1.2.8 (build x)", False), (b"parquet-mr version 1.2.9 (build x)", False),
     (b"parquet-mr version 1.10.0", False), (b"parquet-cpp-arrow version 26.0.1", False)],
    ids=["parquet-mr 1.2.8", "1.2", "no version", "1.3-SNAPSHOT", "2x", "2**32 - 1",
         "in capitals", "parquet-mr 1.2.9", "1.10.0", "pyarrow"],
)  # fmt: skip
def test_pages_past_a_chunks_end_are_walked_whoever_wrote_the_file(
    tmp_path: Path, created_by: bytes, read_past: bool
) -> None:
    """pyarrow reads up to 100 bytes past a chunk's end in files of parquet-mr before 1.2.9
    (PARQUET-816), pages there included until it has the chunk's values: a page there
    claiming 2**28 - 1 lengths took 2.26 GB, unwalked. Which writers those are is
    Arrow's own reading of ``created_by`` (``1.3-SNAPSHOT`` is 1.0.0 there, ``2x``
    0.0.0, ``4294967295`` -1), so the walk reads on past every chunk whose pages hold
    fewer values than it says: the file is refused whoever wrote it."""
    first = _dlba_page(_run(1, first=2) + b"ok", "UNCOMPRESSED", 1)
    past = _dlba_page(_run((1 << 28) - 1, blocks=2) + b"q", "UNCOMPRESSED", 1)
    path = tmp_path / "x.parquet"
    path.write_bytes(_one_column([first, past], "UNCOMPRESSED", created_by=created_by,
                                 chunk=len(first)))  # fmt: skip
    # what pyarrow reads: the page past the end too, or not
    assert pq.read_table(path).num_rows == (2 if read_past else 1)
    with pytest.raises(InputError, match="pages too large"):
        _check(path)


def test_an_old_writers_file_is_walked_no_further_than_its_values(tmp_path: Path) -> None:
    """Past a chunk's end, the walk stops once it has the chunk's values, as pyarrow
    does (there lies the next chunk), or where no page header can be read."""
    page = _dlba_page(_run(1, first=2) + b"ok", "UNCOMPRESSED", 1)
    path = tmp_path / "x.parquet"
    path.write_bytes(_one_column([page], "UNCOMPRESSED", created_by=OLD_WRITER))
    _check(path)
    path.write_bytes(_one_column([page, b"\xff" * 40], "UNCOMPRESSED", created_by=OLD_WRITER,
                                 chunk=len(page), values=1))  # fmt: skip
    _check(path)
    assert pq.read_table(path).column(0).to_pylist() == [b"ok"]
    path.write_bytes(_one_column([page, page, b"\xff" * 40], "UNCOMPRESSED", created_by=OLD_WRITER,
                                 chunk=len(page), values=3))  # fmt: skip
    _check(path)  # the page past the end walked, then bytes that are no page: as pyarrow
    with pytest.raises(OSError):
        pq.read_table(path)


CRAFTED = Path(__file__).resolve().parent.parent / "fixtures" / "crafted"


@EVERY_READING_COMMAND
def test_a_column_of_fewer_rows_than_its_row_group_is_damage(
    tmp_path: Path, command: list[str]
) -> None:
    """pyarrow stops a column at a data page of no values and reads its row group as 0
    rows, unsaid: the screened read raised a traceback ("generator raised
    StopIteration"), and ``--strict`` read 0 records, exit 0. Both say it now."""
    path = CRAFTED / "rows-fewer-than-said.parquet"
    assert pq.read_table(path, columns=["process.executable"]).num_rows == 0  # footer: 5
    output = [] if command[0] == "pivot" else ["-o", str(tmp_path / "out.csv")]
    args = [*command, str(path), *output]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert (
        "rows-fewer-than-said.parquet: Parquet data cannot be read (row group 0: its "
        "columns" in result.output
    )
    assert "hold 0 rows, not the 5 it says); the copy may be damaged" in result.output
