"""UTF-8 copies: a file in UTF-16 (as Windows PowerShell 5.1's ``>`` and ``Out-File``
write) or whose lines end with a carriage return alone (old Mac line ends) is read
through a copy of its text in UTF-8 with ``\\n`` line ends, in the read's scratch
directory, and then as any file of its layout is."""

from __future__ import annotations

import codecs
from dataclasses import replace

from egress_offline.readers.compression import decompressed
from egress_offline.readers.model import FileReport, InputFile
from egress_offline.scratch import Scratch, scratch_errors

__all__ = ["utf8_copy"]


def utf8_copy(file: InputFile, scratch: Scratch, report: FileReport) -> InputFile:
    """``file``'s text in UTF-8 with ``\\n`` line ends, in the scratch directory (charged
    to its budget as it is written): the same file for the readers (its name, format and
    layout), uncompressed. Damage in a compressed stream ends the copy there and is noted
    in ``report``; a byte sequence that is not UTF-16 becomes U+FFFD, as Elasticsearch
    would have stored it."""
    target = scratch.path(f"utf8-{abs(hash(file.path))}-{file.path.name}")
    damage: list[str] = []
    decoder = (
        codecs.getincrementaldecoder(file.encoding)(errors="replace")
        if file.encoding != "utf-8"
        else None
    )
    first = True
    with scratch_errors(scratch), file.path.open("rb") as handle, target.open("wb") as out:
        for block in decompressed(handle, file.compression, damage.append):
            if decoder is not None:
                marked = first and block[:2] in (b"\xff\xfe", b"\xfe\xff")
                text = decoder.decode(block[2:] if marked else block).encode("utf-8")
            else:
                text = block
            first = False
            if file.carriage_returns:
                text = text.replace(b"\r", b"\n")
            out.write(text)
            scratch.charge(target, len(text))
        if decoder is not None:
            out.write(decoder.decode(b"", final=True).encode("utf-8"))
    if damage:
        report.damage = damage[0]
    size = target.stat().st_size
    return replace(
        file,
        path=target,
        size=size,
        compression="none",
        text_size=size,
        line_bytes=file.line_bytes or (size // 64 if file.format == "ndjson" else 0),
        encoding="utf-8",
        carriage_returns=False,
    )
