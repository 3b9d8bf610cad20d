"""JSON documents: a file that is one JSON value, or several one after another.

What a value may be, and the records it holds:

* an array of documents, of search hits, or of search responses (a scroll dump);
* a ``_search`` response (``hits.hits``), or an ``_async_search`` one
  (``response.hits.hits``): each hit;
* an ES|QL response (``columns`` and ``values``, row by row or ``columnar``; the async
  form too): each row, ``null`` being missing (see :mod:`egress_offline.readers.esql`);
* a Kibana esArchiver entry (``{"type": "doc", "value": {...}}``; its ``index`` entries
  are not records), as Kibana's test archives hold them, one after another;
* a single pretty-printed document.

The values that hold the records are found a bounded piece of text at a time
(:mod:`~egress_offline.readers.jsonstream`): an array's elements, a response's hits, each
of several values one after another.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any, Final

import polars as pl

from egress_offline.errors import InputError
from egress_offline.fields import FieldSet
from egress_offline.readers import tuning
from egress_offline.readers.decode import (
    BAD,
    decode_lines,
    doc_field_exprs,
    lone_surrogates,
    python_fields,
    python_frame,
    strict_load,
)
from egress_offline.readers.esql import esql_rows, is_esql
from egress_offline.readers.jsonstream import json_values
from egress_offline.readers.model import POS, FileReport, InputFile

__all__ = [
    "batched_records",
    "note_partial",
    "python_records",
    "read_json_document",
    "records_of",
    "value_dtype",
]

#: esArchiver entries that describe an index or a data stream: not documents.
_NOT_DOCUMENTS: Final = ("index", "data_stream")


def read_json_document(
    file: InputFile, report: FileReport, *, strict: bool, fields: FieldSet
) -> Iterator[pl.DataFrame]:
    """Field frames (``__pos``, the record's number from 1, and the fields) of the records
    the file's values hold, some :data:`~tuning.DECODE_BYTES` of text (or
    :data:`~tuning.DECODE_RECORDS` values) at a time; malformed
    ones noted in ``report``."""
    yield from batched_records(
        file, report, json_values(file, report), strict=strict, fields=fields
    )


def batched_records(file: InputFile, report: FileReport, values: Iterator[tuple[str, bool]],
                    *, strict: bool, fields: FieldSet) -> Iterator[pl.DataFrame]:  # fmt: skip
    """Field frames of the records of ``values`` (each a value's text, and whether it is
    one record), a bounded batch of them at a time."""
    batch: list[str] = []
    size = 0
    records = True  # the batch's values are records (documents, hits)
    for value, record in values:
        if batch and (
            size >= tuning.DECODE_BYTES or len(batch) >= tuning.DECODE_RECORDS or record != records
        ):
            yield _records(file, batch, report, strict=strict, fields=fields, plain=records)
            batch, size = [], 0
        batch.append(value)
        size += len(value)
        records = record
    if batch:
        yield _records(file, batch, report, strict=strict, fields=fields, plain=records)


def _records(file: InputFile, values: list[str], report: FileReport, *, strict: bool,
             fields: FieldSet, plain: bool) -> pl.DataFrame:  # fmt: skip
    """The records of ``values``, numbered after the ``report``'s records so far. Values
    that are each one record (``plain``) are decoded as NDJSON lines are."""
    before = report.records
    if plain:
        lines = pl.DataFrame(
            {POS: pl.int_range(before + 1, before + 1 + len(values), eager=True), "line": values},
            schema={POS: pl.Int64, "line": pl.String},
        )
        bad: list[tuple[int, str]] = []
        decoded = decode_lines(lines, bad, fields)
        report.records += len(values)
        for pos, reason in sorted(bad):
            report.note_malformed(pos, reason, strict=strict)
        return decoded
    frame = _vectorised(values, fields, report.notes)
    if frame is None:
        return _in_python(file, values, report, strict=strict, fields=fields, before=before)
    report.records += frame.height
    frame = frame.with_columns(pl.col(POS) + before)
    for pos in frame.filter(pl.col(BAD)).get_column(POS).to_list():
        report.note_malformed(pos, "not a JSON object (null)", strict=strict)
    return frame.filter(~pl.col(BAD)).drop(BAD)


@lru_cache(maxsize=8)
def value_dtype(fields: FieldSet) -> pl.Struct:
    """A value as a record (a document, a hit, an esArchiver entry) or as a response that
    holds hits, in one struct."""
    document = fields.document_dtype
    hits = pl.Struct({"hits": pl.List(document)})
    return pl.Struct(
        {
            **{f.name: f.dtype for f in document.fields},
            "type": pl.String,
            "hits": hits,
            "response": pl.Struct({"hits": hits}),
            "columns": pl.List(pl.Struct({"name": pl.String, "type": pl.String})),
            "is_partial": pl.Boolean,
        }
    )


def _vectorised(values: list[str], fields: FieldSet, notes: list[str]) -> pl.DataFrame | None:
    """The records of ``values`` (``__pos``, :data:`BAD`, the fields), decoded by Polars;
    None when it cannot (damage, a lone surrogate escape, an ES|QL response)."""
    texts = pl.Series("raw", values, dtype=pl.String)
    if texts.to_frame().select(lone_surrogates(pl.col("raw")).any()).item():
        return None
    element = value_dtype(fields)
    try:
        if len(values) == 1 and values[0].lstrip().startswith("["):
            decoded = texts.str.json_decode(pl.List(element)).explode()
        else:
            decoded = texts.str.json_decode(element)
    except pl.exceptions.PolarsError:
        return None
    value = pl.col("__value")
    frame = decoded.alias("__value").to_frame().with_row_index("__element")
    if frame.select(value.struct.field("columns").is_not_null().any()).item():
        return None  # an ES|QL response: its values are read in Python
    note_partial(frame, notes)
    return records_of(frame, fields)


def note_partial(frame: pl.DataFrame, notes: list[str]) -> None:
    """Note a response of decoded values (``__value``) marked partial."""
    if frame.select(pl.col("__value").struct.field("is_partial").any()).item():
        notes.append("an _async_search response marked partial: some shards' hits may be missing")


def records_of(frame: pl.DataFrame, fields: FieldSet, *, by_element: bool = False
               ) -> pl.DataFrame:  # fmt: skip
    """The records of decoded values (``__element``, their order; ``__value``, of
    :func:`value_dtype`): each hit of a response, or the value itself when it is a
    document, a hit or an esArchiver document entry. ``__pos`` numbers them in order from
    1, or, ``by_element``, is their value's ``__element``."""
    value = pl.col("__value")
    document_names = [f.name for f in fields.document_dtype.fields]
    hits = pl.coalesce(
        value.struct.field("hits").struct.field("hits"),
        value.struct.field("response").struct.field("hits").struct.field("hits"),
    )
    kind = value.struct.field("type")
    responses = (
        frame.filter(hits.list.len() > 0)  # an empty list of hits holds no record
        .select("__element", hits.alias("__doc"))
        .explode("__doc")
        .with_columns(pl.int_range(pl.len()).over("__element").cast(pl.Int64).alias("__hit"))
    )
    documents = frame.filter(
        hits.is_null() & value.is_not_null() & ~kind.is_in(list(_NOT_DOCUMENTS)).fill_null(False)
        | value.is_null()
    ).select(
        "__element",
        pl.when(value.is_not_null())
        .then(pl.struct([value.struct.field(name) for name in document_names]))
        .alias("__doc"),
        pl.lit(0, dtype=pl.Int64).alias("__hit"),
    )
    records = pl.concat([documents, responses], how="vertical_relaxed").sort("__element", "__hit")
    if by_element:
        numbered = records.with_columns(pl.col("__element").cast(pl.Int64).alias(POS))
    else:
        numbered = records.with_row_index(POS, offset=1).with_columns(pl.col(POS).cast(pl.Int64))
    return numbered.select(
        POS, pl.col("__doc").is_null().alias(BAD), *doc_field_exprs(pl.col("__doc"), fields)
    )


