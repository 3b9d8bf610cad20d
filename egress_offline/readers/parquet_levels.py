"""Where a repeated column's rows start in its pages: how many of a data page's values have
repetition level 0, each the first value of a row.

pyarrow puts a list column's values into rows by their repetition levels, whatever a
page's header says (a V2 page's ``num_rows`` too): a row is a value of level 0 and the
values of higher levels after it, in its page and in the pages after, so one row may
hold every page of its chunk (one row of 40 values of 40 MiB, each its own page, is 55
KB of zstd and was read whole: over 3 GB). ``parquet_pages`` counts the rows starting
in each page of a chunk where that can matter, and ``parquet_reach`` charges a read by
the pages its rows reach (:func:`row_pages`).

Levels are a hybrid of runs (``RLE``): runs of one value (a count, then the value), and
runs of groups of 8 values bit-packed, lowest bits first. A V1 page holds its
repetition levels first, compressed with its values, after a 4-byte length; a V2 page's
are not compressed, before its values, as long as its header says. A chunk's levels
are decoded by pyarrow itself, a million at a time, as the indices of a dictionary page
(the same hybrid runs) in a Parquet file written in memory, and their zeros counted by
Polars: a page of lists of 9 texts holds a run every 36 values, 3,300 in a page of 1
MiB, which took 7 ms counted here a run at a time (81 MB of such lists, 1 million rows:
0.07 s). Levels of long runs (more than 256 values a byte) are counted here, a run at
a time, and so are those pyarrow cannot decode (levels that end before the page's
values, a run of no values), a page at a time, so that the damaged ones are found: at
most :data:`RUNS_MOST` runs a walk. Only a page's count of values is read, as pyarrow
reads it (a bit-packed run's last group may be padded). The deprecated ``BIT_PACKED``
levels are counted as pyarrow reads them, lowest bits first (the format says highest
first; no current writer writes them).

A page whose levels cannot be counted (damaged, of another encoding, or past the room a
walk may decompress or the runs it may count) is taken to start no row: its values are
charged to the row before it. That can only make reads smaller, or refuse its row
group: taking such a chunk's rows to hold its mean of values instead would let an
attacker read one row whole again, its pages' levels too long to read within the room.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import polars as pl

from egress_offline.readers import tuning
from egress_offline.readers.parquet_heads import HeadUnread, head_readers
from egress_offline.readers.parquet_prefixes import compact_struct, page_bodies
from egress_offline.readers.parquet_thrift import PageRefused, Short, read_varint

__all__ = [
    "RUNS_MOST",
    "Budget",
    "LevelsUnread",
    "RowTooLarge",
    "chunk_rows",
    "chunk_starts",
    "hybrid_zeros",
    "packed_zeros",
    "row_pages",
]

#: Runs a walk counts here at most, a run at a time (about 2 s); past them, a page's
#: starts are not counted.
RUNS_MOST: Final = 1 << 20
#: ``Encoding`` of V1 levels: ``RLE`` (a 4-byte length first), ``BIT_PACKED`` (none).
_RLE: Final = 3
_BIT_PACKED: Final = 4
#: Bytes of a bit-packed run counted at once, times the bit width (512 Ki values).
_PACKED_STEP: Final = 64 << 10
#: Bytes of a V1 page decompressed first for its levels (more, up to ``HEAD_MOST``, where
#: they are longer); a page no larger is decompressed whole, at once.
_HEAD_FIRST: Final = 4 << 10
#: Levels decoded by pyarrow at once: their bytes gathered, and their values in a read.
_PASS_BYTES: Final = 4 << 20
_PASS_VALUES: Final = 1 << 20
#: Levels holding more values than this a byte are counted here, a run at a time: their
#: runs are long (a run of 2**31 values is a few bytes), and pyarrow decodes each value.
_RUN_VALUES: Final = 256
#: Pieces of decoded levels counted one by one where they hold this many values a piece
#: at least, else summed along the values at once (:func:`_zeros`).
_PIECE_VALUES: Final = 1024
#: The widest levels decoded by pyarrow (a dictionary of 2**width entries).
_WIDEST: Final = 16
_DATA_PAGE_V2: Final = 3
#: Thrift compact wire types, and the Parquet enums the file of levels is written with.
_I32, _I64, _BINARY, _LIST, _STRUCT = 5, 6, 8, 9, 12
_INT32, _REQUIRED, _PLAIN, _RLE_DICTIONARY, _DICTIONARY_PAGE = 1, 0, 0, 8, 2


class LevelsUnread(Exception):
    """A page's repetition levels that cannot be counted here."""


