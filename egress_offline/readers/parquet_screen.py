"""Screening Parquet rows before they are turned into field lists, as the line scan does
for NDJSON: only rows whose raw action (and OS family) can match, and that are not older
than the time floor, become field lists; the others are counted and their time read.

Each row group is screened first from the columns that decide, and the others are read
only for a row group where some row survives. Of the deciding columns, the timestamps are
read first: a row group whose rows are all older than the floor needs nothing more (most
of an export is older than its last hours).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from egress_offline.fields import ACTION, OS_FAMILY, TIMESTAMP
from egress_offline.normalise import text_ms
from egress_offline.readers import tuning
from egress_offline.readers.model import POS, FileReport, StampBatch
from egress_offline.readers.parquet import (
    kept_rows,
    parquet_raw,
    positioned,
    row_stamps,
    selection,
)
from egress_offline.readers.prefilter import Prefilter
from egress_offline.readers.timefloor import TimeFloor

__all__ = ["latest_sampled", "plain_span", "read_screened"]

#: The columns every row is screened by.
DECIDING: Final = (TIMESTAMP, ACTION, OS_FAMILY)
_STAMP: Final = "__stamp"
_MAY: Final = "__may"
_NO_STAMPS: Final = pl.Series(_STAMP, [], dtype=pl.Int64)


def read_screened(parquet: Any, wanted: list[str], report: FileReport, total: int, *,
                  prefilter: Prefilter, floor: TimeFloor
                  ) -> Iterator[pl.DataFrame | StampBatch]:  # fmt: skip
    """The field frames of the rows that survive screening, and the timestamps of the
    others that may be in the window (see the module docstring)."""
    deciding = [
        path for path in wanted if any(path in (name, f"_source.{name}") for name in DECIDING)
    ]
    timed = [path for path in deciding if path in (TIMESTAMP, f"_source.{TIMESTAMP}")]
    rest = [path for path in deciding if path not in timed]
    if floor.rising:
        floor.observe(latest_sampled(parquet, deciding))
    chosen: list[pl.Expr] | None = None
    could: pl.Expr | None = None  # from the deciding columns' schema, once

    def read(group: int, columns: list[str]) -> Iterator[pl.DataFrame]:
        for record_batch in parquet.iter_batches(
            batch_size=tuning.SCREEN_ROWS, row_groups=[group], columns=columns
        ):
            yield positioned(record_batch, 1)

    for group in range(parquet.metadata.num_row_groups):
        first = report.records + 1
        texts = list(read(group, timed)) if timed else None
        low = floor.ms
        if texts is not None and low is not None:
            span = plain_span(texts)
            if span is not None and (span[1] is None or span[1] <= low):
                # every row older than the floor, known from the newest text alone
                report.cover_range(*span)
                _pass_over(sum(frame.height for frame in texts), _NO_STAMPS, floor, report, total)
                continue
        stamps = [row_stamps(frame) for frame in texts] if texts is not None else None
        texts = None  # the timestamps alone are kept: a row group's texts may be large
        if stamps is not None and low is not None and not any(s.gt(low).any() for s in stamps):
            for stamp in stamps:  # every row older than the floor
                _pass_over(stamp.len(), stamp, floor, report, total)
            continue
        if not rest:  # no action column: no row can match
            assert stamps is not None
            screened = [(stamp, pl.repeat(False, stamp.len(), eager=True)) for stamp in stamps]
        else:
            frames = read(group, rest)
            # the same row group in batches of the same size: the batches pair up
            pairs = (
                zip(frames, stamps, strict=True)
                if stamps is not None
                else ((frame, row_stamps(frame)) for frame in frames)
            )
            screened = []
            for frame, stamp in pairs:
                could = could if could is not None else _could_match(frame.schema, prefilter)
                screened.append((stamp, frame.select(could).to_series()))
        masks = []
        for stamp, could_match in screened:
            keep = _screen(stamp, could_match, floor, report, total)
            masks.append(keep.mask)
            if keep.stamps is not None:
                yield keep.stamps
        if not masks:
            continue
        mask = pl.concat(masks)
        if not mask.any():
            continue
        offset = 0
        for record_batch in parquet.iter_batches(
            batch_size=tuning.PARQUET_ROWS, row_groups=[group], columns=wanted
        ):
            part = mask.slice(offset, record_batch.num_rows)
            if part.any():
                frame = kept_rows(record_batch, part, first + offset)
                chosen = chosen or selection(frame.schema)
                yield frame.select(POS, *chosen)
            offset += record_batch.num_rows


def plain_span(frames: list[pl.DataFrame]) -> tuple[int | None, int | None] | None:
    """The oldest and newest @timestamp (epoch ms, as the engine reads them) of a row
    group's timestamp column, read from its least and greatest texts, when that is exact;
    else None, and each row's timestamp must be read.

    It is exact when one plain text column holds the timestamps and every text in it has
    the same length and ends in ``Z``: the general rule then reads every one of them in a
    single shape of fixed-width fields (``2022-04-04T18:52:00.6007809Z``), or not at all,
    so text order is time order. A text that cannot be read lies between the two and
    counts for nothing either way; the least and greatest themselves must read. One
    exception: the rule reads a 60th second (``10:00:60.5Z`` is ``10:01:00.5Z``), which
    sorts before ``10:01:00.0Z``; a column holding one is read row by row."""
    if not frames:  # a row group of no rows
        return None, None
    found = parquet_raw(frames[0].schema, TIMESTAMP)
    if len(found) != 1 or found[0][1] != pl.String:
        return None
    text = pl.col(_STAMP)
    width = text.str.len_bytes()
    row = pl.concat([frame.select(found[0][0].alias(_STAMP)) for frame in frames]).select(
        width.min().alias("narrow"),
        width.max().alias("wide"),
        text.str.ends_with("Z").all().alias("zoned"),
        (text.str.slice(17, 2) == "60").any().alias("leap"),  # the seconds, if any
        text.min().alias("low"),
        text.max().alias("high"),
    )
    narrow, wide, zoned, leap, low, high = row.row(0)
    if low is None:  # no timestamps at all
        return None, None
    if narrow != wide or not zoned or leap:
        return None
    low_ms, high_ms = text_ms(pl.Series([low, high], dtype=pl.String)).to_list()
    if low_ms is None or high_ms is None:
        return None
    return low_ms, high_ms


def latest_sampled(parquet: Any, deciding: list[str]) -> int | None:
    """A lower bound of the newest @timestamp of a Parquet file, from its first and last
    row groups (exports are in time order, one way or the other), so that ``--now
    latest`` can skip old rows from the start. Each row's timestamp is read as the
    screening and the engine read it, so the final anchor is at least this."""
    last = parquet.metadata.num_row_groups - 1
    newest: int | None = None
    for group in sorted({0, last}) if last >= 0 else ():
        for record_batch in parquet.iter_batches(
            batch_size=tuning.PARQUET_ROWS, row_groups=[group], columns=deciding
        ):
            frame = positioned(record_batch, 1)
            high = row_stamps(frame).cast(pl.Int64).max()
            if isinstance(high, int) and (newest is None or high > newest):
                newest = high
    return newest


@dataclass(frozen=True)
class _Screening:
    mask: pl.Series  # rows to turn into field lists
    stamps: StampBatch | None  # timestamps of the others that may be in the window


def _screen(stamp: pl.Series, could: pl.Series, floor: TimeFloor, report: FileReport,
            total: int) -> _Screening:  # fmt: skip
    """Which rows of a batch to keep: those that ``could`` match, by their deciding
    columns, and are not older than the floor by their timestamps, ``stamp``."""
    low = floor.ms
    fresh = pl.lit(True) if low is None else (pl.col(_STAMP) > low).fill_null(False)
    marked = pl.DataFrame([stamp.alias(_STAMP), could.alias(_MAY)]).with_columns(
        (pl.col(_MAY) & fresh).alias(_MAY)
    )
    # the stamps alone are filtered: the other columns' text need not be copied for them
    passed = marked.select(pl.col(_STAMP).filter(~pl.col(_MAY)).drop_nulls()).to_series()
    _pass_over(stamp.len(), passed, floor, report, total)
    return _Screening(marked.get_column(_MAY), floor.stamps(passed) if passed.len() else None)


def _pass_over(rows: int, stamps: pl.Series, floor: TimeFloor, report: FileReport,
               total: int) -> None:  # fmt: skip
    """Count ``rows`` read rows, and the timestamps of those not kept in the report's
    time range (and the rising floor)."""
    report.records += rows
    report.progress = min(1.0, report.records / total)
    report.cover(stamps)
    floor.observe(report.last_ms)


def _could_match(schema: pl.Schema, prefilter: Prefilter) -> pl.Expr:
    """Rows whose raw columns may hold one of the actions (and an OS family): a superset
    of the rows that match, judged without building the field lists."""

    def holds(name: str, value: str) -> pl.Expr:
        tests = []
        for expr, dtype in parquet_raw(schema, name):
            if isinstance(dtype, (pl.List, pl.Array)):
                tests.append(expr.cast(pl.List(pl.String), strict=False).list.contains(value))
            elif dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
                tests.append(expr.cast(pl.String) == value)
            else:
                tests.append(pl.lit(True))  # a type we cannot judge here: decode the row
        return pl.any_horizontal(tests).fill_null(False) if tests else pl.lit(False)

    could = pl.any_horizontal([holds(ACTION, action) for action in prefilter.actions])
    if prefilter.families is not None:
        could &= pl.any_horizontal([holds(OS_FAMILY, family) for family in prefilter.families])
    return could
