"""The careful reader: for a file the fast reader gave up on (invalid UTF-8, a damaged
compressed tail, a line that would not decode there). It reads the file in blocks of
whole lines, decodes each block vectorised, and bisects a failing block down to its bad
lines, so every readable record still counts and every unreadable one is counted and
named. It checks every line in full: nothing is judged by its text alone."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl

from egress_offline.fields import FieldSet
from egress_offline.readers.decode import BAD, decode_bisect
from egress_offline.readers.lines import line_blocks
from egress_offline.readers.linescan import record_texts
from egress_offline.readers.model import POS, FileReport, InputFile

__all__ = ["read_careful"]


def read_careful(
    file: InputFile, report: FileReport, *, strict: bool, fields: FieldSet
) -> Iterator[pl.DataFrame]:
    """Field frames (``__pos`` and the fields) of every readable record of ``file``;
    malformed records and damage are noted in ``report``."""
    for lines in line_blocks(file, report, strict=strict):
        batch = _careful_block(lines, report, strict=strict, fields=fields)
        if batch is not None:
            yield batch


def _careful_block(lines: pl.DataFrame, report: FileReport, *, strict: bool,
                   fields: FieldSet) -> pl.DataFrame | None:  # fmt: skip
    """Decode one block of lines (``__pos``, ``line``: null where not UTF-8)."""
    undecodable = lines.filter(pl.col("line").is_null())
    frame = record_texts(lines)
    report.records += frame.height + undecodable.height
    out: list[pl.DataFrame] = []
    bad: list[tuple[int, str]] = [(p, "bytes that are not UTF-8") for p in undecodable[POS]]
    decode_bisect(frame, out, bad, fields)
    for pos, reason in sorted(bad):
        report.note_malformed(pos, reason, strict=strict)
    return pl.concat(out, how="vertical").drop(BAD) if out else None
