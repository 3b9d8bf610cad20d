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
largest pages come to more than :data:`~tuning.PAGE_ROOM` together.

The same walk says how large a column chunk's values can be once decoded, when its pages
say so (:class:`PlainPages`): values stored whole (``PLAIN``, ``DELTA_LENGTH_BYTE_ARRAY``)
take no more than their pages' bytes, and texts with shared prefixes
(``DELTA_BYTE_ARRAY``) what their pages' lengths say
(:mod:`~egress_offline.readers.parquet_prefixes`, which reads those pages), so
:mod:`~egress_offline.readers.parquet_batches` may read such a chunk in one go instead
of a few thousand rows at a time.

The headers are Thrift's compact protocol (``parquet.thrift``'s ``PageHeader``); only
its type and sizes, and a data page's values count and encoding, are read, and the rest
is skipped by its wire types.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from egress_offline.errors import InputError
from egress_offline.readers import tuning
from egress_offline.readers.parquet_prefixes import PrefixedPages

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
#: ``Encoding``s that store each value whole (its bytes, with or without its length
#: before it): decoded, a page's values take at most its bytes. ``DELTA_BYTE_ARRAY``
#: (shared prefixes) and dictionary indices can stand for far more.
_WHOLE_VALUES: Final = frozenset({0, 6})  # PLAIN, DELTA_LENGTH_BYTE_ARRAY
#: ...``DELTA_BYTE_ARRAY``: a value is its prefix of the value before it and its own
#: suffix, so each is at most the page's bytes long, and a page of 1,000 values that share
#: one 1 MiB text is 1 MiB that decodes to 1 GiB: such a page is read, and its lengths
#: say (:class:`~egress_offline.readers.parquet_prefixes.PrefixedPages`).
_PREFIXED: Final = 7
#: ``PageHeader``'s fields read: type and sizes...
_HEADER_FIELDS: Final = frozenset({1, 2, 3})
#: ...and the data header each data page type is read by, by the field holding it, with
#: its encoding's field (its values' count is field 1): DATA_PAGE's ``DataPageHeader``
#: (5), DATA_PAGE_V2's ``DataPageHeaderV2`` (8)...
_DATA_HEADER: Final = {0: (5, 2), 3: (8, 4)}
#: ...and where the values start: V1's levels' encodings (3: definition, 4: repetition),
#: V2's levels' lengths (5: definition, 6: repetition) and whether it is compressed (7,
#: a bool: written as another type, Thrift's C++ reader skips it, and so does this one).
_DATA_FIELDS: Final = {5: frozenset({1, 2, 3, 4}), 8: frozenset({1, 4, 5, 6})}
_DATA_BOOLS: Final = {8: frozenset({7})}
#: Thrift compact wire types.
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)
#: How deep structs may nest in a header (``PageHeader`` has three levels).
_DEPTH: Final = 32
#: The most elements a list in a header may have: pyarrow's own limit (its readers'
#: ``thrift_container_size_limit``), past which it refuses the file.
_CONTAINER_MOST: Final = 1_000_000
#: Bytes each element takes in a list of these wire types.
_FIXED_WIDTH: Final = {_TRUE: 1, _FALSE: 1, _BYTE: 1, _DOUBLE: 8}
#: 1 where a byte ends a varint (its high bit clear), else 0.
_VARINT_ENDS: Final = bytes(int(byte < 0x80) for byte in range(256))


class PageError(ValueError):
    """A page header that cannot be read."""


class _Short(Exception):
    """The header runs past the bytes read."""


class Page(NamedTuple):
    """What a page header says: its ``PageType``, its sizes decompressed and in the file,
    the header's own length, and for a data page its values' count (levels: nulls too)
    and encoding (None when the header does not say), and the fields of its data header
    that were read, by id (``_DATA_FIELDS``)."""

    kind: int
    decompressed: int
    compressed: int
    header: int
    values: int | None = None
    encoding: int | None = None
    data: dict[int, int] | None = None