class RowTooLarge(PageRefused):
    """A row whose values in a column come to ``held`` bytes in ``pages`` pages, more than
    :data:`~tuning.LINE_LIMIT` besides the chunk's ``largest`` page."""

    def __init__(self, held: int, pages: int, largest: int) -> None:
        super().__init__(f"a row of {held:,} bytes in {pages:,} pages")
        self.held, self.pages, self.largest = held, pages, largest

    def message(self, name: str, group: int, path: str) -> str:
        """The file's ``Error:`` line: ``name``, the file; ``path``, the column's."""
        return (
            f"{name}: row group {group} has a row too large to read within bounds: its "
            f"values in {path} come to {self.held:,} bytes decompressed in {self.pages:,} "
            f"pages, over {tuning.LINE_LIMIT >> 20} MiB besides the largest "
            f"({self.largest:,}), and pyarrow holds a row whole; no export holds such a row "
            "(Elasticsearch refuses a document over 100 MB): write the file again without it"
        )


class Budget:
    """What a walk may still spend counting levels here, a run at a time."""

    def __init__(self, runs: int = RUNS_MOST) -> None:
        self.runs = runs


def chunk_rows(pages: Sequence[tuple[int, Any]], runs: Sequence[tuple[int, int]],
               walk: Any, levels: tuple[int, int],
               codec: Callable[[], str]) -> tuple[int, ...] | None:  # fmt: skip
    """The rows starting in each data page of a repeated column's chunk (``pages``, and
    each one's values and bytes, ``runs``: ``parquet_pages.ChunkPages``), where those
    pages come to more than :data:`~tuning.READ_ROOM` (else every read of the chunk
    fits, and nothing is counted) and none is larger than :data:`~tuning.PAGE_ROOM`
    (its row group is refused anyway). ``levels``: the column's greatest repetition and
    definition levels. Raises :class:`RowTooLarge` for a row whose values come to more
    than :data:`~tuning.LINE_LIMIT` besides the largest page, which pyarrow holds whole
    however few rows it is asked for (one row of 40 values of 40 MiB, each its own
    page: over 3 GB from 55 KB of zstd): Elasticsearch refuses a document over 100 MB
    (``http.max_content_length``), so no export holds one, and a line of NDJSON over it
    is refused as malformed. The largest page is left out as any read may hold one
    (``parquet_reach``)."""
    sizes = [size for _, size in runs]
    if levels[0] <= 0 or sum(sizes) <= tuning.READ_ROOM or max(sizes) > tuning.PAGE_ROOM:
        return None
    starts = chunk_starts(pages, walk, levels[0].bit_length(), codec)
    _, held, count = max(row_pages(runs, starts), key=lambda found: found[1])
    if held - max(sizes) > tuning.LINE_LIMIT:
        raise RowTooLarge(held, count, max(sizes))
    return starts


def chunk_starts(pages: Sequence[tuple[int, Any]], walk: Any, width: int,
                 codec: Callable[[], str]) -> tuple[int, ...]:  # fmt: skip
    """The rows starting in each of a chunk's data pages (``pages``: where each lies in the
    file, and its ``parquet_thrift.Page``), by its repetition levels of ``width`` bits:
    read from a V2 page's bytes, decompressed from a V1 page's start (up to
    ``parquet_heads.HEAD_MOST``; past it, or where its start cannot be read alone, the
    page whole, within the room ``walk`` may still decompress: ``parquet_pages._Walk``,
    whose ``starts`` keep each page's count, by where it is: chunks may share pages).
    Where pyarrow may read a page two ways, the fewer; 0 where they cannot be counted.
    ``codec()``: the chunk's codec, by ``parquet_pages``' names."""
    found: dict[tuple[int, int], int] = walk.starts
    ways: dict[tuple[int, int], list[int]] = {}
    waiting = _Waiting(width, walk.levels)
    compression: str | None = None  # read once, where a V1 page needs it
    if any(page.kind != _DATA_PAGE_V2 for _, page in pages):
        try:
            compression = codec()
        except ValueError:  # a footer not read here: no V1 page's levels are
            compression = None
    for at, page in pages:
        key = (at, width)
        if key in found or key in ways:
            continue
        ways[key] = []
        try:
            for way in _levels(at, page, walk, width, compression):
                if isinstance(way, int):
                    ways[key].append(way)
                else:
                    waiting.add(key, way, page.values)
        except (LevelsUnread, ValueError):  # a page header's or footer's damage too
            ways[key].append(0)
    for key, zeros in waiting.counted():
        ways[key].append(zeros)
    for key, counts in ways.items():
        found[key] = min(counts, default=0)
    return tuple(found[at, width] for at, _ in pages)


