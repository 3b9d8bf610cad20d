"""Screening Parquet rows before they are turned into field lists, as the line scan does
for NDJSON: only rows whose raw action (and OS family) can match, and that are not older
than the time floor, become field lists; the others are counted and their time read.

Each row group is screened first from the columns that decide, and the others are read
only for a row group where some row survives. Of the deciding columns, the timestamps are
read first: a row group whose rows are all older than the floor needs nothing more (most
of an export is older than its last hours).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import polars as pl

from egress_offline.fields import ACTION, OS_FAMILY, TIMESTAMP
from egress_offline.normalise import text_ms
from egress_offline.readers import tuning
from egress_offline.readers.model import POS, TS, FileReport, StampBatch
from egress_offline.readers.parquet import (
    batches,
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
_LEAST: Final = -(2**63)
#: The canonical form of a timestamp (``normalise._CANONICAL``), with no text around it.
_CANONICAL: Final = re.compile(
    r"(?:19[7-9][0-9]|[2-9][0-9]{3})-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]{3,9})?Z",
    re.ASCII,
)


def read_screened(parquet: Any, wanted: list[str], report: FileReport, total: int, *,
                  prefilter: Prefilter, floor: TimeFloor
                  ) -> Iterator[pl.DataFrame | StampBatch]:  # fmt: skip
    """The field frames of the rows that survive screening, and the timestamps of the
    others that may be in the window (see the module docstring). A row group is read a
    bounded batch at a time, whatever its size: its timestamps first, then the deciding
    columns and the wanted ones in step."""
    deciding = [
        path for path in wanted if any(path in (name, f"_source.{name}") for name in DECIDING)
    ]
    timed = [path for path in deciding if path in (TIMESTAMP, f"_source.{TIMESTAMP}")]
    if floor.rising:
        floor.observe(latest_sampled(parquet, deciding))
    screen = _Screen(parquet, wanted, deciding, prefilter=prefilter, floor=floor, report=report,
                     total=total)  # fmt: skip
    for group in range(parquet.metadata.num_row_groups):
        low = floor.ms
        if timed and low is not None and low > _LEAST:  # a floor at the least long (the
            # sweep's, with no --since) holds no row group back: its span is not read
            span = _group_span(parquet, group, timed)
            if span is not None and (span[1] is None or span[1] <= low):
                # every row older than the floor, known from its timestamps alone
                report.cover_range(*span)
                rows = parquet.metadata.row_group(group).num_rows
                _pass_over(rows, _NO_STAMPS, floor, report, total)
                continue
        yield from screen.group(group)


class _Screen:
    """The screening of a file's row groups, batch by batch (:func:`read_screened`)."""

    def __init__(self, parquet: Any, wanted: list[str], deciding: list[str], *,
                 prefilter: Prefilter, floor: TimeFloor, report: FileReport,
                 total: int) -> None:  # fmt: skip
        self.parquet, self.wanted, self.deciding = parquet, wanted, deciding
        self.prefilter, self.floor, self.report, self.total = prefilter, floor, report, total
        self.could: pl.Expr | None = None  # from the deciding columns' schema, once
        self.chosen: list[pl.Expr] | None = None  # the same for the other columns
        self.judged: list[pl.Expr] | None = None  # the deciding fields' lists
        self.actions = any(path not in (TIMESTAMP, f"_source.{TIMESTAMP}") for path in deciding)
        # the kept rows' deciding columns come from the screened batch: only the others
        # are read again (all of them, when there are no others)
        self.rest = [path for path in wanted if path not in deciding] or wanted

    def group(self, group: int) -> Iterator[pl.DataFrame | StampBatch]:
        """Screen one row group: each batch of its deciding columns, and the wanted
        columns of the rows kept, read in step (batches of a multiple of their size)."""
        first = self.report.records + 1
        floor, report, total = self.floor, self.report, self.total
        rows = _Rows(self.parquet, group, self.rest)
        offset = 0
        for record_batch in batches(self.parquet, group, self.deciding, tuning.SCREEN_ROWS):
            frame = pl.from_arrow(record_batch)  # unnumbered: row_stamps numbers if it must
            assert isinstance(frame, pl.DataFrame)
            stamp = row_stamps(frame)
            low = floor.ms
            if low is not None and not stamp.gt(low).any():  # every row older
                _pass_over(stamp.len(), stamp, floor, report, total)
                offset += frame.height
                continue
            if self.actions:
                if self.could is None:
                    self.could = _could_match(frame.schema, self.prefilter)
                could = frame.select(self.could).to_series()
            else:  # no action column: no row can match
                could = pl.repeat(False, frame.height, eager=True)
            keep = _screen(stamp, could, floor, report, total)
            if keep.stamps is not None:
                yield keep.stamps
            if keep.mask.any():
                for part, wanted_batch, start in rows.over(offset, keep.mask):
                    within = start - offset  # the part's first row in the screened batch
                    decided = record_batch.slice(within, part.len())
                    yield self._fields(
                        kept_rows(wanted_batch, part, first + start),
                        kept_rows(decided, part, first + start),
                        stamp.slice(within, part.len()).filter(part),
                    )
            offset += frame.height

    def _fields(self, kept: pl.DataFrame, decided: pl.DataFrame,
                stamps: pl.Series) -> pl.DataFrame:  # fmt: skip
        """The field frame of kept rows: the deciding fields from their screened columns
        (``decided``), the others from ``kept``, and each row's timestamp as the screen
        read it, which is the engine's reading (``__ts``: not parsed again)."""
        self.chosen = self.chosen or selection(kept.schema)
        self.judged = self.judged or selection(decided.schema)
        named = {expr.meta.output_name(): expr for expr in self.judged}
        return kept.select(POS, *self.chosen).with_columns(
            *decided.select(named[name] for name in DECIDING).get_columns(),
            stamps.cast(pl.Int64).alias(TS),
        )