class PlainPages(NamedTuple):
    """A column chunk whose every page is a data page of values stored whole, or of texts
    with shared prefixes whose lengths were read: the bytes its values take at most once
    decoded (a whole value's page bytes; a prefixed page's values, exactly), and their
    values (levels) in all."""

    decoded: int
    values: int


class ChunkPages(NamedTuple):
    """What a column chunk's page headers say: its :class:`PlainPages`, or None when some
    page of it is a dictionary page, of another encoding, or past the chunk's end;
    whether it has a dictionary page (whatever the footer says); and a bound on its
    longest value with shared prefixes (``DELTA_BYTE_ARRAY``): what the page's lengths
    say, or its page's size where they could not be read (0: no such page)."""

    whole: PlainPages | None
    dictionary: bool = False
    prefixed: int = 0


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
    walk = _Walk(size)
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        if row_group.num_rows == 0:  # no page of it is read (its chunks point nowhere)
            continue
        largest: list[tuple[int, str]] = []
        for index in columns:
            chunk = row_group.column(index)
            column = metadata.schema.column(index)
            levels = (column.max_repetition_level, column.max_definition_level)
            try:
                held, sizes[group, index] = _walk(source, chunk, walk, levels)
                largest.append((held, chunk.path_in_schema))
            except PageError as exc:  # the file's Error: line at the reader's boundary
                raise PageError(f"row group {group}, column {chunk.path_in_schema}: {exc}") from exc
        total = sum(bytes_ for bytes_, _ in largest)
        if total > tuning.PAGE_ROOM:
            widest, path = max(largest)
            raise InputError(
                f"{name}: row group {group} has pages too large to read within bounds: "
                f"its columns' largest pages come to {total:,} bytes decompressed "
                f"({path}: {widest:,}), over {tuning.PAGE_ROOM >> 20} MiB; write the "
                "file again with smaller pages (pyarrow: write_table(..., "
                "data_page_size=1 << 20, write_batch_size=64))",
                file=name,
            )
    return sizes


