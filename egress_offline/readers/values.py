"""One JSON value per line that is not itself a record: a scroll or ``search_after`` dump
(one ``_search`` response per line, or ``_async_search`` ones), or Kibana esArchiver
entries written one per line. Each line's records are found as in a JSON document
(:func:`~egress_offline.readers.jsondoc.records_of`); a record's position is its line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import polars as pl

from egress_offline.fields import FieldSet
from egress_offline.readers import tuning
from egress_offline.readers.decode import (
    BAD,
    lone_surrogates,
    python_fields,
    python_frame,
    strict_load,
)
from egress_offline.readers.jsondoc import (
    batched_records,
    note_partial,
    python_records,
    records_of,
    value_dtype,
)
from egress_offline.readers.jsonstream import text_values
from egress_offline.readers.lines import line_blocks
from egress_offline.readers.linescan import record_texts
from egress_offline.readers.model import POS, FileReport, InputFile

__all__ = ["read_values"]


def read_values(
    file: InputFile, report: FileReport, *, strict: bool, fields: FieldSet
) -> Iterator[pl.DataFrame]:
    """Field frames (``__pos``, the record's line, and the fields) of the records each
    line's value holds; malformed lines and records noted in ``report``."""
    for lines in line_blocks(file, report, strict=strict):
        undecodable = lines.filter(pl.col("line").is_null())
        for pos in undecodable.get_column(POS).to_list():
            report.records += 1
            report.note_malformed(pos, "bytes that are not UTF-8", strict=strict)
        texts = record_texts(lines)
        long = pl.col("line").str.len_bytes() > tuning.STREAMED_VALUE
        if texts.height and texts.select(long.any()).item():
            for pos, text in texts.filter(long).iter_rows():
                yield from _streamed(file, report, pos, text, strict=strict, fields=fields)
            texts = texts.filter(~long)
        frame = _vectorised(texts, fields, report.notes)
        if frame is None:
            frame = _in_python(file, texts, report, strict=strict, fields=fields)
        else:
            report.records += frame.height
            for pos in frame.filter(pl.col(BAD)).get_column(POS).to_list():
                report.note_malformed(pos, "not a JSON object (null)", strict=strict)
            frame = frame.filter(~pl.col(BAD)).drop(BAD)
        if frame.height:
            yield frame


def _streamed(file: InputFile, report: FileReport, pos: int, text: str, *, strict: bool,
              fields: FieldSet) -> Iterator[pl.DataFrame]:  # fmt: skip
    """The records of one long line, its value read a bounded batch of hits at a time
    (as a JSON document is), each at the line's position: decoded whole, a response of
    millions of empty hits (a 2.7 KB zstd file) took gigabytes."""
    values = text_values(file, report, text.encode())
    for frame in batched_records(file, report, values, strict=strict, fields=fields):
        if frame.height:
            yield frame.with_columns(pl.lit(pos, dtype=pl.Int64).alias(POS))


def _vectorised(texts: pl.DataFrame, fields: FieldSet, notes: list[str]) -> pl.DataFrame | None:
    if texts.height == 0:
        return None
    if texts.select(lone_surrogates(pl.col("line")).any()).item():
        return None
    try:
        decoded = texts.select(
            pl.col(POS).alias("__element"),
            pl.col("line").str.json_decode(value_dtype(fields)).alias("__value"),
        )
    except pl.exceptions.PolarsError:
        return None
    if decoded.select(pl.col("__value").struct.field("columns").is_not_null().any()).item():
        return None  # an ES|QL response: read in Python
    note_partial(decoded, notes)
    return records_of(decoded, fields, by_element=True)


def _in_python(file: InputFile, texts: pl.DataFrame, report: FileReport, *, strict: bool,
               fields: FieldSet) -> pl.DataFrame:  # fmt: skip
    """A block whose lines would not all decode vectorised, read line by line."""
    rows: list[tuple[int, dict[str, Any]]] = []
    for pos, text in texts.iter_rows():
        try:
            value = strict_load(text)
        except RecursionError:
            report.records += 1
            report.note_malformed(pos, "nested too deeply to decode", strict=strict)
            continue
        except (ValueError, json.JSONDecodeError) as exc:
            report.records += 1
            report.note_malformed(pos, f"not valid JSON ({str(exc).split(':')[0]})", strict=strict)
            continue
        for record in python_records(value, file.name, report.notes):
            report.records += 1
            try:
                result = python_fields(record, fields)
            except UnicodeEncodeError:
                result = "a string holds an invalid unicode escape"
            if isinstance(result, str):
                report.note_malformed(pos, result, strict=strict)
            else:
                rows.append((pos, result))
    return python_frame(rows, fields).drop(BAD)
