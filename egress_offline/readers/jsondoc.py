"""JSON documents: a file that is one JSON value, an array of documents or hits, a
``_search`` response (``hits.hits``), or a single pretty-printed document. The value is
held in memory whole."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl

from egress_offline.errors import InputError
from egress_offline.fields import FieldSet
from egress_offline.readers.compression import decompressed
from egress_offline.readers.decode import (
    BAD,
    fields_from_docs,
    lone_surrogates,
    python_fields,
    python_frame,
    strict_load,
)
from egress_offline.readers.model import POS, FileReport, InputFile

__all__ = ["read_json_document"]


def read_json_document(
    file: InputFile, report: FileReport, *, strict: bool, fields: FieldSet
) -> Iterator[pl.DataFrame]:
    """Field frames (``__pos``, the record's number from 1, and the fields) of the
    documents the file holds; malformed ones noted in ``report``."""
    damage: list[str] = []
    with file.path.open("rb") as handle:
        raw = b"".join(decompressed(handle, file.compression, damage.append))
    if damage:
        report.damage = damage[0]
    try:
        text = raw.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{file.name}: byte {exc.start} is not UTF-8, so the JSON document cannot be "
            "read; re-export it as UTF-8 NDJSON",
            file=file.name,
        ) from exc
    docs = _vector_documents(text, fields)
    if docs is None:
        yield _python_documents(file, text, report, strict=strict, fields=fields)
        return
    yield _take_good(fields_from_docs(docs, "__doc", fields), report, strict=strict)


def _take_good(batch: pl.DataFrame, report: FileReport, *, strict: bool) -> pl.DataFrame:
    """Count a batch's records; a ``null`` document is malformed."""
    report.records += batch.height
    bad = batch.filter(pl.col(BAD))
    for pos in bad.get_column(POS).to_list():
        report.note_malformed(pos, "not a JSON object (null)", strict=strict)
    return batch.filter(~pl.col(BAD)).drop(BAD) if bad.height else batch.drop(BAD)


def _vector_documents(text: str, fields: FieldSet) -> pl.DataFrame | None:
    """The documents of one JSON value, decoded vectorised; None when Polars cannot (a
    lone surrogate escape among them too: see :func:`lone_surrogates`)."""
    series = pl.Series("raw", [text])
    if series.to_frame().select(lone_surrogates(pl.col("raw"))).item():
        return None
    document = fields.document_dtype
    search = pl.Struct(
        {
            **{f.name: f.dtype for f in document.fields},
            "hits": pl.Struct({"hits": pl.List(document)}),
        }
    )
    try:
        if text.lstrip().startswith("["):
            docs = series.str.json_decode(pl.List(document)).explode()
        else:
            decoded = series.str.json_decode(search)
            hits = decoded.struct.field("hits").struct.field("hits")
            if hits.is_null().all():
                docs = (
                    decoded.struct.rename_fields([f.name for f in search.fields])
                    .to_frame("d")
                    .select(pl.col("d").struct.field(*[f.name for f in document.fields]))
                    .select(pl.struct(pl.all()).alias("__doc"))
                    .to_series()
                )
            else:
                docs = hits.explode()
    except pl.exceptions.PolarsError:
        return None
    frame = docs.alias("__doc").to_frame()
    return frame.with_row_index(POS, offset=1).with_columns(pl.col(POS).cast(pl.Int64))


def _python_documents(file: InputFile, text: str, report: FileReport, *, strict: bool,
                      fields: FieldSet) -> pl.DataFrame:  # fmt: skip
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
    if (
        isinstance(value, dict)
        and isinstance(value.get("hits"), dict)
        and isinstance(value["hits"].get("hits"), list)
    ):
        docs = value["hits"]["hits"]
    elif isinstance(value, list):
        docs = value
    else:
        docs = [value]
    rows = []
    for pos, doc in enumerate(docs, start=1):
        report.records += 1
        try:
            result = python_fields(doc, fields)
        except UnicodeEncodeError:
            result = "a string holds an invalid unicode escape"
        if isinstance(result, str):
            report.note_malformed(pos, result, strict=strict)
        else:
            rows.append((pos, result))
    return python_frame(rows, fields).drop(BAD)
