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
from collections.abc import Callable, Iterator
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


def _codec(compression: Compression) -> tuple[str, bytes, Callable[[], _Inflater]]:
    if compression == "gzip":
        try:
            from isal import isal_zlib  # noqa: PLC0415 - the faster inflater, if there

            module: Any = isal_zlib
        except ImportError:  # pragma: no cover - isal is a dependency; zlib still works
            module = zlib
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
        found: list[type[Exception]] = [zlib.error]
        try:
            from isal import isal_zlib  # noqa: PLC0415

            found.append(isal_zlib.error)  # type: ignore[arg-type]  # stubs: an instance
        except ImportError:  # pragma: no cover
            pass
        return tuple(found)
    return (zstd_module().ZstdError,)


def _members(handle: IO[bytes], size: int, *, kind: str, magic: bytes,
             new_decoder: Callable[[], _Inflater], note_damage: Callable[[str], None],
             stop: threading.Event | None = None) -> Iterator[bytes]:  # fmt: skip
    """Decompress concatenated gzip members or zstd frames, delivering everything before
    the first damage (a cut, corrupt data, or bytes that are not another member). NUL
    padding after the last member, as crashed writers leave, is not damage."""
    errors = _errors(kind)
    decoder = new_decoder()
    offset = 0  # compressed bytes consumed, for the damage message
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
                elif len(data) < len(magic) and magic.startswith(data):
                    carried = data
                    break
                elif not data.strip(b"\x00"):
                    offset += len(data)
                    break
                else:
                    note_damage(f"{len(data)} bytes that are not {kind} after byte {offset}")
                    return
            try:
                yield from decoder.feed(data)
            except errors as exc:
                note_damage(f"{kind} data is corrupt near byte {offset} ({exc})")
                return
            started = True
            if decoder.eof:
                rest = decoder.unused_data
                offset += len(data) - len(rest)
                data = rest
            else:
                offset += len(data)
                data = b""
    if carried:
        note_damage(f"{len(carried)} bytes that are not {kind} after byte {offset}")
    elif started and not decoder.eof:
        note_damage(f"{kind} data ends early at byte {offset} (truncated copy)")
