"""The hunt's row predicate, compiled from its definition (:class:`RowFilters`), and the
reduction of each field batch to the narrow candidate rows that the later steps read."""

from __future__ import annotations

from typing import Any, Final

import polars as pl

from egress_offline import fields as f
from egress_offline.engine.spill import Spill
from egress_offline.normalise import (
    exponent_texts,
    exponent_values,
    keyword,
    present,
    sum_longs,
)
from egress_offline.readers import FILE, ID, INDEX, POS, TS, FieldBatch, Prefilter, tuning
from egress_offline.spec import RowFilters

__all__ = [
    "HAS_BYTES",
    "SUM",
    "UNREAD",
    "N",
    "candidate_schema",
    "element_slices",
    "event_match",
    "keywords_of",
    "prefilter_for",
    "reduce_batch",
]  # fmt: skip

#: Columns of the candidate rows: exact byte sum, values summed, any bytes at all, values
#: that are not a long (read as missing, as the cluster's ``ignore_malformed`` does)
SUM: Final = "__sum"
N: Final = "__n"
HAS_BYTES: Final = "__has_bytes"
UNREAD: Final = "__unread"
_MATCH: Final = "__match"


def _single_of(name: str, values: tuple[str, ...], kept: pl.Expr | None = None) -> pl.Expr:
    """ES|QL's ``name == value`` for any of ``values``: a keyword field's single value
    equals one exactly; missing or several values make it null, and the row is dropped.
    ``kept`` is the field's :func:`keyword` values, if given."""
    kept = keyword(name) if kept is None else kept
    return (kept.list.len() == 1) & kept.list.first().is_in(list(values))


def event_match(spec: RowFilters, keywords: dict[str, pl.Expr] | None = None) -> pl.Expr:
    """The event part of the predicate: OS family (unless any), category and action.
    ``keywords`` holds the fields' :func:`keyword` values, when they are known to be
    simpler (:func:`keywords_of`)."""
    given = keywords or {}
    match = _single_of(f.CATEGORY, spec.categories, given.get(f.CATEGORY)) & _single_of(
        f.ACTION, spec.actions, given.get(f.ACTION)
    )
    if spec.os_families is not None:
        match = _single_of(f.OS_FAMILY, spec.os_families, given.get(f.OS_FAMILY)) & match
    return match


def keywords_of(frame: pl.DataFrame, names: list[str]) -> dict[str, pl.Expr]:
    """:func:`keyword` of each of ``names`` for the rows of ``frame``: where no row holds
    more than one value, the values present, unchanged (the distinct values of at most one
    value are itself). Most fields of most exports hold one value, and the distinct values
    of every list took most of the reduction (8 fields of 16,000 rows: 8 ms against 1)."""
    longest = frame.select(pl.col(name).list.len().max() for name in names).row(0)
    return {
        name: keyword(name) if (most or 0) > 1 else present(pl.col(name)).alias(name)
        for name, most in zip(names, longest, strict=True)
    }


def prefilter_for(spec: RowFilters) -> Prefilter | None:
    """The readers' prefilter for ``spec``: lines that cannot hold one of its actions (and
    OS families) are never decoded. None under ``strict``, which decodes every line."""
    if spec.strict:
        return None
    return Prefilter(families=spec.os_families, actions=spec.actions)


def candidate_schema() -> dict[str, Any]:
    """The columns of the spilled candidate rows."""
    text_list = f.TEXT_LIST
    return {
        FILE: pl.UInt32,
        POS: pl.Int64,
        INDEX: pl.String,
        ID: pl.String,
        TS: pl.Int64,
        f.DEST_IP: text_list,
        **{name: text_list for name in f.GROUP_FIELDS},
        SUM: pl.Int128,
        N: pl.UInt32,
        HAS_BYTES: pl.Boolean,
        UNREAD: pl.UInt32,
        **{name: text_list for name in f.CONTEXT_FIELDS},
    }


def reduce_batch(batch: FieldBatch, spec: RowFilters, spill: Spill, *,
                 count_stamps: bool) -> None:  # fmt: skip
    """Fold one field batch into the spill: the candidate rows (the event predicate
    holds), and, with ``count_stamps``, the timestamps of the other records, which the
    time step counts."""
    words = keywords_of(batch.frame, [f.CATEGORY, f.ACTION, f.OS_FAMILY])
    marked = batch.frame.with_columns(event_match(spec, words).alias(_MATCH))
    if count_stamps:
        spill.add_stamps(marked.filter(~pl.col(_MATCH)).get_column(TS).drop_nulls())
    candidates = marked.filter(pl.col(_MATCH))
    for part in element_slices(candidates, tuning.REDUCE_ELEMENTS):
        _reduce_candidates(part, spill)


def element_slices(frame: pl.DataFrame, most: int) -> list[pl.DataFrame]:
    """``frame`` in consecutive slices of about ``most`` list elements each: a slice is
    the rows whose elements end within the same ``most`` (so it holds at most ``most``
    and its first row's elements). Each element is several values while its row is
    reduced, and a batch sized by its text may hold millions: 65,536 events whose
    ``source.bytes`` is a list of 2,001 (476 MB of text) peaked at 2.1 GB reduced a batch
    at a time, 1.0 GB in slices."""
    lists = [name for name, kind in frame.schema.items() if isinstance(kind, pl.List)]
    if frame.height == 0 or not lists:
        return [frame] if frame.height else []
    sizes = frame.select(
        pl.sum_horizontal(pl.col(lists).list.len().cast(pl.Int64)).fill_null(0)
    ).to_series()
    if int(sizes.sum()) <= most:
        return [frame]
    # a row's slice: the number of whole `most`s before its last element
    slice_of = ((sizes.cum_sum() - 1).clip(0) // most).rle()
    parts, at = [], 0
    for rows in slice_of.struct.field("len"):
        parts.append(frame.slice(at, rows))
        at += rows
    return parts


def _reduce_candidates(candidates: pl.DataFrame, spill: Spill) -> None:
    """The narrow candidate rows of ``candidates`` (the predicate holds), into the spill."""
    exponents = exponent_values(candidates.select(exponent_texts()).to_series().to_list())
    total, parsed = sum_longs(f.SOURCE_BYTES, exponents)
    given = present(pl.col(f.SOURCE_BYTES))
    # an empty string is missing to the cluster's numbers, not malformed
    filled = given.list.eval(pl.element() != "").list.sum()
    kept = keywords_of(candidates, [f.DEST_IP, *f.GROUP_FIELDS, *f.CONTEXT_FIELDS])
    spill.add(
        candidates.select(
            FILE,
            POS,
            INDEX,
            ID,
            TS,
            kept[f.DEST_IP],
            *[kept[name] for name in f.GROUP_FIELDS],
            total.alias(SUM),
            parsed.alias(N),
            (given.list.len() > 0).alias(HAS_BYTES),
            (filled.cast(pl.Int64) - parsed).clip(0).cast(pl.UInt32).alias(UNREAD),
            *[kept[name] for name in f.CONTEXT_FIELDS],
        )
    )
