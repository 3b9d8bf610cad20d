"""Compressed inputs: one walker over concatenated gzip members and zstd frames, used by
sniffing (the first bytes of text), the text check of compressed NDJSON and the readers
that decompress in Python (the careful reader, JSON documents, UTF-8 copies) alike.

Every call to a decompressor gives at most :data:`~tuning.INFLATE_CAP` bytes, whatever the
input: a small file that expands to gigabytes (a "bomb") is read a bounded piece at a
time, like any other. gzip is inflated by ISA-L (``isal``, about three times zlib's speed)
where it is installed, else by zlib; zstd by the standard library's ``compression.zstd``
(its backport before Python 3.14).
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Generator, Iterator
from typing import IO, Any, Final

from egress_offline.readers import tuning
from egress_offline.readers.model import Compression

__all__ = ["GZIP_MAGIC", "PARQUET_MAGIC", "ZSTD_MAGIC", "compression_of", "decompressed"]

GZIP_MAGIC: Final = b"\x1f\x8b"
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
PARQUET_MAGIC: Final = b"PAR1"
#: Compressed bytes read at a time from a compressed file.
_INPUT: Final = 1 << 20


def compression_of(head: bytes) -> Compression:
    """The compression a file's first bytes announce."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def decompressed(
    handle: IO[bytes],
    compression: Compression,
    note_damage: Callable[[str], None],
    *,
    read_size: int | None = None,
    stop: threading.Event | None = None,
) -> Iterator[bytes]:
    """The text of a file, a piece at a time (at most :data:`~tuning.INFLATE_CAP` bytes
    each), up to the first damage, which is passed to ``note_damage`` instead of raised:
    everything before it is still delivered. The handle is read ``read_size`` bytes at a
    time, and only as far as the caller takes pieces; once ``stop`` is set, no further
    (the text then ends early: a stream of empty members gives no piece to stop at)."""
    if compression == "none":
        size = read_size or tuning.BLOCK
        while block := handle.read(size):
            yield block
        return
    kind, magic, new = _codec(compression)
    yield from _members(handle, read_size or _INPUT, kind=kind, magic=magic, new_decoder=new,
                        note_damage=note_damage, stop=stop)  # fmt: skip


class _Inflater:
    """One gzip member's or zstd frame's decoder, whatever the library: ``feed`` gives
    the text of an input in pieces of at most the cap, ``eof`` says the member ended,
    ``unused_data`` holds what came after it."""

    def __init__(self, decoder: Any, *, zlib_like: bool) -> None:
        self._decoder = decoder
        self._zlib_like = zlib_like

    @property
    def eof(self) -> bool:
        return bool(self._decoder.eof)

    @property
    def unused_data(self) -> bytes:
        return bytes(self._decoder.unused_data)

    def feed(self, data: bytes) -> Iterator[bytes]:
        cap = tuning.INFLATE_CAP
        decoder = self._decoder
        if self._zlib_like:  # input it could not take yet waits in unconsumed_tail
            while True:
                out = decoder.decompress(data, cap)
                if out:
                    yield out
                if decoder.eof:
                    return
                data = decoder.unconsumed_tail
                if not data and len(out) < cap:
                    return
        else:  # zstd keeps its input, and says when it needs more
            out = decoder.decompress(data, cap)
            if out:
                yield out
            while not decoder.eof and not decoder.needs_input:
                out = decoder.decompress(b"", cap)
                if out:
                    yield out


def _inflate_module() -> Any:
    """ISA-L's zlib, the faster inflater, where it is installed; else zlib."""
    try:
        from isal import isal_zlib  # noqa: PLC0415

        return isal_zlib
    except ImportError:  # pragma: no cover - isal is a dependency; zlib still works
        return zlib


def _codec(compression: Compression) -> tuple[str, bytes, Callable[[], _Inflater]]:
    if compression == "gzip":
        module = _inflate_module()
        return "gzip", GZIP_MAGIC, lambda: _Inflater(module.decompressobj(wbits=31), zlib_like=True)
    zstd = zstd_module()
    return "zstd", ZSTD_MAGIC, lambda: _Inflater(zstd.ZstdDecompressor(), zlib_like=False)


def zstd_module() -> Any:
    """The standard library's zstd (Python 3.14), or its backport."""
    try:
        from compression import zstd  # type: ignore[import-not-found]  # noqa: PLC0415
    except ImportError:
        from backports import zstd  # noqa: PLC0415
    return zstd


def _errors(kind: str) -> tuple[type[Exception], ...]:
    if kind == "gzip":
        return tuple({zlib.error, _inflate_module().error})
    return (zstd_module().ZstdError,)


