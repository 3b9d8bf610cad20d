"""The careful reader: for a file the fast reader gave up on (invalid UTF-8, a damaged
compressed tail, a line that would not decode there). It reads the file in blocks of
whole lines, decodes each block vectorised, and bisects a failing block down to its bad
lines, so every readable record still counts and every unreadable one is counted and
named. It checks every line in full: nothing is judged by its text alone."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl

from egress_offline.errors import DataError
from egress_offline.fields import FieldSet
from egress_offline.readers.compression import decompressed
from egress_offline.readers.decode import BAD, decode_bisect, no_fields
from egress_offline.readers.linescan import filled
from egress_offline.readers.model import POS, FileReport, InputFile

__all__ = ["read_careful"]


def read_careful(
    file: InputFile, report: FileReport, *, strict: bool, fields: FieldSet
) -> Iterator[pl.DataFrame]:
    """Field frames (``__pos`` and the fields) of every readable record of ``file``;
    malformed records and damage are noted in ``report``."""
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
            batch = _careful_block(data[: cut + 1], line_no, report, strict=strict, fields=fields)
            line_no += data.count(b"\n", 0, cut + 1)
            if batch.height:
                yield batch
        if pending:
            batch = _careful_block(pending, line_no, report, strict=strict, fields=fields)
            if batch.height:
                yield batch
    if damage:
        report.damage = damage[0]
        if strict:
            raise DataError(
                f"{file.name}: {damage[0]}; run without --strict to keep what precedes it",
                file=file.name,
            )


def _careful_block(block: bytes, first: int, report: FileReport, *, strict: bool,
                   fields: FieldSet) -> pl.DataFrame:  # fmt: skip
    """Decode one block of whole lines; ``first`` lines of the file precede it."""
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
    frame = pl.DataFrame(
        {POS: pl.int_range(first + 1, first + 1 + len(texts), eager=True), "line": texts},
        schema={POS: pl.Int64, "line": pl.String},
    )
    undecodable = frame.filter(pl.col("line").is_null())
    frame = frame.filter(filled(pl.col("line"))).with_columns(
        pl.col("line").str.strip_prefix("\ufeff").str.strip_chars()
    )
    report.records += frame.height + undecodable.height
    out: list[pl.DataFrame] = []
    bad: list[tuple[int, str]] = [(p, "bytes that are not UTF-8") for p in undecodable[POS]]
    decode_bisect(frame, out, bad, fields)
    for pos, reason in sorted(bad):
        report.note_malformed(pos, reason, strict=strict)
    if not out:
        return no_fields(fields)
    return pl.concat(out, how="vertical").drop(BAD)
