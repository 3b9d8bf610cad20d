"""How many lengths a Parquet page of texts stored whole with their lengths first
(``DELTA_LENGTH_BYTE_ARRAY``) claims, from the first bytes of its values, decompressed
no further than they reach.

Such a page is a run of lengths (``DELTA_BINARY_PACKED``) then the texts' bytes, and
pyarrow holds 4 bytes for every length the run's header claims before it reads one
(``DeltaLengthByteArrayDecoder``): a 2.7 KB file of one text whose run claims 2**28
lengths took 1.2 GB to read. The claim is the third number of the run's header, a few
bytes after the page's levels, so only the page's start is decompressed: by Arrow's own
streaming decompressors (gzip, brotli, zstd), or here, a few elements at a time, for the
codecs Arrow has none for (snappy and LZ4's raw blocks, which Hadoop's LZ4 frames).
Where that cannot be done (a stream Arrow may read otherwise, levels longer than
:data:`HEAD_MOST`) the caller decompresses the page whole.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Final

from egress_offline.readers.parquet_thrift import Short, read_varint

__all__ = ["HEAD_MOST", "HeadUnread", "head_readers", "levels_end", "value_heads"]

#: The most bytes decompressed to reach a page's values here (its levels and the run's
#: header); past it, the caller decompresses the page whole.
HEAD_MOST: Final = 64 << 10
#: The bytes of a run's header: four numbers of at most 10 bytes each.
_RUN_HEADER: Final = 40
#: Arrow's streaming decompressors, by the names ``parquet_pages`` reads codecs by.
_STREAMED: Final = {"GZIP": "gzip", "BROTLI": "brotli"}
#: ``Encoding`` of V1 levels: ``RLE`` (a 4-byte length first), ``BIT_PACKED`` (no length).
_RLE: Final = 3
_BIT_PACKED: Final = 4
_DATA_PAGE_V2: Final = 3


class HeadUnread(Exception):
    """The page's start cannot be decompressed here: the caller decompresses it whole, as
    Arrow does."""


class _Short(Exception):
    """The compressed bytes end before the head does."""


#: A page's compressed bytes -> its first ``want`` bytes decompressed (fewer where the
#: stream ends first); raises :class:`_Short` where the bytes given end first.
Decoder = Callable[[bytes, int], bytes]


def value_heads(page: Any, read: Callable[[int], bytes], compression: str,
                levels: tuple[int, int]) -> list[bytes]:  # fmt: skip
    """The first bytes of a data page's values (enough for a run's header: fewer only where
    the values end first), each way pyarrow may read them (a V2 page saying it is not
    compressed, in a compressed chunk, either way; a Hadoop LZ4 page framed or as a raw
    block). ``page``: a ``parquet_pages.Page``; ``read(n)``: the first ``n`` bytes of
    the page's data in the file; ``levels``: the column's greatest repetition and
    definition levels. Raises :class:`HeadUnread`."""
    decoders = _decoders(compression)
    data = page.data or {}
    if page.kind == _DATA_PAGE_V2:
        # levels first, never compressed; the values compressed unless the page says not
        skip = data.get(5, 0) + data.get(6, 0)
        if skip < 0:
            raise HeadUnread("levels")
        ways = decoders if data.get(7, 1) == 1 else [_stored, *decoders]
        return _each(ways, lambda decoder: _head(read, decoder, _RUN_HEADER, skip))
    return _each(decoders, lambda decoder: _values_v1(page, read, decoder, levels))


def head_readers(read: Callable[[int], bytes], compression: str) -> list[Callable[[int], bytes]]:
    """For each way pyarrow may decompress a V1 page (``read(n)``: the first ``n`` bytes of
    its data in the file): its first ``want`` bytes decompressed, fewer where the page
    ends first, at most :data:`HEAD_MOST` (``parquet_levels`` reads its levels so).
    Raises :class:`HeadUnread`."""
    return [partial(_head, read, decoder) for decoder in _decoders(compression)]


def _each(ways: list[Decoder], head: Callable[[Decoder], bytes]) -> list[bytes]:
    """The head read each way. Any way that cannot be read here is :class:`HeadUnread`:
    pyarrow may read it all the same (liblz4 copies from 0 bytes back; Arrow's brotli
    ignores bytes after the stream), so the caller decompresses the page as Arrow does."""
    return [head(way) for way in ways]


def _values_v1(page: Any, read: Callable[[int], bytes], decoder: Decoder,
               levels: tuple[int, int]) -> bytes:  # fmt: skip
    """A V1 page's first bytes past its levels (which are compressed with the values)."""

    def length_at(at: int) -> int:
        return int.from_bytes(_head(read, decoder, at + 4)[at : at + 4], "little")

    try:
        at = levels_end(page, levels, length_at)
    except ValueError as exc:
        raise HeadUnread(str(exc)) from exc
    return _head(read, decoder, at + _RUN_HEADER)[at:]


