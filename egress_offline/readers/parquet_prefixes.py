"""How large a Parquet page of texts with shared prefixes (``DELTA_BYTE_ARRAY``) is once
decoded, from its prefix and suffix lengths, without decoding a value.

Such a page stores each value as the length of the prefix it shares with the value
before it and its own suffix: two runs of lengths (``DELTA_BINARY_PACKED``: a header,
then blocks of bit-packed differences), then the suffixes' bytes. A page of 1,000
values sharing one 1 MiB text is 1 MiB that decodes to 1 GiB, so a value's length is
not bounded by the page's bytes alone; its lengths bound it exactly. Reading them costs
a positional read and a decompression of the page (the page walk reads the headers
only), a few microseconds per block of lengths in Python (where each run ends: only
its blocks' bit widths are read), and pyarrow's own unpacking of the runs, written as
the pages of a small Parquet file in memory (400,000 rows of seven such columns: the
hunt 5.2 s before, 1.1 s with it, against 0.75 s for the same rows written plain).

Anything unexpected (a codec not read here, a page that does not decompress to its
declared size, lengths that overrun the page or claim more than its values) gives
None: the page is then sized as before, each value as long as its page. Never an
error: the reader decides what a damaged page means. Where pyarrow may read a page two
ways (a V2 page that says it is not compressed, in a compressed chunk), both are read
and the larger kept.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

import polars as pl

from egress_offline.readers.parquet_heads import levels_end
from egress_offline.readers.parquet_thrift import Short, read_varint

__all__ = [
    "Prefixed",
    "PrefixedPages",
    "compact_struct",
    "page_bodies",
    "run_claim",
    "whole_claim",
]

#: A chunk's codec (``parquet_pages._CODEC_NAMES``, read from the footer's bytes) -> its
#: pyarrow ``Codec``'s name. LZO is not read here (nor by pyarrow).
_CODECS: Final = {
    "UNCOMPRESSED": None,
    "SNAPPY": "snappy",
    "GZIP": "gzip",
    "BROTLI": "brotli",
    "ZSTD": "zstd",
    "LZ4_RAW": "lz4_raw",
    "LZ4_HADOOP": "lz4_hadoop",  # Hadoop's frames of LZ4 blocks, else one block, as Arrow
}
#: ``PageType``: a data page's levels are in the compressed bytes (V1), or before them,
#: uncompressed, their lengths in the header (V2).
_DATA_PAGE: Final = 0
_DATA_PAGE_V2: Final = 3


class Prefixed(NamedTuple):
    """A page of texts with shared prefixes: its values' bytes decoded (exact), and a
    bound on its longest value (its longest prefix and its longest suffix)."""

    decoded: int
    longest: int


class _Bad(Exception):
    """The page is not as its lengths say."""


#: A run of lengths holding more values than this, or than its page, is not unpacked (its
#: page is sized by its bytes): writers put some 20,000 values in a page (pyarrow's and
#: parquet-mr's row limit), and a few bytes of a crafted run can claim two billion.
_RUN_VALUES: Final = 1 << 20
#: What a page whose first run claims more lengths than its values is taken to claim:
#: the second run's claim, past the first's blocks, is not sought (pyarrow holds the
#: first's, then the second's).
_CLAIMED_ALL: Final = 1 << 40
#: Lengths unpacked in one read, at most (4 bytes each once unpacked).
_PASS_VALUES: Final = 1 << 20
#: Thrift compact wire types, and the Parquet enums the file of lengths is written with.
_I32, _I64, _BINARY, _LIST, _STRUCT = 5, 6, 8, 9, 12
_INT32, _REQUIRED, _DELTA_BINARY_PACKED, _UNCOMPRESSED = 1, 0, 5, 0


class PrefixedPages:
    """The prefixed pages of one column chunk, gathered as they are walked (:meth:`add`,
    :meth:`skip`), then sized (:meth:`sizes`). Their runs of lengths are unpacked by
    pyarrow itself, a million at a time: each run is written as a page of a Parquet file
    of one 32-bit column (``DELTA_BINARY_PACKED``, as the runs are), held in memory."""

    def __init__(self, compression: str, levels: tuple[int, int]) -> None:
        #: the chunk's codec, and its column's greatest repetition and definition levels
        self.compression, self.levels = compression, levels
        self._runs: list[tuple[int, int] | None] = []  # per run: its sum and largest
        self._waiting: list[tuple[bytes, int]] = []  # runs not read yet: bytes, values
        self._values = 0
        #: per page, per way pyarrow may read it: its two runs (prefixes, suffixes) and
        #: its suffix bytes; or None
        self._pages: list[list[tuple[int, int, int]] | None] = []

    def add(self, page: Any, raw: bytes) -> int:
        """Gather the data page ``page`` (a ``parquet_pages.Page`` of ``DELTA_BYTE_ARRAY``
        values) whose bytes in the file are ``raw``. Returns the bytes pyarrow holds for
        its lengths while it reads the page: 4 for each length its runs claim, whatever
        the page's count of values (a one-value page claiming 2**28 lengths took 2.2 GB
        to read), where its runs' headers can be read; else 0."""
        try:
            readings = _readings(page, raw, self.compression, self.levels)
        except (_Bad, ValueError, OSError, IndexError, OverflowError):
            # pyarrow raises its ArrowException subclasses of ValueError and OSError
            self._pages.append(None)
            return 0
        parsed = [_parsed(values, page) for values in readings]
        claimed = max(lengths for lengths, _ in parsed)
        if any(runs is None for _, runs in parsed):
            self._pages.append(None)
            return 4 * claimed
        count = sum(runs[0] + runs[2] for _, runs in parsed if runs is not None)
        if self._values + count > _PASS_VALUES:
            self._read()
        entry = []
        for values, (_, runs) in zip(readings, parsed, strict=True):
            assert runs is not None
            prefixes, middle, suffixes, end = runs
            first = len(self._runs) + len(self._waiting)
            self._waiting += [(values[:middle], prefixes), (values[middle:end], suffixes)]
            entry.append((first, first + 1, len(values) - end))
        self._values += count
        self._pages.append(entry)
        return 4 * claimed

    @property
    def readable(self) -> bool:
        """Can this chunk's codec be read here?"""
        return self.compression in _CODECS

    def skip(self) -> None:
        """A page not read: sized as before (:meth:`sizes` gives None for it)."""
        self._pages.append(None)

    def sizes(self) -> list[Prefixed | None]:
        """Per page gathered, in order, what it holds decoded, or None where its lengths
        could not be read (or say lengths pyarrow would refuse)."""
        self._read()
        found: list[Prefixed | None] = []
        for page in self._pages:
            ways = [self._sized(*way) for way in page or []]
            if not ways or any(way is None for way in ways):
                found.append(None)
            else:  # the larger of the ways pyarrow may read it
                found.append(Prefixed(max(way.decoded for way in ways if way is not None),
                                      max(way.longest for way in ways if way is not None)))  # fmt: skip
        return found

    def _sized(self, prefixes: int, suffixes: int, room: int) -> Prefixed | None:
        """A page read one way: its runs' sizes; None where one could not be unpacked,
        or where the suffixes do not fit the bytes after their lengths (pyarrow checks)."""
        before, after = self._runs[prefixes], self._runs[suffixes]
        if before is None or after is None or after[0] > room:
            return None
        return Prefixed(before[0] + after[0], before[1] + after[1])

    def _read(self) -> None:
        """Unpack the waiting runs: each one's sum and largest, or None for them all
        where pyarrow cannot read them (or reads a negative length)."""
        runs, self._waiting, self._values = self._waiting, [], 0
        if not runs:
            return
        try:
            self._runs += _run_sizes(runs)
        except (_Bad, ValueError, OSError):
            self._runs += [None] * len(runs)