def _members(handle: IO[bytes], size: int, *, kind: str, magic: bytes,
             new_decoder: Callable[[], _Inflater], note_damage: Callable[[str], None],
             stop: threading.Event | None = None) -> Iterator[bytes]:  # fmt: skip
    """Decompress concatenated gzip members or zstd frames, delivering everything before
    the first damage (a cut, corrupt data, or bytes that are not another member). NUL
    padding after the last member, as crashed writers leave, is not damage. A member
    whose text decompresses whole but fails its checksum keeps all of it
    (:func:`_unchecked_rest`), and the members after it are read on."""
    errors = _errors(kind)
    unit = "member" if kind == "gzip" else "frame"
    decoder: _Inflater | _Ended = new_decoder()
    base = _position(handle)  # where the compressed bytes start, if the handle can seek
    offset = 0  # compressed bytes consumed, for the damage message
    member, member_text = 0, 0  # the member's first byte (offset), its text delivered
    failed: list[tuple[int, str]] = []  # members that failed their checksum, read whole

    def tell(damage: str | None) -> None:
        """One note, the worst first (a cut or corruption, then the checksums failed): a
        reader shows the first, and a file of many bad members would hold them all."""
        if failed:
            first, why = failed[0]
            more = f" (and {len(failed) - 1:,} {unit}s after it)" if len(failed) > 1 else ""
            checksums = (
                f"the {kind} {unit} at byte {first}{more} fails its checksum ({why}): its "
                "text is read as it decompressed, but some of it may differ from what was "
                "written"
            )
            damage = checksums if damage is None else f"{damage}; before it, {checksums}"
        if damage is not None:
            note_damage(damage)

    started = False
    carried = b""  # the start of a next member's magic, cut by the end of a read
    while chunk := handle.read(size):
        if stop is not None and stop.is_set():
            return
        data, carried = carried + chunk, b""
        while data:
            if decoder.eof:
                if data.startswith(magic):
                    decoder = new_decoder()  # the next member
                    member, member_text = offset, 0
                elif len(data) < len(magic) and magic.startswith(data):
                    carried = data
                    break
                elif not data.strip(b"\x00"):
                    offset += len(data)
                    break
                else:
                    tell(f"{len(data)} bytes that are not {kind} after byte {offset}")
                    return
            assert isinstance(decoder, _Inflater)
            try:
                for piece in decoder.feed(data):
                    member_text += len(piece)
                    yield piece
            except errors as exc:
                rest = None
                if base is not None:  # the member again, without its checksum
                    rest = yield from _unchecked_rest(handle, kind, base + member, member_text)
                if rest is None:
                    tell(f"{kind} data is corrupt in the {unit} at byte {member} ({exc})")
                    return
                failed.append((member, str(exc)))
                # on after the member: what the read again took beyond it comes first
                end, data = rest
                started, decoder, offset = True, _Ended(), end - base  # type: ignore[operator]
                continue
            started = True
            if decoder.eof:
                rest_data = decoder.unused_data
                offset += len(data) - len(rest_data)
                data = rest_data
            else:
                offset += len(data)
                data = b""
    if carried:
        tell(f"{len(carried)} bytes that are not {kind} after byte {offset}")
    elif started and not decoder.eof:
        tell(f"{kind} data ends early at byte {offset} (truncated copy)")
    else:
        tell(None)


class _Ended:
    """In place of a decoder after a member read again: ended, the next to come."""

    eof = True


def _position(handle: IO[bytes]) -> int | None:
    try:
        return handle.tell() if handle.seekable() else None
    except (OSError, ValueError):
        return None


def _unchecked_rest(handle: IO[bytes], kind: str, start: int,
                    skip: int) -> Generator[bytes, None, tuple[int, bytes] | None]:  # fmt: skip
    """The text of the member at ``start`` (a seekable handle's position), decompressed
    again without its checksum, less its first ``skip`` bytes (delivered already), in
    pieces of at most the cap; returns the position after the member and the bytes read
    beyond it (the handle is left after them), or None when it fails anyway (its
    compressed data itself is damaged, or cut: the text before the damage is still
    delivered). gzip: the deflate stream after the member's header, its CRC-32 and
    length (8 bytes) after it; zstd: the frame with its checksum flag cleared (RFC 8878),
    its 4-byte checksum after it. Read 16 KiB first, then more each time up to 1 MiB: a
    file of many small bad members is not read a MiB a member."""
    failures: tuple[type[Exception], ...] = (OSError, ValueError, *_errors(kind))
    step = 16 << 10
    try:
        handle.seek(start)
        head = handle.read(step)
        if kind == "gzip":
            at = _gzip_header_size(head)
            if at is None:
                return None
            # a bare deflate stream: no CRC checked
            inflater = _Inflater(_inflate_module().decompressobj(wbits=-15), zlib_like=True)
            trailer = 8
        else:
            if len(head) < 5:
                return None
            checksum = head[4] & 0x04  # the frame's checksum flag: 4 bytes at its end
            head = head[:4] + bytes([head[4] & ~0x04]) + head[5:]
            at, trailer = 0, 4 if checksum else 0
            inflater = _Inflater(zstd_module().ZstdDecompressor(), zlib_like=False)
        position, data = start + at, head[at:]  # data[0]'s place in the file
        while True:
            for piece in inflater.feed(data):
                if skip >= len(piece):
                    skip -= len(piece)
                    continue
                yield piece[skip:]
                skip = 0
            if inflater.eof:
                beyond = inflater.unused_data
                end = position + len(data) - len(beyond) + trailer
                while len(beyond) < trailer and (more := handle.read(step)):
                    beyond += more
                return end, beyond[trailer:]
            position += len(data)
            step = min(step * 4, _INPUT)
            data = handle.read(step)
            if not data:
                return None
    except failures:
        return None


def _gzip_header_size(head: bytes) -> int | None:
    """The size of the gzip member header at the start of ``head`` (RFC 1952), or None."""
    if len(head) < 10 or head[:3] != b"\x1f\x8b\x08":
        return None
    flags, at = head[3], 10
    if flags & 0x04:  # FEXTRA
        if len(head) < at + 2:
            return None
        at += 2 + int.from_bytes(head[at : at + 2], "little")
    for flag in (0x08, 0x10):  # FNAME, FCOMMENT: zero-terminated
        if flags & flag:
            end = head.find(b"\x00", at)
            if end < 0:
                return None
            at = end + 1
    if flags & 0x02:  # FHCRC
        at += 2
    return at if at <= len(head) else None
