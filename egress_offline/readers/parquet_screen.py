"""Screening Parquet rows before they are turned into field lists, as the line scan does
for NDJSON: only rows whose raw action (and OS family) can match, and that are not older
than the time floor, become field lists; the others are counted and their time read.

Each stretch of row groups (one, or consecutive small ones: ``parquet_batches.stretches``)
is screened first from the columns that decide, and the others are read only for a
stretch where some row survives. Of the deciding columns, the timestamps are read first:
a stretch whose rows are all older than the floor needs nothing more (most of an export
is older than its last hours).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from egress_offline.fields import ACTION, OS_FAMILY, TIMESTAMP
from egress_offline.readers import tuning
from egress_offline.readers.model import POS, TS, FileReport, StampBatch
from egress_offline.readers.parquet import (
    kept_rows,
    leaf_list,
    parquet_raw,
    row_stamps,
    selection,
)
from egress_offline.readers.parquet_batches import (
    Stretch,
    batches,
    page_sizes,
    stretches,
    text_reader,
)
from egress_offline.readers.parquet_spans import Span, SpansAhead, latest_sampled, written_newer
from egress_offline.readers.prefilter import Prefilter
from egress_offline.readers.timefloor import TimeFloor

__all__ = ["read_screened"]

#: The columns every row is screened by.
DECIDING: Final = (TIMESTAMP, ACTION, OS_FAMILY)
_STAMP: Final = "__stamp"
_MAY: Final = "__may"
_NO_STAMPS: Final = pl.Series(_STAMP, [], dtype=pl.Int64)
_LEAST: Final = -(2**63)


def read_screened(parquet: Any, source: Any, wanted: list[str], report: FileReport,
                  total: int, *, prefilter: Prefilter, floor: TimeFloor
                  ) -> Iterator[pl.DataFrame | StampBatch]:  # fmt: skip
    """The field frames of the rows that survive screening, and the timestamps of the
    others that may be in the window (see the module docstring). A stretch of row groups
    is read a bounded batch at a time, whatever its size: its timestamps first, then the
    deciding columns and the wanted ones in step."""
    deciding = [
        path for path in wanted if any(path in (name, f"_source.{name}") for name in DECIDING)
    ]
    timed = [path for path in deciding if path in (TIMESTAMP, f"_source.{TIMESTAMP}")]
    sampled: dict[int, Span] = {}  # the spans --now latest read: not read again
    gathered = stretches(parquet.metadata)
    if floor.rising:
        floor.observe(latest_sampled(parquet, deciding, gathered, sampled))
    screen = _Screen(parquet, source, wanted, deciding, prefilter=prefilter, floor=floor,
                     report=report, total=total)  # fmt: skip

    def worth_finding(index: int) -> bool:  # a span found ahead: not written as recent
        low = floor.ms
        return low is None or not written_newer(parquet, gathered[index], timed, low)

    spans = SpansAhead(source, parquet, timed, gathered, known=sampled, wanted=worth_finding)
    try:
        yield from _stretches(parquet, gathered, screen, spans, timed, floor=floor,
                              report=report, total=total)  # fmt: skip
    finally:
        spans.close()


def _stretches(parquet: Any, gathered: list[Stretch], screen: _Screen, spans: SpansAhead,
               timed: list[str], *, floor: TimeFloor, report: FileReport, total: int
               ) -> Iterator[pl.DataFrame | StampBatch]:  # fmt: skip
    """Each stretch screened, or passed over when its span is older than the floor."""
    for index, stretch in enumerate(gathered):
        low = floor.ms
        if timed and low is not None and low > _LEAST:  # a floor at the least long (the
            # sweep's, with no --since) holds no stretch back: its span is not read
            # a stretch whose statistics say it is recent is screened: its span, found,
            # would hold nothing back (should they not be true, no row is lost)
            recent = written_newer(parquet, stretch, timed, low)
            span = None if recent else spans.span(index)
            if span is not None and (span[1] is None or span[1] <= low):
                # every row older than the floor, known from its timestamps alone
                report.cover_range(*span)
                rows = sum(parquet.metadata.row_group(group).num_rows for group in stretch)
                _pass_over(rows, _NO_STAMPS, floor, report, total)
                continue
        yield from screen.stretch(stretch)


class _Screen:
    """The screening of a file's row groups, batch by batch (:func:`read_screened`)."""

    def __init__(self, parquet: Any, source: Any, wanted: list[str], deciding: list[str], *,
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
        # read in step with the deciding columns, by a reader of their own: pyarrow's
        # readers of one file share one batch size, the last asked for (read 65,536 rows
        # at a time, the deciding columns' 1 MiB texts came 2,047 at a time)
        self.rest_reader = text_reader(source, parquet.metadata, self.rest, page_sizes(parquet))

    def stretch(self, stretch: Stretch) -> Iterator[pl.DataFrame | StampBatch]:
        """Screen one stretch of row groups: each batch of its deciding columns, and the
        wanted columns of the rows kept, read in step (batches of a multiple of their
        size)."""
        first = self.report.records + 1
        floor, report, total = self.floor, self.report, self.total
        rows = _Rows(self.rest_reader, stretch, self.rest)
        offset = 0
        for record_batch in batches(self.parquet, stretch, self.deciding, tuning.SCREEN_ROWS):
            # unnumbered: row_stamps numbers if it must; a table's chunks kept as read
            frame = pl.from_arrow(record_batch, rechunk=False)
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
    """The wanted columns of one stretch of row groups, read only as far as rows are
    kept, a batch of at most :data:`~tuning.PARQUET_ROWS` at a time (:func:`batches`: a
    row group of 50 million rows is read as any other)."""

    def __init__(self, parquet: Any, stretch: Stretch, wanted: list[str]) -> None:
        self._parquet, self._stretch, self._wanted = parquet, stretch, wanted
        self._batches: Iterator[Any] | None = None
        self._at = 0  # rows of the stretch read so far
        self._last: tuple[Any, int] | None = None  # the last batch read, and its offset

    def over(self, offset: int, mask: pl.Series) -> Iterator[tuple[pl.Series, Any, int]]:
        """For the rows from ``offset`` that ``mask`` marks: each wanted batch (or part
        of one) among them that holds some, with its part of the mask and its first row's
        offset. A batch may run on past the rows screened: the rest of it is kept for
        the next rows."""
        if self._batches is None:
            self._batches = batches(self._parquet, self._stretch, self._wanted,
                                    tuning.PARQUET_ROWS)  # fmt: skip
        end = offset + mask.len()
        while True:
            if self._last is None or self._last[1] + self._last[0].num_rows <= offset:
                if self._at >= end:
                    return
                record_batch = next(self._batches, None)
                if record_batch is None:  # said by batches once it has read them all
                    raise ValueError(f"row groups {_named(self._stretch)}: fewer rows than "
                                     "they say")  # fmt: skip
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
                flat, leaf = leaf_list(expr, dtype)
                if _textual(leaf):
                    tests.append(flat.cast(pl.List(pl.String)).list.contains(value))
                else:
                    tests.append(pl.lit(True))  # a type we cannot judge here: decode the row
            elif _textual(dtype):
                tests.append(expr.cast(pl.String) == value)
            else:
                tests.append(pl.lit(True))  # a type we cannot judge here: decode the row
        return pl.any_horizontal(tests).fill_null(False) if tests else pl.lit(False)

    could = pl.any_horizontal([holds(ACTION, action) for action in prefilter.actions])
    if prefilter.families is not None:
        could &= pl.any_horizontal([holds(OS_FAMILY, family) for family in prefilter.families])
    # a column of the batch's height, even when every test is a literal (an action column
    # of a type not judged here): a literal alone is one row, not the batch's
    return pl.repeat(False, pl.len()) | could


def _textual(dtype: Any) -> bool:
    return dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum)


def _named(stretch: Stretch) -> str:
    return f"{stretch[0]} to {stretch[-1]}" if len(stretch) > 1 else str(stretch[0])
