"""Generators of hostile exports, small for the suite and large for
``benchmarks/hostile.py``: each writes a stream a piece at a time (the large ones are
gigabytes of text), and the same arguments give the same bytes.

Each is what an attacker who plants an export can write: a small compressed file that
expands to gigabytes, a line that never ends, one JSON array of everything, one Parquet
row group of millions of rows, millions of rows that share one long string.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from egress_offline.readers.compression import zstd_module
from tests.helpers import GiB, event

#: The piece of text written at a time.
_PIECE = 4 << 20


def matching(i: int, **overrides: Any) -> bytes:
    """One compact event line the default hunt keeps (at 2024-05-01T11:00Z), of entity
    ``E{i % 3}``, 1 GiB out."""
    doc = event(**{"process.entity_id": f"E{i % 3}", "source.bytes": GiB, **overrides})
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def opener(compression: str) -> Callable[[Path], IO[bytes]]:
    """How a file of that compression is written: gzip at level 1 (the text is
    repetitive: small anyway), zstd at level 3."""
    if compression == "gzip":
        return lambda path: gzip.open(path, "wb", compresslevel=1)
    if compression == "zstd":
        return lambda path: zstd_module().open(path, "wb", level=3)
    return lambda path: path.open("wb")


def write_stream(path: Path, pieces: Iterable[bytes], compression: str = "none") -> Path:
    with opener(compression)(path) as out:
        for piece in pieces:
            out.write(piece)
    return path


def _repeated(unit: bytes, text_bytes: int) -> Iterator[bytes]:
    """``unit`` over and over, about ``text_bytes`` in all, in pieces of whole units."""
    per_piece = max(1, _PIECE // len(unit))
    piece = unit * per_piece
    written = 0
    while written + len(piece) <= text_bytes:
        yield piece
        written += len(piece)
    if written < text_bytes:
        yield unit * max(1, (text_bytes - written) // len(unit))


def invalid_utf8_then_lines(path: Path, text_bytes: int, *, line_bytes: int = 32 << 10) -> Path:
    """gzip: a first line holding one byte that is not UTF-8 (so the careful reader reads
    the file), then ``text_bytes`` of ordinary matching lines of ``line_bytes`` each (the
    first round of lines: E0, E1, E2, each 1 GiB a line)."""
    first = b'{"message":"\xff"}\n'
    line = matching(0)
    pad = line_bytes - len(line) - len(',"message":""')
    unit = b"".join(
        matching(i)[:-2] + b',"message":"' + b"x" * max(0, pad) + b'"}\n' for i in range(3)
    )
    return write_stream(path, [first, *_repeated(unit, text_bytes)], "gzip")


def endless_line(path: Path, text_bytes: int, compression: str) -> Path:
    """One matching line (E0), then a line of ``text_bytes`` that never ends."""
    start = matching(0) + b'{"message":"'
    return write_stream(path, [start, *_repeated(b"A" * 4096, text_bytes)], compression)


def json_array(path: Path, text_bytes: int, compression: str = "zstd") -> Path:
    """One JSON array of matching events (E0, E1, E2 in turn), ``text_bytes`` of it."""
    unit = b"".join(matching(i).rstrip(b"\n") + b",\n" for i in range(3))
    return write_stream(
        path, [b"[\n", *_repeated(unit, text_bytes), matching(0).rstrip(b"\n"), b"\n]\n"],
        compression,
    )  # fmt: skip


def valid_events_bomb(path: Path, text_bytes: int) -> Path:
    """zstd: the same three matching lines over and over (a few KB of zstd a GB)."""
    unit = b"".join(matching(i) for i in range(3))
    return write_stream(path, _repeated(unit, text_bytes), "zstd")


def long_lists(path: Path, text_bytes: int, *, elements: int = 2_001) -> Path:
    """zstd: matching events whose ``source.bytes`` is a list of ``elements``, ``1`` and
    ``null`` by turns (a few bytes of text each, many values once decoded)."""
    values = [1 if i % 2 == 0 else None for i in range(elements)]
    unit = b"".join(matching(i, **{"source.bytes": values}) for i in range(3))
    return write_stream(path, _repeated(unit, text_bytes), "zstd")


def parquet_rows(path: Path, rows: int, *, row_group: int | None = None,
                 executable: str = "C:\\evil.exe", context: str | None = None,
                 short_first: int = 0, dictionary: bool = True,
                 arrow_schema: bool = True, prefixed: bool = False,
                 executables: Any = None) -> Path:  # fmt: skip
    """Parquet of ``rows`` matching events (E0, E1, E2 in turn, 1 byte each), flat dotted
    columns, dictionary encoded: ``row_group`` rows a row group (all in one by default),
    ``executable`` as every row's ``process.executable``; with ``context``, that text as
    every row's ``host.name`` and ``user.name``, and ``destination.port`` 0 to 999 in
    turn. With ``short_first``, that many first rows of each row group have the
    executable ``C:\\a.exe`` (and the host and user ``h``): a reader that sizes its reads
    from a row group's first rows meets the long ones unprepared. ``dictionary=False``
    writes the texts plain, each row its own copy in the file's pages;
    ``arrow_schema=False`` leaves out pyarrow's schema, as writers other than pyarrow
    do, so that a reader decodes dictionary columns to text unless told otherwise;
    ``prefixed`` (with ``dictionary=False``) writes the executable with shared prefixes
    (``DELTA_BYTE_ARRAY``): one long value repeated is its page's few bytes.
    ``executables``, a dictionary array of ``rows``, is the executable column instead,
    its dictionary written whole in one page however large. Built in memory (indices
    only: some 40 bytes a row)."""
    import polars as pl  # noqa: PLC0415
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    zeros = pa.repeat(pa.scalar(0, pa.int32()), rows)
    numbers = pl.int_range(0, rows, dtype=pl.Int32, eager=True)
    # 0 for a row group's first ``short_first`` rows, 1 after them
    late = ((numbers % (row_group or rows)) >= short_first).cast(pl.Int32).to_arrow()

    def constant(value: Any) -> Any:
        return pa.DictionaryArray.from_arrays(zeros, pa.array([value]))

    def after(short: str, value: str) -> Any:
        return pa.DictionaryArray.from_arrays(late, pa.array([short, value]))

    thirds = (numbers % 3).to_arrow()
    table = pa.table(
        {
            "@timestamp": constant("2024-05-01T11:00:00.000Z"),
            "host.os.family": constant("windows"),
            "event.category": constant("network"),
            "event.action": constant("disconnect_received"),
            "destination.ip": constant("8.8.8.8"),
            "destination.address": constant("8.8.8.8"),
            "process.entity_id": pa.DictionaryArray.from_arrays(
                thirds, pa.array(["E0", "E1", "E2"])
            ),
            "process.executable": (
                after("C:\\a.exe", executable) if executables is None else executables
            ),
            "source.bytes": pa.repeat(pa.scalar(1, pa.int64()), rows),
        }
    )
    if context is not None:
        ports = (numbers % 1000).to_arrow()
        table = table.append_column("host.name", after("h", context))
        table = table.append_column("user.name", after("h", context))
        table = table.append_column(
            "destination.port",
            pa.DictionaryArray.from_arrays(ports, pa.array([str(p) for p in range(1000)])),
        )
    if not dictionary:
        table = table.cast(pa.schema([
            pa.field(field.name, field.type.value_type if pa.types.is_dictionary(field.type) else field.type)
            for field in table.schema
        ]))  # fmt: skip
    pq.write_table(
        table,
        path,
        row_group_size=row_group or rows,
        compression="zstd",
        use_dictionary=dictionary,
        store_schema=arrow_schema,
        column_encoding={"process.executable": "DELTA_BYTE_ARRAY"} if prefixed else None,
        dictionary_pagesize_limit=None if executables is None else 1 << 31,
    )
    return path


def dictionary_entries(path: Path, entries: int) -> Path:
    """:func:`parquet_rows` of 3 rows whose executable column's dictionary page holds
    ``entries`` texts of 7 digits (11 bytes an entry in the page, zstd): pyarrow writes a
    dictionary array's whole dictionary, however few rows use it, and holds 20 bytes more
    for each entry once it reads the page."""
    import polars as pl  # noqa: PLC0415
    import pyarrow as pa  # noqa: PLC0415

    texts = pl.int_range(0, entries, dtype=pl.Int64, eager=True).cast(pl.String).str.zfill(7)
    executables = pa.DictionaryArray.from_arrays(
        pa.array([0, 1, 2], pa.int32()), texts.to_arrow().cast(pa.string())
    )
    return parquet_rows(path, 3, executables=executables)


def long_plain_values(path: Path, count: int, *, size: int = 16 << 20) -> Path:
    """Parquet of one row group: 10,000 matching events, then ``count`` that do not match
    whose executables are ``size`` bytes each, then 10,000 matching again. The
    executable's dictionary page holds a few short ones (pyarrow's writer falls back to
    plain values past a 1 KiB dictionary here), each long one a plain page of its own, a
    few KB of zstd: the footer's sizes average some kilobytes a row, and a read of
    thousands of rows would hold every long value at once."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    short = 10_000
    rows = 2 * short + count
    executables = [f"C:\\{i}.exe" if not short <= i < short + count
                   else f"C:\\{i}" + "x" * size for i in range(rows)]  # fmt: skip
    actions = ["disconnect_received" if not short <= i < short + count
               else "connection_attempted" for i in range(rows)]  # fmt: skip
    table = pa.table({
        "@timestamp": ["2024-05-01T11:00:00.000Z"] * rows,
        "host.os.family": ["windows"] * rows,
        "event.category": ["network"] * rows,
        "event.action": actions,
        "destination.ip": ["8.8.8.8"] * rows,
        "destination.address": ["8.8.8.8"] * rows,
        "process.entity_id": [f"E{i % 3}" for i in range(rows)],
        "process.executable": executables,
        "source.bytes": [1] * rows,
    })  # fmt: skip
    pq.write_table(table, path, compression="zstd", dictionary_pagesize_limit=1 << 10,
                   write_batch_size=1)  # fmt: skip
    return path


