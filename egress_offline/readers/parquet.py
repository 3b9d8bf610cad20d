"""Parquet, read through pyarrow's projection of nested leaves: only the fields read are
read, never whole structs such as ``process`` or ``host``; each column, flat or nested,
dotted or not, also under ``_source``, becomes the field's text list."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any, Final

import polars as pl

from egress_offline.errors import InputError, first_line
from egress_offline.fields import (
    FIELDS,
    HUNT,
    META_ID,
    META_INDEX,
    TEXT_LIST,
    TIMESTAMP,
    FieldSet,
    key_paths,
)
from egress_offline.normalise import text_ms, timestamps
from egress_offline.readers import tuning
from egress_offline.readers.decode import merge_lists
from egress_offline.readers.model import ID, INDEX, POS, FileReport, InputFile, StampBatch
from egress_offline.readers.parquet_batches import (
    batches,
    leaf_indexes,
    parquet_file,
    stretches,
    text_reader,
)
from egress_offline.readers.parquet_pages import PageError, check_pages
from egress_offline.readers.prefilter import AnyPrefilter, Prefilter
from egress_offline.readers.timefloor import TimeFloor
from egress_offline.timetext import FIRST_MS, LAST_MS

__all__ = [
    "kept_rows",
    "leaf_list",
    "parquet_columns",
    "parquet_raw",
    "positioned",
    "read_parquet",
    "row_stamps",
    "selection",
]


def read_parquet(file: InputFile, report: FileReport, *, prefilter: AnyPrefilter,
                 floor: TimeFloor, fields: FieldSet) -> Iterator[pl.DataFrame | StampBatch]:  # fmt: skip
    """Field frames (``__pos``, the row's number from 1, and the fields) of ``file``'s
    rows; with the hunt's :class:`Prefilter`, only rows that may match and are not older
    than the floor (see :mod:`~egress_offline.readers.parquet_screen`), and the
    timestamps of the others that may be in the window."""
    import pyarrow as pa  # noqa: PLC0415 - only Parquet inputs need it

    from egress_offline.readers.parquet_screen import read_screened  # noqa: PLC0415

    # one handle on the file, whose positional reads every thread shares (the spans'
    # threads too): all of them read the file that was opened, whatever the path names
    # later (a copy replaced while it is read)
    try:
        source = pa.OSFile(str(file.path))
    except Exception as exc:
        raise _unreadable(file, exc) from exc
    with source:
        try:
            parquet = parquet_file(source)
            leaves = [parquet.schema.column(i).path for i in range(len(parquet.schema))]
        except Exception as exc:  # pyarrow raises several types for a damaged footer
            raise _unreadable(file, exc) from exc
        wanted = parquet_columns(leaves, fields)
        if not wanted:
            raise InputError(
                f"{file.name}: the Parquet file has none of the columns {fields.reader} "
                f"reads ({', '.join(fields.names)}), nested or dotted; is it an "
                f"{fields.export}?",
                file=file.name,
            )
        # the text columns a row group stores dictionary encoded, read as dictionaries:
        # a read then holds each value once, not each row's copy (parquet_batches); no
        # page is decompressed before every page to read is known to fit, and what the
        # headers say of each chunk sizes the reads
        try:
            pages = check_pages(source, parquet.metadata, leaf_indexes(parquet, wanted),
                                file.name)  # fmt: skip
            parquet = text_reader(source, parquet.metadata, wanted, pages)
        except (InputError, PageError):
            raise  # said already (a PageError by the reader's boundary, with the file)
        except Exception as exc:
            raise _unreadable(file, exc) from exc
        total = max(1, parquet.metadata.num_rows)
        if not isinstance(prefilter, Prefilter):  # --strict, or pivot: every row
            yield from _every_row(parquet, wanted, report, total, fields)
        else:
            yield from read_screened(parquet, source, wanted, report, total,
                                     prefilter=prefilter, floor=floor)  # fmt: skip


def _unreadable(file: InputFile, exc: Exception) -> InputError:
    return InputError(
        f"{file.name}: not a readable Parquet file ({first_line(exc)}); "
        "the copy may be incomplete, export it again",
        file=file.name,
    )


def parquet_columns(leaves: Sequence[str], fields: FieldSet = HUNT) -> list[str]:
    """The columns to read of a Parquet file whose leaf columns are ``leaves`` (dotted
    paths): each field's, flat or nested, also under ``_source``, and the documents'
    ``_index`` and ``_id`` where the file has them. A dotted path selects a flat column
    of that name and a nested one alike, so only the fields' leaves are read, never whole
    structs such as ``process`` or ``host``."""
    found = [
        path
        for name in fields.names
        for path in (name, f"_source.{name}")
        if any(leaf == path or leaf.startswith(path + ".") for leaf in leaves)
    ]
    if not found:
        return []
    return [*(meta for meta in (META_INDEX, META_ID) if meta in leaves), *found]


def selection(schema: pl.Schema, fields: FieldSet = HUNT) -> list[pl.Expr]:
    """``__index``, ``__id`` and each field's text list from a batch of ``schema``; a
    missing ``__index`` or ``__id`` is null, a missing field an empty list (as a field
    no record of a file of lines has, and a column of nulls: every count of the
    summary reads an empty list as a missing value, and a null list as none)."""
    meta = [
        (_as_text(pl.col(name), schema[name]) if name in schema else pl.lit(None, pl.String))
        .cast(pl.String)
        .alias(column)
        for name, column in ((META_INDEX, INDEX), (META_ID, ID))
    ]
    exprs = [_parquet_field(schema, name) for name in fields.names]
    return meta + [
        (expr if expr is not None else pl.lit([], dtype=TEXT_LIST)).alias(name)
        for expr, name in zip(exprs, fields.names, strict=True)
    ]


def positioned(record_batch: Any, first: int) -> pl.DataFrame:
    """A record batch as a frame, its rows numbered from ``first`` (``__pos``)."""
    frame = pl.from_arrow(record_batch)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.int_range(first, first + frame.height, dtype=pl.Int64).alias(POS))


def kept_rows(record_batch: Any, keep: pl.Series, first: int) -> pl.DataFrame:
    """The rows of ``record_batch`` that ``keep`` marks, numbered from ``first`` for the
    batch's first row. They are picked by pyarrow, before Polars sees them: its filter
    copies the values kept, where a Polars filter of a text column would still point into
    the whole batch's buffers, and a few rows kept from each of many batches (a sparse
    export) held every one of them (4 GB, one row in 2,000 matching: 1 GB of memory).
    Only the rows kept are converted, too."""
    frame = pl.from_arrow(_arrow_filter()(record_batch, keep.to_arrow()), rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns((keep.arg_true().cast(pl.Int64) + first).alias(POS))


@lru_cache(maxsize=1)
def _arrow_filter() -> Callable[[Any, Any], Any]:
    """pyarrow's filter kernel. ``RecordBatch.filter`` first imports ``pyarrow.compute``,
    which builds a wrapper for every kernel (about 0.08 s, a tenth of a small Parquet
    hunt); the kernel is called directly through the module that holds it (0.01 s),
    or through ``filter`` where a pyarrow version moves it."""
    try:
        from pyarrow._compute import call_function  # noqa: PLC0415
    except ImportError:  # pragma: no cover - another pyarrow's layout
        return lambda batch, mask: batch.filter(mask)
    return lambda batch, mask: call_function("filter", [batch, mask])


def _every_row(parquet: Any, wanted: list[str], report: FileReport, total: int,
               fields: FieldSet) -> Iterator[pl.DataFrame]:  # fmt: skip
    """Every row, as field lists (--strict, and pivot)."""
    chosen: list[pl.Expr] | None = None
    for record_batch in itertools.chain.from_iterable(
        batches(parquet, stretch, wanted, tuning.PARQUET_ROWS)
        for stretch in stretches(parquet.metadata)
    ):
        frame = positioned(record_batch, report.records + 1)
        chosen = chosen or selection(frame.schema, fields)
        report.records += frame.height
        report.progress = min(1.0, report.records / total)
        yield frame.select(POS, *chosen)


def _parquet_moment(schema: pl.Schema) -> Any:
    """When a single plain column holds @timestamp: a function giving each row's
    timestamp (epoch ms, exactly as the engine reads it) from a batch; else None."""
    found = parquet_raw(schema, TIMESTAMP)
    if len(found) != 1:
        return None
    expr, dtype = found[0]
    if isinstance(dtype, pl.Datetime):
        return lambda frame: frame.select(_instant_ms(expr, dtype)).to_series()
    if dtype.is_integer():
        return lambda frame: frame.select(expr.cast(pl.Int64, strict=False)).to_series()
    if dtype == pl.String:
        return lambda frame: text_ms(frame.select(expr).to_series())
    return None


def row_stamps(frame: pl.DataFrame) -> pl.Series:
    """Each row's @timestamp (epoch ms) as the engine reads it: from the one plain column
    that holds it, when there is one, else from the field lists by the engine's rule."""
    moment = _parquet_moment(frame.schema)
    if moment is not None:
        return moment(frame)
    if POS not in frame.columns:  # numbered here, where the rule needs it
        frame = frame.with_columns(pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(POS))
    stamp = frame.select(POS, selection(frame.schema)[2 + FIELDS.index(TIMESTAMP)])
    return timestamps(stamp, TIMESTAMP)