def _levels(at: int, page: Any, walk: Any, width: int,
            compression: str | None) -> list[bytes | int]:  # fmt: skip
    """A page's repetition levels, each way pyarrow may read them: the runs (``RLE``) or
    their zeros counted (``BIT_PACKED``). ``compression``: the chunk's codec (None: not
    known). Raises :class:`LevelsUnread`."""
    start = at + page.header
    end = min(start + page.compressed, walk.size)

    def read(count: int) -> bytes:
        return bytes(walk.source.read_at(min(count, end - start), start))

    if page.kind == _DATA_PAGE_V2:
        length = (page.data or {}).get(6, 0)
        if not 0 <= length <= page.compressed:
            raise LevelsUnread("levels longer than their page")
        return [_long_enough(read(length), length)]
    if compression is None:
        raise LevelsUnread("a codec not known")
    if max(page.decompressed, page.compressed) > _HEAD_FIRST:
        try:
            heads = head_readers(read, compression)
            return [_v1_levels(page, _cached(head), width) for head in heads]
        except HeadUnread:
            pass
        spent = page.compressed if compression == "UNCOMPRESSED" else page.decompressed
        if spent > walk.room:
            raise LevelsUnread("past the walk's room to decompress")
        walk.room -= spent
    bodies = page_bodies(read(end - start), page.decompressed, compression)
    return [_v1_levels(page, _prefix(body), width) for body in bodies]


