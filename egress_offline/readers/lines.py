"""Whole lines of a file, a block at a time, decompressed in Python: what the readers that
do not use Polars' line scan (the careful reader, one JSON value per line, ``_bulk``
bodies) read from."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl

from egress_offline.errors import DataError
from egress_offline.readers.compression import decompressed
from egress_offline.readers.model import POS, FileReport, InputFile

__all__ = ["line_blocks"]


def line_blocks(file: InputFile, report: FileReport, *, strict: bool) -> Iterator[pl.DataFrame]:
    """Frames of ``__pos`` (the line's number, from 1) and ``line`` (its text; null where
    its bytes are not UTF-8), a block of whole lines at a time, every line of the file.
    Damage in a compressed stream ends the lines there, and is noted in ``report`` (with
    ``strict``, it is an error once the lines before it are read)."""
    damage: list[str] = []
    line_no = 0
    with file.path.open("rb") as handle:
        pending = b""
        for block in decompressed(handle, file.compression, damage.append):
            data = pending + block
            cut = data.rfind(b"\n")
            if cut < 0:
                pending = data
                continue
            pending = data[cut + 1 :]
            report.progress = min(1.0, handle.tell() / max(1, file.size))
            whole = data[: cut + 1]
            yield _lines(whole, line_no)
            line_no += whole.count(b"\n")
        if pending:
            yield _lines(pending, line_no)
    if damage:
        report.damage = damage[0]
        if strict:
            raise DataError(
                f"{file.name}: {damage[0]}; run without --strict to keep what precedes it",
                file=file.name,
            )


def _lines(block: bytes, first: int) -> pl.DataFrame:
    """The lines of ``block`` (whole lines; ``first`` lines of the file precede it)."""
    raw_lines = block.split(b"\n")
    if block.endswith(b"\n"):
        raw_lines.pop()
    texts: list[str | None] = []
    try:
        texts.extend(block.decode("utf-8").split("\n")[: len(raw_lines)])
    except UnicodeDecodeError:
        for raw in raw_lines:
            try:
                texts.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                texts.append(None)
    return pl.DataFrame(
        {POS: pl.int_range(first + 1, first + 1 + len(texts), eager=True), "line": texts},
        schema={POS: pl.Int64, "line": pl.String},
    )
