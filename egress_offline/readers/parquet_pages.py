"""The sizes of a Parquet file's pages, read from their headers before any page is: a
page is decompressed whole, and its header may declare up to 2 GiB.

pyarrow holds a column's current data page (and its dictionary page) decompressed while
it reads the column, whatever batch size it is asked for, and a writer may put any
number of values in a page: pyarrow's own puts 1,024 in one before it looks at the
page's size, so 1,900 rows of one 1 MiB text compress to 0.1 MiB of file and decompress
to 1 GiB pages (1.4 GB of memory to read). The footer's sizes are the writer's word; a
page's header is what pyarrow allocates by (a page that decompresses to more than its
header says is an error). So before a file's rows are read, :func:`check_pages` walks
the page headers of every column chunk it will read (a positional read of a few hundred
bytes each: 764 pages, 7 ms, for a 137 MB file) and refuses a row group whose columns'
largest pages come to more than :data:`~tuning.PAGE_ROOM` together. A page's room
counts the lengths pyarrow holds before it decodes a value, 4 bytes for each its runs
claim, however few values the page holds: of texts with shared prefixes (read with
them, below) and of texts stored with their lengths first (``DELTA_LENGTH_BYTE_ARRAY``,
from the page's first bytes: :mod:`~egress_offline.readers.parquet_heads`); a dictionary
page's, 20 bytes for each text entry its header says (:data:`_ENTRY_HELD`). In files
of parquet-mr before 1.2.9 pyarrow reads on past a chunk's end (PARQUET-816): so does
the walk, in every file, while a chunk's pages hold fewer values than it says.

The same walk says how large a column chunk's values can be once decoded, when its pages
say so (:class:`PlainPages`): values stored whole (``PLAIN``, ``DELTA_LENGTH_BYTE_ARRAY``)
take no more than their pages' bytes, and texts with shared prefixes
(``DELTA_BYTE_ARRAY``) what their pages' lengths say
(:mod:`~egress_offline.readers.parquet_prefixes`, which reads those pages), so
:mod:`~egress_offline.readers.parquet_batches` may read such a chunk in one go instead
of a few thousand rows at a time. Where a list column's pages of values stored whole
come to more than :data:`~tuning.READ_ROOM`, the walk counts the rows starting in each
(their repetition levels: :mod:`~egress_offline.readers.parquet_levels`), by which
reads are sized, and refuses a row group holding a row whose values in a column come
to more than :data:`~tuning.LINE_LIMIT` besides the largest page: pyarrow holds a row
whole, however few rows it is asked for.

The headers are Thrift's compact protocol (``parquet.thrift``'s ``PageHeader``), read
by :mod:`~egress_offline.readers.parquet_thrift`: only their type and sizes, and a data
page's values count, encoding and where its values start. A shared-prefix page's codec
is read from the footer's own bytes the same way (pyarrow aborts the process on a codec
value it does not know); a codec whose pages cannot be read here, or more of them to
decompress than :data:`_DECOMPRESS_ROOM` and :data:`_DECOMPRESS_TIMES` times the file,
is the file's ``Error:``: their lengths could claim gigabytes unseen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from egress_offline.errors import InputError
from egress_offline.readers import tuning
from egress_offline.readers.parquet_dictionaries import as_dictionary, longest_entry
from egress_offline.readers.parquet_heads import HeadUnread, value_heads
from egress_offline.readers.parquet_levels import Budget, RowTooLarge, chunk_rows
from egress_offline.readers.parquet_prefixes import PrefixedPages, run_claim, whole_claim
from egress_offline.readers.parquet_thrift import (
    Page,
    PageError,
    PageRefused,
    Short,
    footer_codecs,
    page_header,
)

__all__ = [
    "ChunkPages",
    "Page",
    "PageError",
    "PageSizes",
    "PlainPages",
    "check_pages",
    "page_header",
]

#: Bytes read for a page header first; a longer one (its statistics hold long values)
#: is read again, four times as long each time, up to :data:`_HEADER_MOST`.
_HEADER_FIRST: Final = 256
_HEADER_MOST: Final = 16 << 20
#: ``PageType``: the pages whose values are decoded, and the dictionary page.
_DATA_PAGES: Final = frozenset({0, 3})  # DATA_PAGE, DATA_PAGE_V2
_DICTIONARY_PAGE: Final = 2
#: ``Encoding``s of indices into a dictionary page: PLAIN_DICTIONARY, RLE_DICTIONARY.
_INDICES: Final = frozenset({2, 8})
#: ``Encoding``s that store each value whole (its bytes, with or without its length
#: before it): decoded, a page's values take at most its bytes. ``DELTA_BYTE_ARRAY``
#: (shared prefixes) and dictionary indices can stand for far more.
_WHOLE_VALUES: Final = frozenset({0, 6})  # PLAIN, DELTA_LENGTH_BYTE_ARRAY
#: ...``DELTA_BYTE_ARRAY``: a value is its prefix of the value before it and its own
#: suffix, so each is at most the page's bytes long, and a page of 1,000 values that share
#: one 1 MiB text is 1 MiB that decodes to 1 GiB: such a page is read, and its lengths
#: say (:class:`~egress_offline.readers.parquet_prefixes.PrefixedPages`).
_PREFIXED: Final = 7
#: ...and ``DELTA_LENGTH_BYTE_ARRAY``: values whole, their lengths in a run first, of which
#: pyarrow holds as many as the run claims (:mod:`~egress_offline.readers.parquet_heads`).
_LENGTHS_FIRST: Final = 6


class PlainPages(NamedTuple):
    """A column chunk whose every page is a data page of values stored whole, or of texts
    with shared prefixes whose lengths were read: the bytes its values take at most once
    decoded (a whole value's page bytes; a prefixed page's values, exactly), and their
    values (levels) in all."""

    decoded: int
    values: int


class ChunkPages(NamedTuple):
    """What a column chunk's page headers say: its :class:`PlainPages`, or None when some
    page of it is a dictionary page, of another encoding, or past the chunk's end; a
    bound on its longest value with shared prefixes (``DELTA_BYTE_ARRAY``): what the page's lengths
    say, or its page's size where they could not be read (0: no such page); and the
    values its data pages say they hold (nulls too)."""

    whole: PlainPages | None
    prefixed: int = 0
    values: int = 0
    #: what its largest dictionary page holds once pyarrow has read it: its bytes, and
    #: :data:`_ENTRY_HELD` for each entry its header says
    dictionary_held: int = 0
    #: when every data page holds indices into its dictionary page: that page's entries
    #: (read as a dictionary, each read's dictionary holds them all, fewer where the
    #: page repeats one); else 0
    indexed: int = 0
    #: where its dictionary page's header is (-1: it has none)
    dictionary_at: int = -1
    #: a text column's chunk with a dictionary page, read as text: its longest entry
    #: (``parquet_dictionaries.longest_entry``); else 0
    longest: int = 0
    #: its data pages that hold values, in order: each one's values (nulls too) and the
    #: most bytes they take decoded where they are stored whole (its bytes; 0 for
    #: indices into the dictionary page, and for shared prefixes, sized as ``prefixed``)
    runs: tuple[tuple[int, int], ...] = ()
    #: a repeated column's chunk whose ``runs`` come to more than ``tuning.READ_ROOM``:
    #: the rows starting in each of those pages (``parquet_levels.chunk_starts``); else
    #: None (any read of the chunk fits the room)
    starts: tuple[int, ...] | None = None

    @property
    def dictionary(self) -> bool:
        """Has it a dictionary page (whatever the footer says)?"""
        return self.dictionary_at >= 0


#: Bytes pyarrow holds for each entry of a dictionary page beside the page itself, by
#: the column's physical type, however short the entry: for a text, a 16-byte reference
#: to it and a 4-byte offset (a 4.7 KB file whose dictionary page says 15.7 M empty
#: texts, 60 MiB of lengths, took 506 MB); for a fixed-length one, a reference. A
#: number's entries take their page's bytes (a Polars file of 2 M rows in one row group
#: holds a dictionary of 892,000 byte counts, 8 bytes each). A real dictionary page
#: holds at most about 1 MiB of values (pyarrow's and parquet-mr's limit).
_ENTRY_HELD: Final = {"BYTE_ARRAY": 20, "FIXED_LEN_BYTE_ARRAY": 8}

#: Per row group and leaf column checked, its :class:`ChunkPages`.
PageSizes = dict[tuple[int, int], ChunkPages]


def check_pages(source: Any, metadata: Any, columns: Sequence[int], name: str) -> PageSizes:
    """Raise :class:`InputError` when, in some row group, the largest pages of the leaf
    columns ``columns`` (their indexes) come to more than :data:`~tuning.PAGE_ROOM`
    decompressed: a column's dictionary page and its largest data page, which pyarrow
    holds while it reads the column. ``source``: the file, read positionally; ``name``:
    the file as the user named it. Returns what the pages say of each chunk's size."""
    size = source.size()
    sizes: PageSizes = {}
    walk = _Walk(source, size)
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        largest: list[tuple[int, str, int]] = []  # held, path, of it the dictionary's
        for index in columns:
            chunk = row_group.column(index)
            column = metadata.schema.column(index)
            levels = (column.max_repetition_level, column.max_definition_level)
            try:
                if row_group.num_rows == 0:  # no page of it is read (its chunks may
                    # point nowhere): its footer alone must not hide rows
                    _rows_held(chunk.num_values, 0, levels)
                    continue
                entry = _ENTRY_HELD.get(column.physical_type, 0)
                held, sizes[group, index] = _walk(chunk, walk, levels, (group, index), entry)
                largest.append((held, chunk.path_in_schema,
                                sizes[group, index].dictionary_held))  # fmt: skip
                _rows_held(max(sizes[group, index].values, chunk.num_values),
                           row_group.num_rows, levels)  # fmt: skip
            except RowTooLarge as exc:
                raise InputError(exc.message(name, group, chunk.path_in_schema),
                                 file=name) from exc  # fmt: skip
            except PageRefused as exc:  # readable, not sizable: its own advice
                raise InputError(f"{name}: row group {group}, column "
                                 f"{chunk.path_in_schema}: {exc}", file=name) from exc  # fmt: skip
            except PageError as exc:  # the file's Error: line at the reader's boundary
                raise PageError(f"row group {group}, column {chunk.path_in_schema}: {exc}") from exc
        total = sum(bytes_ for bytes_, _, _ in largest)
        if total > tuning.PAGE_ROOM:
            raise InputError(_too_large(name, group, total, max(largest)), file=name)
    _text_dictionaries(metadata, columns, sizes, walk)
    return sizes