def _v1_levels(page: Any, head: Callable[[int], bytes], width: int) -> bytes | int:
    """A V1 page's repetition levels (``head(n)``: its first ``n`` bytes decompressed)."""
    count = page.values or 0
    encoding = (page.data or {}).get(4, _RLE)
    if encoding == _RLE:
        first = _long_enough(head(4), 4)
        length = int.from_bytes(first, "little", signed=True)
        if length < 0:
            raise LevelsUnread("levels of a negative length")
        return _long_enough(head(4 + length)[4:], length)  # pyarrow: "invalid number of bytes"
    if encoding == _BIT_PACKED:
        size = -(-count * width // 8)
        return packed_zeros(_long_enough(head(size), size), width, count)
    raise LevelsUnread(f"levels of encoding {encoding}")


def _long_enough(found: bytes, length: int) -> bytes:
    if len(found) < length:
        raise LevelsUnread("levels longer than their page")
    return found


def _cached(read: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """``read`` (the first ``n`` bytes of a page decompressed, fewer where it ends), read
    :data:`_HEAD_FIRST` bytes at least, and not again where those hold what is asked."""
    held = b""
    ended = False

    def head(count: int) -> bytes:
        nonlocal held, ended
        if count > len(held) and not ended:
            want = max(count, _HEAD_FIRST)
            held = read(want)
            ended = len(held) < want
        return held[:count]

    return head


def _prefix(body: bytes) -> Callable[[int], bytes]:
    return lambda count: body[:count]


class _Waiting:
    """Pages' levels gathered to be decoded by pyarrow together (:meth:`counted`), each
    page's zeros counted; a batch pyarrow cannot decode is counted here, a page at a
    time, each page's runs at a time (:func:`hybrid_zeros`, within ``budget``)."""

    def __init__(self, width: int, budget: Budget) -> None:
        self.width, self.budget = width, budget
        self.pages: list[tuple[tuple[int, int], bytes, int]] = []
        self.done: list[tuple[tuple[int, int], int]] = []
        self.held = 0

    def add(self, key: tuple[int, int], levels: bytes, count: int) -> None:
        if count > _RUN_VALUES * len(levels):  # long runs: fewer of them than values
            self.done.append((key, self._counted_here(levels, count)))
            return
        self.pages.append((key, levels, count))
        self.held += len(levels)
        if self.held > _PASS_BYTES:
            self._count()

    def counted(self) -> list[tuple[tuple[int, int], int]]:
        self._count()
        return self.done

    def _count(self) -> None:
        pages, self.pages, self.held = self.pages, [], 0
        if not pages:
            return
        import pyarrow as pa  # noqa: PLC0415 - only Parquet inputs need it

        try:
            zeros = decoded_zeros([(levels, count) for _, levels, count in pages], self.width)
        except (LevelsUnread, pa.ArrowException, ValueError, OSError):
            zeros = [self._counted_here(levels, count) for _, levels, count in pages]
        self.done += [(key, found) for (key, _, _), found in zip(pages, zeros, strict=True)]

    def _counted_here(self, levels: bytes, count: int) -> int:
        try:
            return hybrid_zeros(levels, self.width, count, self.budget)
        except LevelsUnread:
            return 0


def decoded_zeros(pages: list[tuple[bytes, int]], width: int) -> list[int]:
    """The zeros among each page's levels (its runs, and its count of values), decoded by
    pyarrow: as the indices into a dictionary page of ``2**width`` numbers, each page of
    runs a page of indices of a Parquet file in memory (pyarrow decodes both with one
    decoder, and raises where the runs end before the count), :data:`_PASS_VALUES` at a
    time (:func:`_zeros`). Raises ``ValueError`` or ``OSError`` (pyarrow's) where they
    cannot be."""
    import pyarrow as pa  # noqa: PLC0415 - only Parquet inputs need it
    import pyarrow.parquet as pq  # noqa: PLC0415

    if not 0 < width <= _WIDEST:
        raise LevelsUnread(f"levels of {width} bits")
    counts = iter([count for _, count in pages])
    reader = pq.ParquetFile(pa.BufferReader(_levels_file(pages, width)))
    found: list[int] = []
    left, zeros = next(counts, 0), 0  # the current page's values not read, its zeros
    for batch in reader.iter_batches(batch_size=_PASS_VALUES):
        ends: list[int] = []  # where each page's values in the batch end, and whether
        done: list[bool] = []  # the page ends there
        at = 0
        while at < batch.num_rows:
            if left <= 0:
                raise LevelsUnread("more levels than their pages' values")
            take = min(left, batch.num_rows - at)
            at, left = at + take, left - take
            ends.append(at)
            done.append(left == 0)
            if left == 0:
                left = next(counts, 0)
        for counted, ended in zip(_zeros(pl.Series(batch.column(0)), ends), done, strict=True):
            zeros += counted
            if ended:
                found.append(zeros)
                zeros = 0
    if len(found) != len(pages):
        raise LevelsUnread("fewer levels than their pages' values")
    return found


def _zeros(levels: pl.Series, ends: list[int]) -> list[int]:
    """The zeros of ``levels`` in each piece of them, the pieces ending at ``ends``: a
    piece at a time where they are long (4 million values in 81 pieces: 1.6 ms, summed
    along the values 72), else summed along the values once (300,000 pieces of a value
    each took 6 s a piece at a time)."""
    if len(ends) * _PIECE_VALUES <= len(levels):
        return [int(levels.slice(start, end - start).eq(0).sum())
                for start, end in zip([0, *ends[:-1]], ends, strict=True)]  # fmt: skip
    running = levels.eq(0).cast(pl.Int64).cum_sum().gather([end - 1 for end in ends]).to_list()
    return [after - before for before, after in zip([0, *running[:-1]], running, strict=True)]


def _levels_file(pages: list[tuple[bytes, int]], width: int) -> bytes:
    """A Parquet file of one required 32-bit column: a dictionary page of the numbers 0
    to ``2**width - 1``, then a data page of indices into it for each of ``pages`` (its
    runs of levels and their count of values), uncompressed."""
    thrift = compact_struct
    entries = 1 << width
    dictionary = b"".join(entry.to_bytes(4, "little") for entry in range(entries))
    header = thrift((1, _I32, entries), (2, _I32, _PLAIN))
    body = bytearray(thrift((1, _I32, _DICTIONARY_PAGE), (2, _I32, len(dictionary)),
                            (3, _I32, len(dictionary)), (7, _STRUCT, header)))  # fmt: skip
    body += dictionary
    first = 4 + len(body)
    total = 0
    for levels, count in pages:
        data = bytes([width]) + levels
        header = thrift((1, _I32, count), (2, _I32, _RLE_DICTIONARY), (3, _I32, _RLE),
                        (4, _I32, _RLE))  # fmt: skip
        body += thrift((1, _I32, 0), (2, _I32, len(data)), (3, _I32, len(data)),
                       (5, _STRUCT, header)) + data  # fmt: skip
        total += count
    meta = thrift(
        (1, _I32, _INT32), (2, _LIST, (_I32, [_PLAIN, _RLE_DICTIONARY])),
        (3, _LIST, (_BINARY, [b"v"])), (4, _I32, 0), (5, _I64, total), (6, _I64, len(body)),
        (7, _I64, len(body)), (9, _I64, first), (11, _I64, 4),
    )  # fmt: skip
    chunk = thrift((2, _I64, 4), (3, _STRUCT, meta))
    group = thrift((1, _LIST, (_STRUCT, [chunk])), (2, _I64, len(body)), (3, _I64, total))
    root = thrift((4, _BINARY, b"schema"), (5, _I32, 1))
    leaf = thrift((1, _I32, _INT32), (3, _I32, _REQUIRED), (4, _BINARY, b"v"))
    footer = thrift((1, _I32, 1), (2, _LIST, (_STRUCT, [root, leaf])), (3, _I64, total),
                    (4, _LIST, (_STRUCT, [group])))  # fmt: skip
    return b"PAR1" + bytes(body) + footer + len(footer).to_bytes(4, "little") + b"PAR1"


def hybrid_zeros(stream: bytes, width: int, count: int, budget: Budget) -> int:
    """The zeros among the first ``count`` values of the ``RLE`` hybrid runs ``stream``
    of ``width``-bit values, a run at a time. Raises :class:`LevelsUnread` where they
    end first, or hold a run of no values, or past ``budget``'s runs."""
    if not 0 < width <= 32:
        raise LevelsUnread(f"levels of {width} bits")
    value_bytes = (width + 7) // 8
    at = seen = zeros = 0
    while seen < count:
        if budget.runs <= 0:
            raise LevelsUnread("more runs than a walk counts")
        budget.runs -= 1
        header, at = _varint(stream, at)
        if header & 1:  # groups of 8 values, bit-packed
            take = min((header >> 1) * 8, count - seen)
            size = -(-take * width // 8)
            if take == 0 or at + size > len(stream):
                raise LevelsUnread("a bit-packed run of no values, or past the levels")
            zeros += packed_zeros(stream[at : at + size], width, take)
            at += (header >> 1) * width
        else:  # one value, repeated
            take = min(header >> 1, count - seen)
            value = stream[at : at + value_bytes]
            if take == 0 or len(value) < value_bytes:
                raise LevelsUnread("a run of no values, or past the levels")
            if not any(value):
                zeros += take
            at += value_bytes
        seen += take
    return zeros


def packed_zeros(packed: bytes, width: int, count: int) -> int:
    """The zeros among the first ``count`` ``width``-bit values of ``packed``, lowest
    bits first: each value's bits or-ed into its lowest and those counted, as integers
    of at most :data:`_PACKED_STEP` times ``width`` bytes."""
    step = _PACKED_STEP * width
    mask = _lowest_bits(width, step)
    nonzero = done = 0
    for start in range(0, len(packed), step):
        values = min(count - done, step * 8 // width)
        if values <= 0:
            break
        bits = int.from_bytes(packed[start : start + step], "little") & ((1 << values * width) - 1)
        folded = bits
        for shift in range(1, width):
            folded |= bits >> shift
        nonzero += (folded & mask).bit_count()
        done += values
    return count - nonzero


_MASKS: dict[int, int] = {}


def _lowest_bits(width: int, size: int) -> int:
    """An integer of ``size`` bytes whose bit is set at each multiple of ``width``."""
    mask = _MASKS.get(width)
    if mask is None:
        group = sum(1 << (i * width) for i in range(8)).to_bytes(width, "little")
        mask = _MASKS[width] = int.from_bytes(group * (size // width), "little")
    return mask


def _varint(stream: bytes, at: int) -> tuple[int, int]:
    """A run header: a varint of at most 5 bytes (Arrow's are 32-bit)."""
    try:
        return read_varint(stream, at, 5)
    except Short:
        raise LevelsUnread("a run header past the levels") from None
    except ValueError:
        raise LevelsUnread("a run header of more than 32 bits") from None


def row_pages(runs: Sequence[tuple[int, int]],
              starts: Sequence[int]) -> tuple[tuple[int, int, int], ...]:  # fmt: skip
    """A chunk's pages in rows: for each page where rows start, those rows, and its bytes
    and pages with those of the pages after it that start none (they continue its last
    row); the pages before the first start are the first row's. ``runs``: each page's
    values and bytes (``parquet_pages.ChunkPages.runs``); ``starts``: the rows starting
    in each. A chunk where no row starts is one row (pyarrow's first row begins at its
    first value, whatever its level)."""
    merged: list[tuple[int, int, int]] = []
    lead = leading = 0
    for (_, size), count in zip(runs, starts, strict=True):
        if count > 0:
            merged.append((count, size + lead, 1 + leading))
            lead = leading = 0
        elif merged:
            rows, held, pages = merged[-1]
            merged[-1] = (rows, held + size, pages + 1)
        else:
            lead, leading = lead + size, leading + 1
    if not merged:
        return ((1, lead, leading),) if runs else ()
    return tuple(merged)