def _run_sizes(runs: list[tuple[bytes, int]]) -> list[tuple[int, int] | None]:
    """Each run's sum and largest value, pyarrow unpacking them from a file of its own."""
    import pyarrow as pa  # noqa: PLC0415 - only Parquet inputs need it
    import pyarrow.parquet as pq  # noqa: PLC0415

    counts = [count for _, count in runs]
    table = pq.ParquetFile(pa.BufferReader(_lengths_file(runs))).read()
    lengths = pl.from_arrow(table.column(0))
    assert isinstance(lengths, pl.Series)
    if lengths.len() != sum(counts):
        raise _Bad("count")
    found: list[tuple[int, int] | None] = []
    at = 0
    for count in counts:
        run = lengths.slice(at, count)
        at += count
        if count == 0:
            found.append((0, 0))
            continue
        least, most = run.min(), run.max()
        if not isinstance(least, int) or not isinstance(most, int):
            raise _Bad("lengths")
        found.append((int(run.cast(pl.Int64).sum()), most) if least >= 0 else None)
    return found


def _lengths_file(runs: list[tuple[bytes, int]]) -> bytes:
    """A Parquet file of one required 32-bit column whose pages are ``runs`` (each its
    ``DELTA_BINARY_PACKED`` bytes and its count of values), uncompressed, as pyarrow
    reads one: the pages, then the footer (Thrift's compact protocol)."""
    pages = bytearray()
    total = 0
    for data, count in runs:
        if count == 0:
            continue
        data_header = compact_struct((1, _I32, count), (2, _I32, _DELTA_BINARY_PACKED),
                                     (3, _I32, 3), (4, _I32, 3))  # fmt: skip
        pages += compact_struct((1, _I32, 0), (2, _I32, len(data)), (3, _I32, len(data)),
                                (5, _STRUCT, data_header))  # fmt: skip
        pages += data
        total += count
    meta = compact_struct(
        (1, _I32, _INT32), (2, _LIST, (_I32, [_DELTA_BINARY_PACKED])), (3, _LIST, (_BINARY, [b"v"])),
        (4, _I32, _UNCOMPRESSED), (5, _I64, total), (6, _I64, len(pages)), (7, _I64, len(pages)),
        (9, _I64, 4),
    )  # fmt: skip
    chunk = compact_struct((2, _I64, 4), (3, _STRUCT, meta))
    group = compact_struct((1, _LIST, (_STRUCT, [chunk])), (2, _I64, len(pages)), (3, _I64, total))
    root = compact_struct((4, _BINARY, b"schema"), (5, _I32, 1))
    leaf = compact_struct((1, _I32, _INT32), (3, _I32, _REQUIRED), (4, _BINARY, b"v"))
    footer = compact_struct((1, _I32, 1), (2, _LIST, (_STRUCT, [root, leaf])),
                            (3, _I64, total), (4, _LIST, (_STRUCT, [group])))  # fmt: skip
    return b"PAR1" + bytes(pages) + footer + len(footer).to_bytes(4, "little") + b"PAR1"


