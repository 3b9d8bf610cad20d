"""Compressed inputs: one walker over concatenated gzip members and zstd frames, used by
sniffing (the first bytes of text) and by the readers that decompress in Python (the
careful reader, JSON documents) alike. Clean NDJSON is decompressed by Polars itself."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any, Final

from egress_offline.readers import tuning
from egress_offline.readers.model import Compression

__all__ = ["GZIP_MAGIC", "PARQUET_MAGIC", "ZSTD_MAGIC", "compression_of", "decompressed"]

GZIP_MAGIC: Final = b"\x1f\x8b"
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
PARQUET_MAGIC: Final = b"PAR1"


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
) -> Iterator[bytes]:
    """The text of a file, a piece at a time, up to the first damage, which is passed to
    ``note_damage`` instead of raised: everything before it is still delivered. The
    handle is read ``read_size`` bytes at a time (:data:`~tuning.BLOCK` by default), and
    only as far as the caller takes pieces."""
    size = read_size or tuning.BLOCK
    if compression == "none":
        while block := handle.read(size):
            yield block
        return
    kind, magic, new_decoder, errors = _codec(compression)
    yield from _members(handle, size, kind=kind, magic=magic, new_decoder=new_decoder,
                        errors=errors, note_damage=note_damage)  # fmt: skip


def _codec(
    compression: Compression,
) -> tuple[str, bytes, Callable[[], Any], tuple[type[Exception], ...]]:
    if compression == "gzip":
        return "gzip", GZIP_MAGIC, lambda: zlib.decompressobj(wbits=31), (zlib.error,)
    import zstandard  # noqa: PLC0415 - only zstd inputs need it

    return (
        "zstd",
        ZSTD_MAGIC,
        lambda: zstandard.ZstdDecompressor().decompressobj(),
        (zstandard.ZstdError,),
    )


def _members(handle: IO[bytes], size: int, *, kind: str, magic: bytes,
             new_decoder: Callable[[], Any], errors: tuple[type[Exception], ...],
             note_damage: Callable[[str], None]) -> Iterator[bytes]:  # fmt: skip
    """Decompress concatenated gzip members or zstd frames, delivering everything before
    the first damage (a cut, corrupt data, or bytes that are not another member). NUL
    padding after the last member, as crashed writers leave, is not damage."""
    decoder = new_decoder()
    offset = 0  # compressed bytes consumed, for the damage message
    started = False
    carried = b""  # the start of a next member's magic, cut by the end of a read
    while chunk := handle.read(size):
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
                out = decoder.decompress(data)
            except errors as exc:
                note_damage(f"{kind} data is corrupt near byte {offset} ({exc})")
                return
            started = True
            if out:
                yield out
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