def levels_end(page: Any, levels: tuple[int, int], length_at: Callable[[int], int]) -> int:
    """Where a V1 data page's values start in its decompressed bytes: past its repetition
    then definition levels, each only where the column has them (``levels``: its
    greatest of each), ``RLE`` ones a 4-byte length (``length_at(offset)``) and that many
    bytes, ``BIT_PACKED`` ones a bit width for each value. Raises ``ValueError`` for
    levels of another encoding."""
    data = page.data or {}
    at = 0
    for most, encoding in ((levels[0], data.get(4, _RLE)), (levels[1], data.get(3, _RLE))):
        if most <= 0:
            continue
        if encoding == _RLE:
            at += 4 + length_at(at)
        elif encoding == _BIT_PACKED:
            at += -(-(page.values or 0) * most.bit_length() // 8)
        else:
            raise ValueError(f"levels of encoding {encoding}")
    return at


def _head(read: Callable[[int], bytes], decoder: Decoder, want: int, skip: int = 0) -> bytes:
    """The first ``want`` bytes of the page's data past its first ``skip`` bytes,
    decompressed (fewer where the stream ends first): from its first 4 KiB in the file,
    then from 16 times as much while it falls short and more may follow."""
    if want > HEAD_MOST:
        raise HeadUnread("levels too long")
    given = 4096
    while True:
        raw = read(skip + given)
        whole = len(raw) < skip + given  # ``read`` gives less only at the page's end
        try:
            head = decoder(raw[skip:], want)
        except _Short:
            if whole:  # Arrow's whole decompression may read it (brotli's trailing bytes)
                raise HeadUnread("a stream that ends before its start does") from None
            head = b""
        except (IndexError, ValueError, OSError) as exc:
            raise HeadUnread(str(exc)) from exc
        if whole or len(head) >= want:
            return head
        given *= 16


def _decoders(compression: str) -> list[Decoder]:
    if compression == "UNCOMPRESSED":
        return [_stored]
    if compression in _STREAMED:
        return [_streamed(_STREAMED[compression])]
    if compression == "ZSTD":
        return [_zstd]
    if compression == "SNAPPY":
        return [_snappy]
    if compression == "LZ4_RAW":
        return [_lz4]
    if compression == "LZ4_HADOOP":  # Arrow reads Hadoop's frames, else a raw block
        return [_hadoop_lz4, _lz4]
    raise HeadUnread(compression)


def _stored(raw: bytes, want: int) -> bytes:
    return raw[:want]


def _streamed(codec: str) -> Decoder:
    def decode(raw: bytes, want: int) -> bytes:
        return _stream_head(_Trickle(raw), want, codec)

    return decode


def _stream_head(source: Any, want: int, codec: str) -> bytes:
    """The first ``want`` bytes of Arrow's streaming decompression of ``source`` (bytes,
    or a file), which reads concatenated streams as one, as its one-shot decompression
    of a page does."""
    import pyarrow as pa  # noqa: PLC0415 - only Parquet inputs need it

    raw = pa.BufferReader(source) if isinstance(source, bytes) else pa.PythonFile(source, "r")
    stream = pa.CompressedInputStream(raw, codec)
    out = bytearray()
    try:
        while len(out) < want:  # a read may give less than asked
            piece = stream.read(want - len(out))
            if not piece:
                break
            out += piece
    except OSError as exc:  # Arrow: "Truncated compressed stream"
        if "runcated" in str(exc):
            raise _Short from exc
        raise
    return bytes(out)


def _zstd(raw: bytes, want: int) -> bytes:
    """zstd decompresses a block at a time (up to 128 KiB): given the frame's header and
    its blocks one more at a time (0.08 ms for a page's first block; a trickle, 0.12 ms
    in many small reads); a frame not read that way (skippable, or ending before the
    head) is trickled."""
    at = _zstd_blocks(raw)
    for _ in range(_ZSTD_TRIES):
        if at is None or at + 3 > len(raw):
            break
        block = int.from_bytes(raw[at : at + 3], "little")
        at += 3 + (1 if (block >> 1) & 3 == 1 else block >> 3)  # an RLE block: one byte
        if at > len(raw):
            raise _Short
        try:
            head = _stream_head(raw[:at], want, "zstd")
        except _Short:
            head = b""
        if len(head) >= want or at == len(raw):
            return head
        if block & 1:  # the frame's last block: another frame follows
            break
    return _stream_head(_Trickle(raw), want, "zstd")


#: Blocks a zstd frame is given one more at a time, each time read again from its start;
#: past them (a crafted frame of many small blocks), it is trickled.
_ZSTD_TRIES: Final = 4


def _zstd_blocks(raw: bytes) -> int | None:
    """Where a zstd frame's first block starts: past its magic number, its frame header's
    descriptor, window, dictionary and content size; None where it is no such frame."""
    if raw[:4] != b"\x28\xb5\x2f\xfd" or len(raw) < 5:
        return None
    descriptor = raw[4]
    single = descriptor >> 5 & 1
    size = (1 if single else 0, 2, 4, 8)[descriptor >> 6]
    return 5 + (0 if single else 1) + (0, 1, 2, 4)[descriptor & 3] + size


class _Trickle:
    """``raw`` as a file read 1 KiB at a time: Arrow's streaming decompressor decompresses
    all it is given at once (64 KiB; a page of texts, 0.5 to 1.4 ms), so it is given
    little more than the start needs (0.06 to 0.1 ms; zstd, a block at least)."""

    closed = False

    def __init__(self, raw: bytes) -> None:
        self.raw, self.at = raw, 0

    def read(self, size: int = -1) -> bytes:
        step = _TRICKLE if size < 0 else min(size, _TRICKLE)
        piece = self.raw[self.at : self.at + step]
        self.at += len(piece)
        return piece

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


_TRICKLE: Final = 1024


def _snappy(raw: bytes, want: int) -> bytes:
    """Snappy's raw format: the length decompressed, then literals and copies."""
    size, at = _varint(raw, 0)
    out = bytearray()
    want = min(want, size)
    while len(out) < want:
        if at >= len(raw):
            raise _Short
        tag = raw[at]
        at += 1
        kind = tag & 3
        if kind == 0:  # a literal: its length - 1 in the tag, or in the 1 to 4 bytes after
            length = tag >> 2
            if length >= 60:
                length = int.from_bytes(_take(raw, at, length - 59), "little")
                at += (tag >> 2) - 59
            out += _take(raw, at, length + 1)
            at += length + 1
            continue
        if kind == 1:
            length, offset = 4 + ((tag >> 2) & 7), (tag >> 5) << 8 | _take(raw, at, 1)[0]
            at += 1
        else:
            width = 2 if kind == 2 else 4
            length, offset = (tag >> 2) + 1, int.from_bytes(_take(raw, at, width), "little")
            at += width
        _copy(out, offset, min(length, want - len(out)))
    return bytes(out[:want])


def _lz4(raw: bytes, want: int) -> bytes:
    """An LZ4 block: sequences of literals and a copy, the last of literals only."""
    out = bytearray()
    at = 0
    while len(out) < want:
        token = _take(raw, at, 1)[0]
        at += 1
        literals, at = _lz4_length(raw, at, token >> 4)
        out += _take(raw, at, literals)
        at += literals
        if at == len(raw) or len(out) >= want:  # the block's last literals
            break
        offset = int.from_bytes(_take(raw, at, 2), "little")
        length, at = _lz4_length(raw, at + 2, token & 15)
        _copy(out, offset, min(length + 4, want - len(out)))
    return bytes(out[:want])


def _hadoop_lz4(raw: bytes, want: int) -> bytes:
    """Hadoop's LZ4 frames: each a decompressed and a compressed size (big-endian) and
    one LZ4 block."""
    out = bytearray()
    at = 0
    while len(out) < want and at + 8 <= len(raw):
        size = int.from_bytes(raw[at + 4 : at + 8], "big")
        block = raw[at + 8 : at + 8 + size]
        if len(block) < size:
            raise _Short
        out += _lz4(block, want - len(out))
        at += 8 + size
    if len(out) < want and at < len(raw):
        raise _Short
    return bytes(out[:want])


def _lz4_length(raw: bytes, at: int, length: int) -> tuple[int, int]:
    """A length of 15 goes on in the bytes after, while they are 255."""
    if length == 15:  # a run of 255s read at once: a page of them is megabytes
        run = len(raw) - at - len(raw[at:].lstrip(b"\xff"))
        length += 255 * run + _take(raw, at + run, 1)[0]
        at += run + 1
    return length, at


def _copy(out: bytearray, offset: int, length: int) -> None:
    """Append ``length`` bytes from ``offset`` back (they may overlap what they add)."""
    if not 0 < offset <= len(out):
        raise ValueError(f"a copy from {offset:,} bytes back, after {len(out):,}")
    start = len(out) - offset
    if offset >= length:
        out += out[start : start + length]
    else:  # the last ``offset`` bytes over and over (a page of levels: a copy a run)
        out += (out[start:] * (length // offset + 1))[:length]


def _take(raw: bytes, at: int, length: int) -> bytes:
    piece = raw[at : at + length]
    if len(piece) < length:
        raise _Short
    return piece


def _varint(raw: bytes, at: int) -> tuple[int, int]:
    try:
        return read_varint(raw, at, 6)
    except Short:
        raise _Short from None
    except ValueError:
        raise ValueError("a length of more than 32 bits") from None