def parquet_raw(schema: pl.Schema, name: str) -> list[tuple[pl.Expr, Any]]:
    """Every column (or struct field) that holds ``name``, with its type."""
    found: list[tuple[pl.Expr, Any]] = []
    # nested or dotted, at the top or under _source: a `_source` struct, or a flat
    # `_source.host.os.family` column (hits flattened by pandas' json_normalize or Spark)
    for full in (*key_paths(name), *key_paths(f"_source.{name}")):
        dtype: Any = schema.get(full[0])
        expr = pl.col(full[0])
        for key in full[1:]:
            if not isinstance(dtype, pl.Struct):
                dtype = None
                break
            dtype = {f.name: f.dtype for f in dtype.fields}.get(key)
            expr = expr.struct.field(key)
        if dtype is not None:
            found.append((expr, dtype))
    return found


def _parquet_field(schema: pl.Schema, name: str) -> pl.Expr | None:
    found = [_as_text_list(expr, dtype) for expr, dtype in parquet_raw(schema, name)]
    return merge_lists(found) if found else None


def _as_text_list(expr: pl.Expr, dtype: Any) -> pl.Expr:
    if isinstance(dtype, (pl.List, pl.Array)):
        flat, leaf = leaf_list(expr, dtype)
        return flat.list.eval(_as_text(pl.element(), leaf))
    return pl.concat_list([_as_text(expr, dtype)])


