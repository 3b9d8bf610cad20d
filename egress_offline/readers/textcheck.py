"""The text check: before Polars scans a file's lines, make sure that no line is longer
than :data:`~tuning.LINE_LIMIT` (Polars holds a line whole, several times over: a 600 MB
line took gigabytes). A file that has one is read by the careful reader, which skips it.

An uncompressed file is checked where it lies, in no time: a window of half the limit at
every half-limit step must hold a line end. A compressed file is decompressed once, a
bounded piece at a time (about 0.3 s a GB of text with ISA-L), and its last bytes of text
are kept: they give ``--now latest`` the file's newest timestamps before it is read, which
an uncompressed file gives from its end."""

from __future__ import annotations

import mmap
from dataclasses import dataclass

from egress_offline.readers import tuning
from egress_offline.readers.compression import decompressed
from egress_offline.readers.model import InputFile

__all__ = ["TextCheck", "check_text"]


@dataclass(frozen=True)
class TextCheck:
    """What the check found: a line over the limit; the last bytes of text (compressed
    files only); whether the compressed stream is damaged (the fast reader would fail)."""

    long_line: bool
    tail: bytes = b""
    damaged: bool = False
    #: the text's size in bytes (known exactly only of a compressed file read whole)
    text_size: int = 0


def check_text(file: InputFile) -> TextCheck:
    """Check ``file``'s lines (see the module docstring)."""
    if file.compression == "none":
        return TextCheck(long_line=_long_line_in_place(file), text_size=file.size)
    limit = tuning.LINE_LIMIT
    since = 0  # bytes since the last line end
    size = 0
    tail = b""
    damage: list[str] = []
    with file.path.open("rb") as handle:
        for piece in decompressed(handle, file.compression, damage.append):
            end = piece.rfind(b"\n")
            if end < 0:
                since += len(piece)
            else:
                first = piece.find(b"\n")
                if since + first > limit:
                    return TextCheck(long_line=True)
                since = len(piece) - end - 1
            if since > limit:
                return TextCheck(long_line=True)
            tail = (tail + piece[-tuning.SAMPLE :])[-tuning.SAMPLE :]
            size += len(piece)
    return TextCheck(long_line=False, tail=tail, damaged=bool(damage), text_size=size)


def _long_line_in_place(file: InputFile) -> bool:
    """Does an uncompressed file hold a line over the limit? Every line that long covers
    a whole window of half the limit starting at a multiple of it: such a window with no
    line end is looked for (a few dozen memchr calls for a 4 GB file)."""
    step = tuning.LINE_LIMIT // 2
    if file.size <= step:
        return False
    with file.path.open("rb") as handle:
        try:
            view = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):  # not mappable (a pipe, a special file): read it
            return _long_line_by_reading(file)
        with view:
            return any(
                view.find(b"\n", start, min(start + step, len(view))) < 0
                and start + step <= len(view)
                for start in range(0, len(view), step)
            )


def _long_line_by_reading(file: InputFile) -> bool:
    since = 0
    with file.path.open("rb") as handle:
        while piece := handle.read(tuning.BLOCK):
            end = piece.rfind(b"\n")
            if end < 0:
                since += len(piece)
            else:
                if since + piece.find(b"\n") > tuning.LINE_LIMIT:
                    return True
                since = len(piece) - end - 1
            if since > tuning.LINE_LIMIT:
                return True
    return False