def _in_python(file: InputFile, values: list[str], report: FileReport, *, strict: bool,
               fields: FieldSet, before: int) -> pl.DataFrame:  # fmt: skip
    """The records of ``values``, read one by one in Python (damage, lone surrogate
    escapes, ES|QL responses), numbered after ``before``."""
    rows: list[tuple[int, dict[str, Any]]] = []
    number = before
    for text in values:
        try:
            value = strict_load(text)
        except RecursionError as exc:
            raise InputError(
                f"{file.name}: the JSON document is nested too deeply to read", file=file.name
            ) from exc
        except ValueError as exc:
            raise InputError(
                f"{file.name}: not valid JSON ({exc}); if it holds one document per line, "
                "each line must be a complete JSON object",
                file=file.name,
            ) from exc
        for record in python_records(value, file.name, report.notes):
            number += 1
            report.records += 1
            try:
                result = python_fields(record, fields)
            except UnicodeEncodeError:
                result = "a string holds an invalid unicode escape"
            if isinstance(result, str):
                report.note_malformed(number, result, strict=strict)
            else:
                rows.append((number, result))
    return python_frame(rows, fields).drop(BAD)


def python_records(value: Any, name: str, notes: list[str] | None = None) -> Iterator[Any]:
    """The records a parsed value holds (see the module docstring); what the reader
    should know of them (a response cut short) goes to ``notes``."""
    if isinstance(value, list):
        for element in value:
            if _holds_hits(element):
                yield from python_records(element, name, notes)
            else:
                yield element
        return
    if not isinstance(value, dict):
        yield value
        return
    if is_esql(value):
        yield from esql_rows(value, name, notes)
        return
    if notes is not None and value.get("is_partial") is True:
        notes.append("an _async_search response marked partial: some shards' hits may be missing")
    response = value.get("response")
    holder = response if isinstance(response, dict) and "hits" in response else value
    hits = holder.get("hits")
    if isinstance(hits, dict) and isinstance(hits.get("hits"), list):
        yield from hits["hits"]
        return
    if value.get("type") in _NOT_DOCUMENTS and isinstance(value.get("value"), dict):
        return
    yield value


def _holds_hits(value: Any) -> bool:
    """Is ``value`` a response (or an ES|QL one) rather than a record?"""
    if not isinstance(value, dict):
        return False
    response = value.get("response")
    holder = response if isinstance(response, dict) else value
    hits = holder.get("hits")
    return is_esql(value) or (isinstance(hits, dict) and isinstance(hits.get("hits"), list))
