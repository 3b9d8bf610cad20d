"""Whole lines of a file, a block at a time, decompressed in Python: what the readers that
do not use Polars' line scan (the careful reader, one JSON value per line, ``_bulk``
bodies) read from. A line longer than :data:`~tuning.LINE_LIMIT` is never held whole: it
is skipped as it goes by, and counted as a malformed record."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import polars as pl

from egress_offline.errors import DataError
from egress_offline.readers import tuning
from egress_offline.readers.compression import decompressed
from egress_offline.readers.model import POS, FileReport, InputFile

__all__ = ["line_blocks", "too_long"]


def too_long(length: int) -> str:
    """The reason a line of ``length`` bytes is malformed."""
    return f"line longer than {tuning.LINE_LIMIT:,} bytes ({length:,} bytes, skipped unread)"


def line_blocks(file: InputFile, report: FileReport, *, strict: bool) -> Iterator[pl.DataFrame]:
    """Frames of ``__pos`` (the line's number, from 1) and ``line`` (its text; null where
    its bytes are not UTF-8), a block of whole lines at a time, every line of the file
    but those over the limit (counted in ``report`` as malformed records). Damage in a
    compressed stream ends the lines there, and is noted in ``report`` (with ``strict``,
    it is an error once the lines before it are read)."""
    damage: list[str] = []
    limit = tuning.LINE_LIMIT
    line_no = 0
    waiting: list[bytes] = []  # the start of a line not ended yet
    waited = 0
    skipped = -1  # bytes of an over-long line skipped so far; -1: not skipping

    def long_line(length: int) -> None:
        nonlocal line_no
        line_no += 1
        report.records += 1
        report.note_malformed(line_no, too_long(length), strict=strict)

    with file.path.open("rb") as handle:
        for text in decompressed(handle, file.compression, damage.append):
            piece = text
            if skipped >= 0:  # inside an over-long line: to its end
                end = piece.find(b"\n")
                if end < 0:
                    skipped += len(piece)
                    continue
                long_line(skipped + end)
                skipped = -1
                piece = piece[end + 1 :]
            cut = piece.rfind(b"\n")
            if cut < 0:
                waiting.append(piece)
                waited += len(piece)
                if waited > limit:
                    skipped, waiting, waited = waited, [], 0
                continue
            first = piece.find(b"\n")
            if waited + first > limit:  # the line that waited ends over the limit
                long_line(waited + first)
                whole = piece[first + 1 : cut + 1]
            else:
                whole = b"".join([*waiting, piece[: cut + 1]])
            waiting, waited = [piece[cut + 1 :]], len(piece) - cut - 1
            report.progress = min(1.0, handle.tell() / max(1, file.size))
            if whole:
                block = _lines(whole, line_no, report, strict=strict)
                line_no += whole.count(b"\n")
                del whole, piece, text  # held no longer than the lines made of them
                yield from _in_parts(block)
        if skipped >= 0:
            long_line(skipped)
        elif waited:
            yield from _in_parts(_lines(b"".join(waiting), line_no, report, strict=strict))
    if damage:
        report.damage = damage[0]
        if strict:
            raise DataError(
                f"{file.name}: {damage[0]}; run without --strict to keep what precedes it",
                file=file.name,
            )


def _in_parts(block: pl.DataFrame) -> Iterator[pl.DataFrame]:
    """``block`` in slices of at most :data:`~tuning.DECODE_RECORDS` lines (no copy):
    each line becomes a record of a dozen lists downstream, and a block of 8 MiB of
    short lines holds millions."""
    step = tuning.DECODE_RECORDS
    for start in range(0, block.height, step):
        yield block.slice(start, step)
    if not block.height:
        yield block


def _lines(block: bytes, first: int, report: FileReport, *, strict: bool) -> pl.DataFrame:
    """The lines of ``block`` (whole lines; ``first`` lines of the file precede it), each
    null where it is not UTF-8, less those over the limit that the block held whole
    (blocks are smaller than the limit unless it is set lower), counted as the others
    are, by their bytes. The lines are split as bytes and checked as text by Polars in
    place: a line of 95 MiB took about three times its size here, where decoding and
    splitting it as Python text took six, and splitting it with Polars ten for a moment
    (Polars' string functions on one long value take several times its size, even
    ``len_bytes``, so no length is taken there)."""
    raw_lines = block.split(b"\n")
    if block.endswith(b"\n"):
        raw_lines.pop()
    numbers: Sequence[int] = range(first + 1, first + 1 + len(raw_lines))
    if raw_lines and max(map(len, raw_lines)) > tuning.LINE_LIMIT:
        kept = []
        for number, text in zip(numbers, raw_lines, strict=True):
            if len(text) > tuning.LINE_LIMIT:
                report.records += 1
                report.note_malformed(number, too_long(len(text)), strict=strict)
            else:
                kept.append((number, text))
        numbers, raw_lines = [n for n, _ in kept], [t for _, t in kept]
    raw = pl.Series("line", raw_lines, dtype=pl.Binary)
    try:
        line = raw.cast(pl.String)
    except pl.exceptions.ComputeError:  # invalid utf8
        line = pl.Series("line", _decoded(raw_lines), dtype=pl.String)
    del raw_lines, raw
    return pl.DataFrame(
        [pl.Series(POS, numbers, dtype=pl.Int64), line],
        schema={POS: pl.Int64, "line": pl.String},
    )


def _decoded(raw_lines: list[bytes]) -> list[str | None]:
    """Each line decoded, None where it is not UTF-8."""
    texts: list[str | None] = []
    for raw in raw_lines:
        try:
            texts.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(None)
    return texts