class _Rows:
    """The wanted columns of one row group, read only as far as rows are kept, a batch
    of at most :data:`~tuning.PARQUET_ROWS` at a time (:func:`batches`: a row group of 50
    million rows is read as any other)."""

    def __init__(self, parquet: Any, group: int, wanted: list[str]) -> None:
        self._parquet, self._group, self._wanted = parquet, group, wanted
        self._batches: Iterator[Any] | None = None
        self._at = 0  # rows of the group read so far
        self._last: tuple[Any, int] | None = None  # the last batch read, and its offset

    def over(self, offset: int, mask: pl.Series) -> Iterator[tuple[pl.Series, Any, int]]:
        """For the rows from ``offset`` that ``mask`` marks: each wanted batch (or part
        of one) among them that holds some, with its part of the mask and its first row's
        offset. A batch may run on past the rows screened: the rest of it is kept for
        the next rows."""
        if self._batches is None:
            self._batches = batches(self._parquet, self._group, self._wanted,
                                    tuning.PARQUET_ROWS)  # fmt: skip
        end = offset + mask.len()
        while True:
            if self._last is None or self._last[1] + self._last[0].num_rows <= offset:
                if self._at >= end:
                    return
                record_batch = next(self._batches)
                self._last = (record_batch, self._at)
                self._at += record_batch.num_rows
            record_batch, start = self._last
            low, high = max(start, offset), min(start + record_batch.num_rows, end)
            if low < high:
                part = mask.slice(low - offset, high - low)
                if part.any():
                    yield part, record_batch.slice(low - start, high - low), low
            if start + record_batch.num_rows > end:
                return  # the rest of this batch belongs to the next rows
            self._last = None


