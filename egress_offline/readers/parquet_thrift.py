"""Thrift's compact protocol, as far as the Parquet readers need it: a page's header (its
type, sizes, values and encoding, and where its values start) and, from a footer's own
bytes, each column chunk's codec. Everything else is skipped by its wire type, lists of
scalars at once; a field of another wire type than its own is skipped, a field given
twice keeps its last value, and a struct given twice is one struct of both, as Thrift's
C++ reader (pyarrow's) does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, NamedTuple

__all__ = [
    "Page",
    "PageError",
    "PageRefused",
    "Short",
    "footer_codecs",
    "footer_keys",
    "page_header",
    "read_varint",
]

#: ``PageHeader``'s fields read: type and sizes...
_HEADER_FIELDS: Final = frozenset({1, 2, 3})
#: ...and the header each page type that holds values is read by, by the field holding
#: it, with its encoding's field (its values' count is field 1): DATA_PAGE's
#: ``DataPageHeader`` (5), DATA_PAGE_V2's ``DataPageHeaderV2`` (8), DICTIONARY_PAGE's
#: ``DictionaryPageHeader`` (7: pyarrow holds as many entries as it says)...
_DATA_HEADER: Final = {0: (5, 2), 3: (8, 4), 2: (7, 2)}
#: ...and where the values start: V1's levels' encodings (3: definition, 4: repetition),
#: V2's levels' lengths (5: definition, 6: repetition) and whether it is compressed (7,
#: a bool: written as another type, Thrift's C++ reader skips it, and so does this one);
#: a dictionary page's values start at once. A V2 page's rows (3) are its writer's word:
#: pyarrow tells rows apart by their levels (``parquet_levels``).
_DATA_FIELDS: Final = {
    5: frozenset({1, 2, 3, 4}), 8: frozenset({1, 3, 4, 5, 6}), 7: frozenset({1, 2}),
}  # fmt: skip
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


class PageRefused(PageError):
    """A page that can be read but not sized before pyarrow reads it: the file is refused
    with advice of its own (not "the copy may be damaged")."""


class Short(Exception):
    """The header runs past the bytes read."""


def read_varint(buffer: bytes, at: int, most: int) -> tuple[int, int]:
    """The unsigned LEB128 varint at ``at`` in ``buffer`` (Thrift's compact integers,
    Parquet's run headers and lengths) and where it ends. Raises :class:`Short` where
    ``buffer`` ends first, ``ValueError`` for one of more than ``most`` bytes."""
    value = 0
    for shift in range(0, 7 * most, 7):
        if at >= len(buffer):
            raise Short
        byte = buffer[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
    raise ValueError(f"a varint of more than {most} bytes")


class Page(NamedTuple):
    """What a page header says: its ``PageType``, its sizes decompressed and in the file,
    the header's own length, and for a data page its values' count (levels: nulls too)
    and encoding (None when the header does not say), for a dictionary page its entries
    and their encoding, and the fields of that header that were read, by id
    (``_DATA_FIELDS``)."""

    kind: int
    decompressed: int
    compressed: int
    header: int
    values: int | None = None
    encoding: int | None = None
    data: dict[int, int] | None = None


def footer_codecs(buffer: bytes) -> list[list[int]]:
    """Per row group, per column chunk, its codec's value, from a footer's bytes
    (``FileMetaData``: its row groups, 4; a row group's columns, 1; a column's metadata,
    3; its codec, 4), the rest skipped by its wire types."""
    reader = _Compact(buffer)
    groups: list[list[int]] = []
    for _ in reader.each(4, _LIST):
        for _ in reader.elements(_STRUCT):
            groups.append([])
            for _ in reader.each(1, _LIST):
                for _ in reader.elements(_STRUCT):
                    groups[-1].append(_chunk_codec(reader))
    return groups


def footer_keys(buffer: bytes) -> list[tuple[bytes, int]]:
    """Each key of a footer's key-value metadata (``FileMetaData``'s 5, a list of
    ``KeyValue``, each one's key its 1) and where its bytes start in ``buffer``, the
    rest skipped by its wire types."""
    reader = _Compact(buffer)
    found: list[tuple[bytes, int]] = []
    for _ in reader.each(5, _LIST):
        for _ in reader.elements(_STRUCT):
            for _ in reader.each(1, _BINARY):
                length = reader.length()
                found.append((buffer[reader.at : reader.at + length], reader.at))
                reader.skip_bytes(length)
    return found


def _chunk_codec(reader: _Compact) -> int:
    codec = -1
    for _ in reader.each(3, _STRUCT):
        for _ in reader.each(4, _I32):
            codec = reader.zigzag()
    return codec


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

    def fields(self) -> Iterator[tuple[int, int]]:
        """A struct's fields, by id and wire type, each to be read or skipped (``skip``)
        before the next is asked for."""
        field = 0
        while head := self._byte():
            field, kind = self._field(head, field)
            yield field, kind

    def each(self, wanted: int, kind: int) -> Iterator[None]:
        """Each time the struct being read holds field ``wanted`` of wire type ``kind``,
        to be read before the next is asked for; every other field skipped."""
        for field, wire in self.fields():
            if field == wanted and wire == kind:
                yield None
            else:
                self.skip(wire)

    def elements(self, kind: int) -> Iterator[None]:
        """A list's elements of wire type ``kind``, each to be read before the next."""
        head = self._byte()
        count, element = head >> 4, head & 0x0F
        if count == 15:
            count = self._varint()
        if element != kind:
            raise PageError(f"not a Parquet footer (a list of wire type {element})")
        for _ in range(count):
            yield None

    def skip(self, kind: int) -> None:
        self._skip(kind, 1)

    def zigzag(self) -> int:
        return self._zigzag()

    def length(self) -> int:
        """A binary field's length; its bytes follow (``skip_bytes``)."""
        return self._varint()

    def skip_bytes(self, count: int) -> None:
        self._advance(count)

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
            raise Short
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
            raise Short
        value = self.buffer[self.at]
        self.at += 1
        return value

    def _advance(self, count: int) -> None:
        if self.at + count > len(self.buffer):
            raise Short
        self.at += count

    def _varint(self) -> int:
        try:
            value, self.at = read_varint(self.buffer, self.at, 10)
        except ValueError:
            raise PageError("not a page header (a varint over 64 bits)") from None
        return value

    def _zigzag(self) -> int:
        value = self._varint()
        return (value >> 1) ^ -(value & 1)