def long_keys(path: Path, count: int, *, size: int = 40 << 20) -> Path:
    """``count`` matching events of 1 byte out (none flagged), each with an executable of
    its own of ``size`` bytes, zstd: a group key each, as long as a line may be."""

    def lines() -> Iterator[bytes]:
        for i in range(count):
            yield matching(i, **{"process.executable": f"C:\\{i}" + "x" * size,
                                 "source.bytes": 1})  # fmt: skip

    return write_stream(path, lines(), "zstd")


#: Thrift compact wire types, for the Parquet files written page by page below.
_I32, _I64, _BINARY, _LIST, _STRUCT = 5, 6, 8, 9, 12


def level_run(value: int, count: int, width: int = 1) -> bytes:
    """An RLE run of ``count`` levels of ``value``, ``width`` bits each (Parquet's hybrid
    of runs, as a page's repetition and definition levels are)."""
    size = bytearray()
    rest = count << 1
    while rest >= 0x80:
        size.append(rest & 0x7F | 0x80)
        rest >>= 7
    size.append(rest)
    return bytes(size) + value.to_bytes((width + 7) // 8, "little")


def list_page(texts: list[bytes], levels: bytes, *, rows: int = 0, version: int = 1,
              compression: str = "zstd") -> bytes:  # fmt: skip
    """A data page of ``texts``, the values of a list as the format's oldest writers wrote
    one (the leaf repeated: its definition levels all 1), its repetition levels
    ``levels`` (hybrid runs, :func:`level_run`); a V2 page's header says it holds
    ``rows`` rows (pyarrow reads them by their levels)."""
    import pyarrow as pa  # noqa: PLC0415

    from egress_offline.readers.parquet_prefixes import compact_struct as thrift  # noqa: PLC0415

    defined = level_run(1, len(texts))
    values = b"".join(len(text).to_bytes(4, "little") + text for text in texts)

    def stored(data: bytes) -> bytes:
        return data if compression == "none" else pa.compress(data, codec=compression,
                                                              asbytes=True)  # fmt: skip

    if version == 1:
        body = (len(levels).to_bytes(4, "little") + levels
                + len(defined).to_bytes(4, "little") + defined + values)  # fmt: skip
        data = thrift((1, _I32, len(texts)), (2, _I32, 0), (3, _I32, 3), (4, _I32, 3))
        return thrift((1, _I32, 0), (2, _I32, len(body)), (3, _I32, len(stored(body))),
                      (5, _STRUCT, data)) + stored(body)  # fmt: skip
    data = thrift((1, _I32, len(texts)), (2, _I32, 0), (3, _I32, rows), (4, _I32, 0),
                  (5, _I32, len(defined)), (6, _I32, len(levels)))  # fmt: skip
    body = levels + defined + stored(values)
    return thrift((1, _I32, 3), (2, _I32, len(levels + defined + values)),
                  (3, _I32, len(body)), (8, _STRUCT, data)) + body  # fmt: skip


def list_file(path: Path, pages: list[bytes], rows: int, values: int,
              compression: str = "zstd", *, flat: bool = False) -> Path:  # fmt: skip
    """A Parquet file of one list column of texts, ``event.category``, whose one row
    group of ``rows`` rows is ``pages`` (:func:`list_page`), ``values`` in all; with
    ``flat``, the hunt's other columns too, every row a matching event (E0, 1 GiB out),
    each column a plain page."""
    from egress_offline.readers.parquet_prefixes import compact_struct as thrift  # noqa: PLC0415

    codec = {"none": 0, "snappy": 1, "zstd": 6}[compression]
    columns = [(b"event.category", 6, 2, b"".join(pages), values)]
    if flat:
        for name, value in _FLAT.items():
            data = (value.to_bytes(8, "little") if isinstance(value, int)
                    else len(value).to_bytes(4, "little") + value) * rows  # fmt: skip
            defined = level_run(1, rows)
            body = len(defined).to_bytes(4, "little") + defined + data
            header = thrift((1, _I32, rows), (2, _I32, 0), (3, _I32, 3), (4, _I32, 3))
            page = thrift((1, _I32, 0), (2, _I32, len(body)), (3, _I32, len(body)),
                          (5, _STRUCT, header)) + body  # fmt: skip
            columns.append((name, 2 if isinstance(value, int) else 6, 1, page, rows))
    out = bytearray(b"PAR1")
    chunks, leaves = [], [thrift((4, _BINARY, b"schema"), (5, _I32, len(columns)))]
    for name, kind, repetition, body, count in columns:
        chunk_codec = codec if name == b"event.category" else 0
        meta = thrift(
            (1, _I32, kind), (2, _LIST, (_I32, [0, 3])), (3, _LIST, (_BINARY, [name])),
            (4, _I32, chunk_codec), (5, _I64, count), (6, _I64, len(body)), (7, _I64, len(body)),
            (9, _I64, len(out)),
        )  # fmt: skip
        chunks.append(thrift((2, _I64, len(out)), (3, _STRUCT, meta)))
        out += body
        text = ((6, _I32, 0),) if kind == 6 else ()
        leaves.append(thrift((1, _I32, kind), (3, _I32, repetition), (4, _BINARY, name), *text))
    group = thrift((1, _LIST, (_STRUCT, chunks)), (2, _I64, len(out) - 4), (3, _I64, rows))
    footer = thrift((1, _I32, 1), (2, _LIST, (_STRUCT, leaves)), (3, _I64, rows),
                    (4, _LIST, (_STRUCT, [group])))  # fmt: skip
    path.write_bytes(bytes(out) + footer + len(footer).to_bytes(4, "little") + b"PAR1")
    return path


#: The hunt's other columns of :func:`list_file`, and every row's value.
_FLAT: dict[bytes, bytes | int] = {
    b"@timestamp": b"2024-05-01T11:00:00.000Z", b"host.os.family": b"windows",
    b"event.action": b"disconnect_received", b"destination.ip": b"8.8.8.8",
    b"destination.address": b"8.8.8.8", b"process.entity_id": b"E0",
    b"process.executable": b"C:\\evil.exe", b"source.bytes": 1 << 30,
}  # fmt: skip


def one_list_row(path: Path, count: int, size: int = 40 << 20, *, version: int = 1) -> Path:
    """Parquet of one matching event whose ``event.category`` is ``network``, then
    ``count`` values of ``size`` bytes, each its own zstd page (the row's first page
    starts it, the others continue it): pyarrow holds the row whole however few rows
    it reads (40 values of 40 MiB are 55 KB of file)."""
    pages = [list_page([b"network"], level_run(0, 1), rows=1, version=version)]
    for i in range(count):
        pages.append(list_page([b"%04d" % i + b"x" * size], level_run(1, 1), version=version))
    return list_file(path, pages, 1, 1 + count, flat=True)