def leaf_list(expr: pl.Expr, dtype: pl.List | pl.Array) -> tuple[pl.Expr, Any]:
    """A list column as one list of its leaf values, however deeply its lists nest, and
    the leaves' type: Elasticsearch flattens an array of arrays, so ``[["network"]]``
    is the value ``"network"`` (an empty inner list adds nothing)."""
    inner = dtype.inner
    flat = expr.cast(pl.List(inner))
    while isinstance(inner, (pl.List, pl.Array)):
        flat = flat.list.eval(pl.element().explode(empty_as_null=False, keep_nulls=False))
        inner = inner.inner
    return flat, inner


_UNIT_MS: Final = {"ms": 1, "us": 1_000, "ns": 1_000_000}


def _instant_ms(expr: pl.Expr, dtype: pl.Datetime) -> pl.Expr:
    """A typed time's epoch ms, below the millisecond dropped (floored), in its own unit:
    through nanoseconds, a year past 2262 overflowed to null."""
    unit = dtype.time_unit or "us"
    return expr.dt.epoch(unit) // _UNIT_MS[unit]


def _as_text(expr: pl.Expr, dtype: Any) -> pl.Expr:
    if isinstance(dtype, (pl.Datetime, pl.Date)):
        if isinstance(dtype, pl.Datetime):
            ms, form = _instant_ms(expr, dtype), "%Y-%m-%dT%H:%M:%S%.9fZ"
        else:
            ms, form = expr.cast(pl.Int64) * 86_400_000, "%Y-%m-%d"
        # a typed time outside the years 1-9999 is written as its epoch milliseconds, the
        # same instant to the engine (Polars panics formatting a year past chrono's, and
        # ISO text of a year past 9999 is no date the rule reads)
        inside = ms.is_between(FIRST_MS, LAST_MS)
        # formatted clipped (a value outside never reaches the formatter), kept inside
        moment = pl.when(inside).then(expr).otherwise(pl.lit(0).cast(dtype))
        if isinstance(dtype, pl.Datetime) and dtype.time_zone:
            moment = moment.dt.convert_time_zone("UTC")
        return pl.when(inside).then(moment.dt.to_string(form)).otherwise(ms.cast(pl.String))
    if dtype == pl.String:
        return expr
    if dtype.is_numeric() or dtype == pl.Boolean:
        return expr.cast(pl.String)
    if dtype == pl.Categorical or isinstance(dtype, pl.Enum):
        return expr.cast(pl.String)
    return pl.lit(None, dtype=pl.String)  # structs, binary: not a value of these fields