def _text_dictionaries(metadata: Any, columns: Sequence[int], sizes: PageSizes,
                       walk: _Walk) -> None:  # fmt: skip
    """For each text column not read as a dictionary (``parquet_dictionaries``), the
    longest entry of each of its chunks' dictionary pages, in ``sizes``."""
    for index in columns:
        if metadata.schema.column(index).physical_type != "BYTE_ARRAY":
            continue
        chunks = [sizes[group, index] for group in range(metadata.num_row_groups)
                  if (group, index) in sizes]  # fmt: skip
        if as_dictionary(chunks):
            continue
        for group in range(metadata.num_row_groups):
            found = sizes.get((group, index))
            if found is None or not found.dictionary:
                continue
            longest = walk.longest.get(found.dictionary_at)
            if longest is None:  # chunks may share a page: read once
                try:
                    compression = walk.codec(group, index)
                except PageError:
                    compression = "UNKNOWN"
                page = walk.headers[found.dictionary_at]
                longest = longest_entry(walk.source, found.dictionary_at, page, compression)
                walk.longest[found.dictionary_at] = longest
            sizes[group, index] = found._replace(longest=max(1, longest))


def _too_large(name: str, group: int, total: int, widest: tuple[int, str, int]) -> str:
    """The message of a row group whose pages come to ``total`` bytes held, the most in
    ``widest`` (held, path, of it its dictionary's): its advice is for the larger."""
    held, path, dictionary = widest
    if 2 * dictionary >= held:
        what = f"{path}'s dictionary page and its entries: {dictionary:,}"
        advice = (
            "smaller dictionaries (pyarrow: write_table(..., dictionary_pagesize_limit=1 << 20))"
        )
    else:
        what = f"{path}: {held:,}"
        advice = (
            "smaller pages (pyarrow: write_table(..., data_page_size=1 << 20, write_batch_size=64))"
        )
    return (
        f"{name}: row group {group} has pages too large to read within bounds: its "
        f"columns' largest pages come to {total:,} bytes decompressed ({what}), over "
        f"{tuning.PAGE_ROOM >> 20} MiB; write the file again with {advice}"
    )