def compact_struct(*fields: tuple[int, int, Any]) -> bytes:
    """A Thrift compact struct of ``fields`` (id, wire type, value), ids ascending: an
    i32 or i64, bytes, a struct's bytes, or a list as (element type, elements)."""
    out, last = bytearray(), 0
    for field, kind, value in fields:
        out.append((field - last) << 4 | kind)
        last = field
        out += _value(kind, value)
    out.append(0)
    return bytes(out)


def _value(kind: int, value: Any) -> bytes:
    if kind in (_I32, _I64):
        return _varint_bytes((value << 1) ^ (value >> 63))
    if kind == _BINARY:
        return _varint_bytes(len(value)) + value
    if kind == _STRUCT:
        return bytes(value)
    element, items = value  # a list, of fewer than 15 elements here
    return bytes([len(items) << 4 | element]) + b"".join(_value(element, item) for item in items)


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def whole_claim(page: Any, raw: bytes, compression: str, levels: tuple[int, int]) -> int:
    """The count of lengths the first run of a data page's values claims (``raw``: its
    bytes in the file), the page decompressed whole; the larger of the ways pyarrow may
    read it (see :func:`_readings`); 0 where it cannot be read."""
    try:
        return max(run_claim(values, 0) for values in _readings(page, raw, compression, levels))
    except (_Bad, ValueError, OSError, IndexError, OverflowError):
        return 0