def _group_span(parquet: Any, group: int, timed: list[str]) -> tuple[int | None, int | None] | None:
    """The oldest and newest @timestamp of a row group, read a batch at a time with
    nothing kept: exact (see :func:`plain_span`) from the least and greatest texts of a
    plain text column, else from every row's timestamp; None when a text column's span
    is not exact."""
    spans: list[tuple[int | None, int | None] | None] = []
    for record_batch in batches(parquet, group, timed, tuning.SCREEN_ROWS):
        frame = pl.from_arrow(record_batch)  # no row numbers: their column cost a third
        assert isinstance(frame, pl.DataFrame)
        span = plain_span([frame])
        if span is None:
            found = parquet_raw(frame.schema, TIMESTAMP)
            if len(found) == 1 and found[0][1] == pl.String:
                return None  # texts that are not all one plain shape: read row by row
            stamp = row_stamps(frame).cast(pl.Int64)
            span = (stamp.min(), stamp.max())  # type: ignore[assignment]
        spans.append(span)
    lows = [low for low, _ in spans if low is not None]  # type: ignore[misc]
    highs = [high for _, high in spans if high is not None]  # type: ignore[misc]
    return (min(lows) if lows else None, max(highs) if highs else None)


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
    sorts before ``10:01:00.0Z``. Such a text is never earlier than the least text, and
    later than the greatest only if it is of the greatest's minute or the one before: a
    column with one among those, or as its least text, is read row by row. (Looking for
    one among every text took two thirds of the time.)"""
    if not frames:  # a row group of no rows
        return None, None
    found = parquet_raw(frames[0].schema, TIMESTAMP)
    if len(found) != 1 or found[0][1] != pl.String:
        return None
    text = pl.col(_STAMP)
    width = text.str.len_bytes()
    texts = pl.concat([frame.select(found[0][0].alias(_STAMP)) for frame in frames])
    row = texts.select(
        width.min().alias("narrow"),
        width.max().alias("wide"),
        text.str.ends_with("Z").all().alias("zoned"),
        text.min().alias("low"),
        text.max().alias("high"),
    )
    narrow, wide, zoned, low, high = row.row(0)
    if low is None:  # no timestamps at all
        return None, None
    if narrow != wide or not zoned or _leap(low):
        return None
    low_ms, high_ms = _plain_ms(low), _plain_ms(high)
    if low_ms is None or high_ms is None:  # not plainly a time: as the engine reads it
        low_ms, high_ms = text_ms(pl.Series([low, high], dtype=pl.String)).to_list()
    if low_ms is None or high_ms is None:
        return None
    # a 60th second later than the greatest text is of its minute or the one before
    near = _minute_text(high_ms - 61_000)
    if near is None or texts.filter(text >= near).select(_seconds_60(text).any()).item():
        return None
    return low_ms, high_ms


def _plain_ms(text: str) -> int | None:
    """Epoch ms of a text of the canonical form (:func:`~egress_offline.normalise.canonical_ms`)
    whose fields are a valid time, read as the engine reads it (the seconds, and the
    fraction's first three digits), without a query (the two texts of each row group
    took most of its span's time); None for any other, which the engine's rule reads."""
    if _CANONICAL.fullmatch(text) is None or text[17:19] == "60":
        return None
    try:
        moment = datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:  # no such day or time
        return None
    millis = int(text[20:23]) if text[19] == "." else 0
    return int(moment.timestamp()) * 1000 + millis


def _seconds_60(text: pl.Expr) -> pl.Expr:
    """Do the texts (of the canonical shape) read a 60th second?"""
    return text.str.slice(17, 2) == "60"


def _leap(text: str) -> bool:
    return text[17:19] == "60"


def _minute_text(ms: int) -> str | None:
    """The canonical text of the minute of ``ms`` (``2026-11-20T10:00``): every text of
    that minute or later is at least it. None before 1970, where no text is canonical."""
    if ms < 0:
        return None
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}"
    )


def latest_sampled(parquet: Any, deciding: list[str]) -> int | None:
    """A lower bound of the newest @timestamp of a Parquet file, from its first and last
    row groups (exports are in time order, one way or the other), so that ``--now
    latest`` can skip old rows from the start. Each row's timestamp is read as the
    screening and the engine read it, so the final anchor is at least this: from the
    timestamp column alone, by its greatest text where that is exact (:func:`plain_span`;
    reading the deciding columns and every row's time took a tenth of a 1 GB hunt)."""
    timed = [path for path in deciding if path in (TIMESTAMP, f"_source.{TIMESTAMP}")]
    last = parquet.metadata.num_row_groups - 1
    newest: int | None = None
    for group in sorted({0, last}) if last >= 0 else ():
        span = _group_span(parquet, group, timed) if timed else None
        high = span[1] if span is not None else _newest_read(parquet, group, deciding)
        if high is not None and (newest is None or high > newest):
            newest = high
    return newest


def _newest_read(parquet: Any, group: int, deciding: list[str]) -> int | None:
    """The newest @timestamp of a row group, every row's read."""
    newest: int | None = None
    for record_batch in batches(parquet, group, deciding, tuning.PARQUET_ROWS):
        high = row_stamps(positioned(record_batch, 1)).cast(pl.Int64).max()
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