def _rows_held(values: int, rows: int, levels: tuple[int, int]) -> None:
    """Raise :class:`PageError` when a column of one value a row (no repetition) holds
    more values, by its pages or its footer, than its row group says it has rows:
    pyarrow reads only as many rows as the row group says, and the rest would go
    unread, unsaid (a footer patched to say 50 rows of 100, or 0, read 50, or none,
    exit 0)."""
    if levels[0] == 0 and values > rows:
        raise PageError(
            f"it holds {values:,} values, one a row, but its row group says {rows:,} "
            "rows: only those would be read"
        )


class _Walk:
    """One file's walk: its size, every header read, by where it lies (chunks may point
    at the same pages: a crafted file's every chunk at one header of megabytes, read
    once), and the bytes it may still decompress to size prefixed pages
    (:data:`_DECOMPRESS_ROOM` and so many times the file: 200 pages of 1.9 KB of zstd,
    each 60 MiB of bytes pyarrow refuses, took 7.5 s; past it, pages are sized by their
    bytes)."""

    def __init__(self, source: Any, size: int) -> None:
        self.source, self.size = source, size
        self.headers: dict[int, Page] = {}
        #: the longest entry of each dictionary page read for it, by where it is
        self.longest: dict[int, int] = {}
        self.room = _DECOMPRESS_ROOM + _DECOMPRESS_TIMES * size
        #: the runs of levels it may still count, and the rows starting in each page
        #: counted, by where it is and its levels' width (``parquet_levels``)
        self.levels = Budget()
        self.starts: dict[tuple[int, int], int] = {}
        self._codecs: list[list[int]] | None = None

    def codec(self, group: int, index: int) -> str:
        """The codec of a column chunk, by its name (``_CODEC_NAMES``), read from the
        footer's own bytes: pyarrow's ``ColumnChunkMetaData.compression`` aborts the
        process on a value it does not know (``Unsupported compression codec value: 8``).
        Read once, when a prefixed page is first met."""
        if self._codecs is None:
            tail = self.source.read_at(8, self.size - 8)
            length = int.from_bytes(tail[:4], "little")
            if tail[4:] != b"PAR1" or not 0 < length <= self.size - 12:
                raise PageError("a footer that cannot be read")
            self._codecs = footer_codecs(self.source.read_at(length, self.size - 8 - length))
        try:
            return _CODEC_NAMES.get(self._codecs[group][index], "UNKNOWN")
        except IndexError:
            raise PageError("a column chunk the footer does not have") from None