def run_claim(buffer: bytes, at: int = 0) -> int:
    """The count of lengths the run at ``at`` claims in its header, or 0."""
    try:
        _, at = _varint(buffer, at)
        _, at = _varint(buffer, at)
        count, _ = _varint(buffer, at)
    except _Bad:
        return 0
    return count


def _run_end(buffer: bytes, at: int) -> tuple[int, int]:
    """The ``DELTA_BINARY_PACKED`` run of lengths at ``at`` in ``buffer``: its count of
    values, and where it ends. A block is its least difference, its miniblocks' bit
    widths, then their bits; only the widths are read here, a block at a time (each block
    takes bytes, so a run claiming billions of lengths is walked in as many steps as its
    bytes allow)."""
    begin = at
    block, at = _varint(buffer, at)
    per_block, at = _varint(buffer, at)
    count, at = _varint(buffer, at)
    _, at = _varint(buffer, at)  # the first value
    if block <= 0 or block % 128 or per_block <= 0 or block % per_block:
        raise _Bad("block")
    per_mini = block // per_block
    if per_mini % 32:
        raise _Bad("header")
    left = count - 1
    while left > 0:
        while buffer[at] >= 0x80:  # the block's least difference, a varint: skipped
            at += 1
        at += 1
        used = min(per_block, -(-left // per_mini))
        widths = buffer[at : at + used]
        if len(widths) < used:
            raise _Bad("short")
        at += per_block + per_mini * sum(widths) // 8
        left -= used * per_mini
    if at > len(buffer) or at == begin:
        raise _Bad("short")
    return count, at


def _parsed(values: bytes, page: Any) -> tuple[int, tuple[int, int, int, int] | None]:
    """The lengths a page's values claim (their runs' headers), and where its runs are:
    (prefixes, where they end, suffixes, where those end); None where they cannot be
    read, or claim more than the page's values or :data:`_RUN_VALUES`."""
    if not values:  # a page of nulls only: no value, no length written
        return 0, (0, 0, 0, 0)
    claimed = 0
    try:
        claimed = run_claim(values, 0)
        if claimed > min(page.values or 0, _RUN_VALUES):
            # its blocks are not walked (a run of 2**32 lengths in blocks of two bytes
            # each took 27 s), so the next run's claim is not known: it may be any
            return _CLAIMED_ALL, None
        prefixes, middle = _run_end(values, 0)
        claimed += run_claim(values, middle)
        suffixes, end = _run_end(values, middle)
    except (_Bad, IndexError):
        return claimed, None
    # writers write a length for each value of the page; a run of more is not unpacked
    # (pyarrow ignores the lengths past its values, but holds them)
    if prefixes != suffixes or prefixes > min(page.values or 0, _RUN_VALUES):
        return claimed, None
    return claimed, (prefixes, middle, suffixes, end)


def _readings(page: Any, raw: bytes, compression: str, levels: tuple[int, int]) -> list[bytes]:
    """The page's values, past its levels, decompressed: each way pyarrow may read them.
    A V2 page that says it is not compressed, in a compressed chunk, is read both ways:
    pyarrow decompresses it all the same when an old parquet-cpp wrote the file, and a
    crafted page may read as empty runs one way and as gigabytes the other (where its
    bytes do not decompress, pyarrow cannot read it that way either: Arrow's own codec)."""
    if compression not in _CODECS:
        raise _Bad(compression)
    codec = _CODECS[compression]
    data = page.data or {}
    if page.kind == _DATA_PAGE_V2:
        # levels first, never compressed; the values compressed unless the page says not
        skip = data.get(5, 0) + data.get(6, 0)
        if skip < 0 or skip > len(raw):
            raise _Bad("levels")
        values = raw[skip:]
        if codec is None:
            return [values]
        if data.get(7, 1) == 1:
            return _decompressions(values, page.decompressed - skip, codec)
        try:
            return [values, *_decompressions(values, page.decompressed - skip, codec)]
        except (_Bad, ValueError, OSError):
            return [values]
    if page.kind != _DATA_PAGE:
        raise _Bad(page.kind)
    bodies = [raw] if codec is None else _decompressions(raw, page.decompressed, codec)
    return [_values_v1(page, body, levels) for body in bodies]


def _values_v1(page: Any, body: bytes, levels: tuple[int, int]) -> bytes:
    """A V1 page's values: the page decompressed whole (``body``), past its levels."""
    try:
        at = levels_end(page, levels, lambda at: int.from_bytes(body[at : at + 4], "little"))
    except ValueError as exc:
        raise _Bad(str(exc)) from exc
    if at > len(body):
        raise _Bad("levels")
    return body[at:]


def page_bodies(raw: bytes, size: int, compression: str) -> list[bytes]:
    """A page's bytes in the file (``raw``) decompressed to ``size``, each way pyarrow
    may read them (``compression``: the chunk's codec, by ``parquet_pages``' name).
    Raises ``ValueError`` where they cannot be."""
    if compression not in _CODECS:
        raise ValueError(f"pages of {compression} are not read here")
    codec = _CODECS[compression]
    try:
        return [raw] if codec is None else _decompressions(raw, size, codec)
    except (_Bad, OSError) as exc:
        raise ValueError(str(exc)) from exc


def _decompressions(raw: bytes, size: int, codec: str) -> list[bytes]:
    """``raw`` decompressed to ``size`` bytes, each way pyarrow may: Hadoop's LZ4 both as
    frames and as one block (Arrow takes the frames only where each decompresses to the
    size it says, which ``pa.decompress`` does not tell: it gives the size asked for)."""
    import pyarrow as pa  # noqa: PLC0415 - only Parquet inputs need it

    if size < 0:
        raise _Bad("size")
    if codec != "lz4_hadoop":
        return [bytes(pa.decompress(raw, decompressed_size=size, codec=codec, asbytes=True))]
    ways = []
    framed = _hadoop_frames(raw, size)
    if framed is not None and len(framed) == size:
        ways.append(framed)
    try:
        ways.append(bytes(pa.decompress(raw, decompressed_size=size, codec="lz4_raw",
                                        asbytes=True)))  # fmt: skip
    except (ValueError, OSError):
        if not ways:
            raise
    return ways


def _hadoop_frames(raw: bytes, size: int) -> bytes | None:
    """Hadoop's LZ4 frames (each its decompressed and compressed sizes, big-endian, then
    an LZ4 block) decompressed, as Arrow's ``Lz4HadoopCodec`` tries them first: None
    where ``raw`` is not such frames to the byte. (A block that decompresses short is
    read as its full size here, where Arrow reads the page as one block: the caller
    reads it that way too.)"""
    import pyarrow as pa  # noqa: PLC0415 - only Parquet inputs need it

    out, at = bytearray(), 0
    while len(raw) - at >= 8:
        expected = int.from_bytes(raw[at : at + 4], "big")
        length = int.from_bytes(raw[at + 4 : at + 8], "big")
        at += 8
        if length > len(raw) - at or expected > size - len(out):
            return None
        try:
            block = pa.decompress(raw[at : at + length], decompressed_size=expected,
                                  codec="lz4_raw", asbytes=True)  # fmt: skip
        except (ValueError, OSError):
            return None
        out += block
        at += length
    return bytes(out) if at == len(raw) else None


def _varint(buffer: bytes, at: int) -> tuple[int, int]:
    try:
        return read_varint(buffer, at, 10)
    except Short:
        raise _Bad("short") from None
    except ValueError:
        raise _Bad("varint") from None


def _zigzag(buffer: bytes, at: int) -> tuple[int, int]:
    value, at = _varint(buffer, at)
    return (value >> 1) ^ -(value & 1), at