class _Walk:
    """One file's walk: its size, every header read, by where it lies (chunks may point
    at the same pages: a crafted file's every chunk at one header of megabytes, read
    once), and the bytes it may still decompress to size prefixed pages
    (:data:`_DECOMPRESS_ROOM` and so many times the file: 200 pages of 1.9 KB of zstd,
    each 60 MiB of bytes pyarrow refuses, took 7.5 s; past it, pages are sized by their
    bytes)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.headers: dict[int, Page] = {}
        self.room = _DECOMPRESS_ROOM + _DECOMPRESS_TIMES * size


#: What a walk may decompress: this, and so many times the file's size (real pages
#: decompress to a few times their size).
_DECOMPRESS_ROOM: Final = 64 << 20
_DECOMPRESS_TIMES: Final = 16


def _walk(source: Any, chunk: Any, walk: _Walk,
          levels: tuple[int, int]) -> tuple[int, ChunkPages]:  # fmt: skip
    """A column chunk's dictionary page and largest data page, decompressed bytes, and
    its :class:`PlainPages` when every page is a data page of values stored whole or
    prefixed with lengths read (by the data header of its own type), the last ends where
    the chunk does, and their values come to the footer's count (pyarrow reads a little
    past the end of old parquet-mr files' chunks, and reads pages until it has that
    count). ``levels``: the column's greatest repetition and definition levels. A
    prefixed page holds its lengths too (4 bytes each, as many as its runs claim)."""
    # where pyarrow starts the chunk (ComputeColumnChunkRange)
    start = chunk.data_page_offset
    dictionary_at = chunk.dictionary_page_offset
    if chunk.has_dictionary_page and dictionary_at and 0 < dictionary_at < start:
        start = dictionary_at
    end = min(start + chunk.total_compressed_size, walk.size)
    at, dictionary, data, total, values, whole, prefixed = start, 0, 0, 0, 0, True, 0
    seen_dictionary = False
    # pages of shared prefixes, sized together once the chunk is walked
    pending, gathered = PrefixedPages(chunk.compression, levels), list[Page]()
    while at < end:
        page = walk.headers.get(at) or walk.headers.setdefault(at, _header_at(source, at))
        prefixes = page.kind in _DATA_PAGES and page.encoding == _PREFIXED
        lengths = 0
        if prefixes:
            gathered.append(page)
            lengths = _gather(source, page, at, pending, walk)
        if page.kind == _DICTIONARY_PAGE:
            dictionary = max(dictionary, page.decompressed)
            seen_dictionary = True
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
    for page, found in zip(gathered, pending.sizes(), strict=True):
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
    return dictionary + data, ChunkPages(plain, seen_dictionary, prefixed)


def _gather(source: Any, page: Page, at: int, pending: PrefixedPages, walk: _Walk) -> int:
    """Read the prefixed page at ``at`` into ``pending``, to be sized with the chunk's
    others: the bytes its lengths take (``PrefixedPages.add``). A page larger than
    :data:`~tuning.PAGE_ROOM` is not read (its row group is refused anyway), nor one
    that runs past the file's end, nor any once the walk's room to decompress is spent:
    sized by its bytes."""
    bytes_ = max(page.decompressed, page.compressed)
    if bytes_ > tuning.PAGE_ROOM or bytes_ > walk.room:
        pending.skip()
        return 0
    raw = source.read_at(page.compressed, at + page.header)
    if len(raw) < page.compressed:
        pending.skip()
        return 0
    walk.room -= bytes_
    return pending.add(page, raw)


def _header_at(source: Any, at: int) -> Page:
    want = _HEADER_FIRST
    while True:
        buffer = source.read_at(want, at)
        try:
            return page_header(buffer)
        except _Short:
            if len(buffer) < want:
                raise PageError(
                    f"the page header at byte {at:,} runs past the file's end"
                ) from None
            if want >= _HEADER_MOST:
                raise PageError(
                    f"the page header at byte {at:,} is over {_HEADER_MOST >> 20} MiB"
                ) from None
            want *= 4


def page_header(buffer: bytes) -> Page:
    """The :class:`Page` whose header ``buffer`` starts with (:class:`PageError` when it
    is not a page header)."""
    reader = _Compact(buffer)
    found = reader.struct_fields(_HEADER_FIELDS, _DATA_FIELDS, _DATA_BOOLS)
    kind, decompressed, compressed = (found.get(key) for key in (1, 2, 3))
    if kind is None or decompressed is None or compressed is None:
        raise PageError("a page header without its type or sizes")
    if decompressed < 0 or compressed < 0:
        raise PageError(f"a page header with a negative size ({decompressed}, {compressed})")
    # the data header of the page's own type, as pyarrow reads it (a V2 page may carry
    # a V1 header too, saying another encoding)
    field, encoding = _DATA_HEADER.get(kind, (0, 0))  # 0: no such field
    data = reader.inner.get(field)
    if data is None:
        return Page(kind, decompressed, compressed, reader.at)
    return Page(kind, decompressed, compressed, reader.at, data.get(1), data.get(encoding), data)


class _Compact:
    """Thrift's compact protocol, as far as page headers need: a struct's i32 fields by
    id, and those of the structs in it named (in :attr:`inner`, by the field holding
    them), everything else skipped by its wire type. As Thrift's C++ reader (pyarrow's)
    does, a field of another wire type than its own is skipped, a field given twice
    keeps its last value, and a struct given twice is one struct of both."""

    def __init__(self, buffer: bytes) -> None:
        self.buffer, self.at = buffer, 0
        self.inner: dict[int, dict[int, int]] = {}

    def struct_fields(self, wanted: frozenset[int],
                      inner: dict[int, frozenset[int]] | None = None,
                      bools: dict[int, frozenset[int]] | None = None,
                      wanted_bools: frozenset[int] = frozenset()) -> dict[int, int]:  # fmt: skip
        found: dict[int, int] = {}
        field = 0
        while True:
            head = self._byte()
            if head == 0:
                return found
            field, kind = self._field(head, field)
            if field in wanted and kind == _I32:
                found[field] = self._zigzag()
            elif field in wanted_bools and kind in (_TRUE, _FALSE):  # its type says which
                found[field] = int(kind == _TRUE)
            elif inner and field in inner and kind == _STRUCT:
                merged = self.inner.setdefault(field, {})
                merged.update(self.struct_fields(inner[field], None, None,
                                                 (bools or {}).get(field, frozenset())))  # fmt: skip
            else:
                self._skip(kind, 1)

    def _field(self, head: int, last: int) -> tuple[int, int]:
        delta, kind = head >> 4, head & 0x0F
        return (last + delta if delta else self._zigzag()), kind

    def _skip(self, kind: int, depth: int) -> None:
        if depth > _DEPTH:
            raise PageError("a page header nested too deep")
        if kind in (_TRUE, _FALSE):
            return
        if kind == _BYTE:
            self._advance(1)
        elif kind in (_I16, _I32, _I64):
            self._varint()
        elif kind == _DOUBLE:
            self._advance(8)
        elif kind == _BINARY:
            self._advance(self._varint())
        elif kind in (_LIST, _SET):
            head = self._byte()
            count, element = head >> 4, head & 0x0F
            if count == 15:
                count = self._varint()
            if count > _CONTAINER_MOST:
                raise PageError(
                    f"a page header with a list of {count:,} elements (pyarrow reads at "
                    f"most {_CONTAINER_MOST:,})"
                )
            if element in _FIXED_WIDTH:  # a bool in a list is a byte of its own
                self._advance(count * _FIXED_WIDTH[element])
            elif element in (_I16, _I32, _I64):
                self._varints(count)
            else:
                for _ in range(count):
                    self._element(element, depth)
        elif kind == _MAP:
            count = self._varint()
            if count:
                types = self._byte()
                for _ in range(count):
                    self._element(types >> 4, depth)
                    self._element(types & 0x0F, depth)
        elif kind == _STRUCT:
            field = 0
            while head := self._byte():
                field, inner = self._field(head, field)
                self._skip(inner, depth + 1)
        else:
            raise PageError(f"not a page header (wire type {kind})")

    def _element(self, kind: int, depth: int) -> None:
        if kind in (_TRUE, _FALSE):
            self._advance(1)  # a bool in a list or map is a byte of its own
        else:
            self._skip(kind, depth + 1)

    def _varints(self, count: int) -> None:
        """Skip ``count`` varints at once: the ``count``-th byte below 0x80 ends them
        (a list of a million in a header took seconds one at a time)."""
        if count == 0:
            return
        window = self.buffer[self.at : self.at + 10 * count]
        ends = window.translate(_VARINT_ENDS)
        if ends.count(1) < count:
            raise _Short
        low, high = count, len(ends)  # the least prefix holding `count` ends
        while low < high:
            middle = (low + high) // 2
            if ends.count(1, 0, middle) >= count:
                high = middle
            else:
                low = middle + 1
        self.at += low

    def _byte(self) -> int:
        if self.at >= len(self.buffer):
            raise _Short
        value = self.buffer[self.at]
        self.at += 1
        return value

    def _advance(self, count: int) -> None:
        if self.at + count > len(self.buffer):
            raise _Short
        self.at += count

    def _varint(self) -> int:
        value = shift = 0
        while True:
            byte = self._byte()
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise PageError("not a page header (a varint over 64 bits)")

    def _zigzag(self) -> int:
        value = self._varint()
        return (value >> 1) ^ -(value & 1)