#: What pyarrow reads past a chunk's end in files of parquet-mr before 1.2.9, which left
#: a dictionary page's header out of its chunk's size (PARQUET-816; Arrow's
#: ``kMaxDictHeaderSize``): it reads pages there until it has the chunk's values. The
#: walk does so in every file: Arrow's reading of the writer's version is its own
#: (``1.3-SNAPSHOT`` is 1.0.0 there), and in a file whose chunks hold their values it
#: costs nothing.
_PADDING: Final = 100


#: Parquet's ``CompressionCodec`` values, by the names ``parquet_prefixes`` reads them by
#: (Hadoop's framing of LZ4, Parquet's deprecated ``LZ4``, is not read there).
_CODEC_NAMES: Final = {0: "UNCOMPRESSED", 1: "SNAPPY", 2: "GZIP", 3: "LZO", 4: "BROTLI",
                       5: "LZ4_HADOOP", 6: "ZSTD", 7: "LZ4_RAW"}  # fmt: skip
#: What a walk may decompress: this, and so many times the file's size (real pages
#: decompress to a few times their size).
_DECOMPRESS_ROOM: Final = 64 << 20
_DECOMPRESS_TIMES: Final = 16


def _walk(chunk: Any, walk: _Walk, levels: tuple[int, int], place: tuple[int, int],
          entry: int) -> tuple[int, ChunkPages]:  # fmt: skip
    """A column chunk's dictionary page and largest data page, decompressed bytes, and
    its :class:`PlainPages` when every page is a data page of values stored whole or
    prefixed with lengths read (by the data header of its own type), the last ends where
    the chunk does, and their values come to the footer's count (pyarrow reads pages
    until it has that count, up to :data:`_PADDING` bytes past the chunk's end in old
    parquet-mr files: so does the walk, where it stops at a header it cannot read).
    ``levels``: the column's greatest repetition and definition levels; ``place``: its
    row group and leaf column; ``entry``: the bytes pyarrow holds for each entry of a
    dictionary page beside its bytes. A page with runs of lengths holds them too (4
    bytes each, as many as its runs claim)."""
    # where pyarrow starts the chunk (ComputeColumnChunkRange)
    start = chunk.data_page_offset
    dictionary_at = chunk.dictionary_page_offset
    if chunk.has_dictionary_page and dictionary_at and 0 < dictionary_at < start:
        start = dictionary_at
    end = min(start + chunk.total_compressed_size, walk.size)
    padded = end + min(_PADDING, walk.size - end)
    at, dictionary, data, total, values, whole, prefixed = start, 0, 0, 0, 0, True, 0
    seen, entries, indices, dictionary_at = 0, 0, True, -1
    runs: list[tuple[int, int]] = []
    placed: list[tuple[int, Page]] = []  # the pages of ``runs``, where each lies
    # pages of shared prefixes, sized together once the chunk is walked
    pending: PrefixedPages | None = None
    gathered: list[Page] = []
    while at < end or (at < padded and seen < chunk.num_values):
        try:
            page = walk.headers.get(at) or walk.headers.setdefault(at, _header_at(walk.source, at))
        except PageError:
            if at < end:
                raise
            break  # past the chunk's end, pyarrow cannot read it either
        if page.kind in _DATA_PAGES:
            seen += page.values or 0
            indices = indices and page.encoding in _INDICES
            if page.values:  # its values decoded: at most its bytes, where stored whole
                apart = page.encoding in _INDICES or page.encoding == _PREFIXED  # sized apart
                runs.append((page.values, 0 if apart else max(page.decompressed,
                                                              page.compressed)))  # fmt: skip
                placed.append((at, page))
        prefixes = page.kind in _DATA_PAGES and page.encoding == _PREFIXED
        lengths = 0
        if prefixes:
            pending = pending or PrefixedPages(walk.codec(*place), levels)
            gathered.append(page)
            lengths = _gather(page, at, pending, walk)
        elif page.kind in _DATA_PAGES and page.encoding == _LENGTHS_FIRST:
            lengths = 4 * _length_claim(page, at, walk, levels, place)
        if page.kind == _DICTIONARY_PAGE:
            dictionary = max(dictionary, _dictionary_held(page, entry))
            if dictionary_at < 0:  # the one pyarrow reads: it stops at the chunk's
                # count of values, and refuses a second dictionary page before it
                dictionary_at, entries = at, page.values or 0
        else:
            data = max(data, page.decompressed + lengths)
        if (not prefixes and page.kind in _DATA_PAGES and page.encoding in _WHOLE_VALUES
                and page.values is not None and page.values > 0):  # fmt: skip
            # an uncompressed page is read by its size in the file, whatever it declares
            total += max(page.decompressed, page.compressed)
            values += page.values
        elif not prefixes:  # the prefixed pages are counted once sized, below
            whole = False
        at += page.header + page.compressed
    for page, found in zip(gathered, pending.sizes() if pending else [], strict=True):
        if found is None:  # each value at most its page long
            prefixed = max(prefixed, page.decompressed, page.compressed)
            whole = False
        else:
            prefixed = max(prefixed, found.longest)
            total += found.decoded
            values += page.values or 0
            whole = whole and bool(page.values)
    # pyarrow reads pages until it has the footer's count of values: past the chunk's
    # end for old parquet-mr files, and not every page where some say fewer or more
    whole = whole and at == start + chunk.total_compressed_size and values == chunk.num_values
    plain = PlainPages(total, values) if whole else None
    indexed = entries if indices and seen else 0
    starts = chunk_rows(placed, runs, walk, levels, lambda: walk.codec(*place))
    pages = ChunkPages(plain, prefixed, seen, dictionary, indexed, dictionary_at,
                       runs=tuple(runs), starts=starts)  # fmt: skip
    return dictionary + data, pages


def _dictionary_held(page: Page, entry: int) -> int:
    """What pyarrow holds of a dictionary page once it has read it: the page
    decompressed, and ``entry`` bytes (:data:`_ENTRY_HELD`) for each entry its header
    says (as many as it decodes, however few bytes the page has)."""
    entries = page.values or 0
    if entries < 0:
        raise PageError(f"a dictionary page of {entries:,} entries")
    return page.decompressed + entry * entries


def _gather(page: Page, at: int, pending: PrefixedPages, walk: _Walk) -> int:
    """Read the prefixed page at ``at`` into ``pending``, to be sized with the chunk's
    others: the bytes its lengths take (``PrefixedPages.add``). A page larger than
    :data:`~tuning.PAGE_ROOM` is not read (its row group is refused anyway), nor one
    that runs past the file's end, nor any once the walk's room to decompress is spent:
    sized by its bytes."""
    bytes_ = max(page.decompressed, page.compressed)
    if bytes_ > tuning.PAGE_ROOM:
        pending.skip()
        return 0
    if not pending.readable:
        raise PageRefused(
            f"its texts of shared prefixes (DELTA_BYTE_ARRAY) are compressed with "
            f"{pending.compression}, which is not read here: their pages' lengths, which "
            "may claim gigabytes, cannot be counted before they are read; write the file "
            "again with another codec (zstd, snappy)"
        )
    # what the page decompresses to, or, uncompressed, what is read of it
    spent = page.compressed if pending.compression == "UNCOMPRESSED" else bytes_
    if spent > walk.room:
        raise PageRefused(
            f"its texts of shared prefixes (DELTA_BYTE_ARRAY) decompress to more than "
            f"{_DECOMPRESS_ROOM >> 20} MiB and {_DECOMPRESS_TIMES} times the file's size in "
            "all, more than a real export's: their lengths cannot all be counted before "
            "they are read; write the file again without DELTA_BYTE_ARRAY"
        )
    raw = walk.source.read_at(page.compressed, at + page.header)
    if len(raw) < page.compressed:
        pending.skip()
        return 0
    walk.room -= spent
    return pending.add(page, raw)


def _length_claim(page: Page, at: int, walk: _Walk, levels: tuple[int, int],
                  place: tuple[int, int]) -> int:  # fmt: skip
    """The count of lengths the run of the ``DELTA_LENGTH_BYTE_ARRAY`` page at ``at``
    claims: from its first bytes decompressed, else (levels over 64 KiB, a stream read
    here no way) from the page decompressed whole, within the walk's room. A page larger
    than :data:`~tuning.PAGE_ROOM` is not read (its row group is refused anyway)."""
    if max(page.decompressed, page.compressed) > tuning.PAGE_ROOM:
        return 0
    start = at + page.header
    end = min(start + page.compressed, walk.size)
    compression = walk.codec(*place)
    try:
        heads = value_heads(page, lambda n: walk.source.read_at(min(n, end - start), start),
                            compression, levels)  # fmt: skip
        return max((run_claim(head) for head in heads), default=0)
    except HeadUnread:
        pass
    spent = page.compressed if compression == "UNCOMPRESSED" else page.decompressed
    if spent > walk.room:
        raise PageRefused(
            f"its texts stored with their lengths first (DELTA_LENGTH_BYTE_ARRAY) decompress "
            f"to more than {_DECOMPRESS_ROOM >> 20} MiB and {_DECOMPRESS_TIMES} times the "
            "file's size in all, more than a real export's, and a page's start could not "
            "be read alone: their lengths cannot all be counted before they are read; "
            "write the file again without DELTA_LENGTH_BYTE_ARRAY"
        )
    walk.room -= spent
    return whole_claim(page, walk.source.read_at(end - start, start), compression, levels)


def _header_at(source: Any, at: int) -> Page:
    want = _HEADER_FIRST
    while True:
        buffer = source.read_at(want, at)
        try:
            return page_header(buffer)
        except Short:
            if len(buffer) < want:
                raise PageError(
                    f"the page header at byte {at:,} runs past the file's end"
                ) from None
            if want >= _HEADER_MOST:
                raise PageError(
                    f"the page header at byte {at:,} is over {_HEADER_MOST >> 20} MiB"
                ) from None
            want *= 4
