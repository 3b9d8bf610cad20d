"""sweep: every exfiltration episode in a historical dump, not only the last 8 hours.

Data flow::

    readers -> reduce (the event predicate, as the hunt; the other records' timestamps
        counted in the period as they come) -> spill -> period -> CIDR -> keys exploded
        -> groups numbered -> (group number, time, bytes) on disk, in partitions of
        groups -> per group, running sums over its events by time -> the peak window
        -> threshold -> SweepResult

For each group, the sum of ``source.bytes`` over the events in ``(t - window, t]`` is
taken at every event time ``t`` (a true sliding window: every episode, wherever it
starts), and the largest is the group's peak. Events with equal timestamps are all in
each other's windows. Each group's keys are held once, with a number; its events are
written to disk as that number, a time and a sum, and read a partition of groups at a
time, so memory holds the groups and one partition's events, never the whole dump.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from egress_offline import fields as f
from egress_offline.engine import (
    CONNECTIONS,
    FIRST_SEEN,
    LAST_SEEN,
    OUTPUT_COLUMNS,
    SUM,
    TOTAL,
    TS,
    Counts,
    DataRange,
    Diagnosis,
    GroupSeries,
    N,
    ProgressHook,
    Spill,
    check_understood,
    file_warnings,
    finish,
    group_series,
    public_events,
    read_into,
)
from egress_offline.engine.census import take_census
from egress_offline.engine.diagnosis import diagnose, period_step
from egress_offline.engine.ingest import Ingest
from egress_offline.normalise import long_or_null
from egress_offline.readers import FileReport, Inputs, open_inputs
from egress_offline.readers.remote import Store
from egress_offline.scratch import Scratch
from egress_offline.spec import SweepSpec

__all__ = ["PEAK", "PEAK_END", "PEAK_START", "SWEEP_COLUMNS", "SweepResult", "run_sweep"]

PEAK: Final = "peak_bytes"
PEAK_START: Final = "peak_window_start"
PEAK_END: Final = "peak_window_end"
#: Output columns, in order: the hunt's, after the peak and its window. The last two are
#: dropped when no flagged row has a value.
SWEEP_COLUMNS: Final = (
    PEAK,
    *f.GROUP_FIELDS,
    PEAK_START,
    PEAK_END,
    *(name for name in OUTPUT_COLUMNS if name not in f.GROUP_FIELDS),
)
#: events a partition holds, about: each a group number, a time and a sum (32 bytes). The
#: peaks of 334,000 events in one partition took 70 MiB more memory than in four, and
#: no less time (each partition reads the numbers alone: 13 ms).
_PARTITION_ROWS: Final = 100_000
_PEAKS_SCHEMA: Final = {
    **{name: pl.String for name in f.GROUP_FIELDS},
    PEAK: pl.Int64,
    PEAK_START: pl.Int64,
    PEAK_END: pl.Int64,
    TOTAL: pl.Int64,
    CONNECTIONS: pl.Int64,
    FIRST_SEEN: pl.Int64,
    LAST_SEEN: pl.Int64,
}
# group_peaks' own columns
_GROUP: Final = "__group"
_EVENTS: Final = "__events"
_RUN_SUM: Final = "__run_sum"
_RUN_N: Final = "__run_n"
_LOW: Final = "__low"
_SUM_BEFORE: Final = "__sum_before"
_N_BEFORE: Final = "__n_before"
#: A time floor below every timestamp (the least epoch ms of a long): no record is skipped
#: as old, and every record's timestamp is kept to be counted.
_BEFORE_ALL: Final = -(2**63)


@dataclass
class SweepResult(DataRange):
    """The flagged groups and everything needed to report how they were found."""

    rows: pl.DataFrame
    spec: SweepSpec
    counts: Counts
    files: list[FileReport]
    skipped: list[str]
    first_ms: int | None = None  # the data's time range, epoch ms
    last_ms: int | None = None
    partitions: int = 1
    warnings: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    diagnoses: list[Diagnosis] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    #: when the run started, epoch ms (UTC)
    started_ms: int | None = None
    #: the flagged groups' bytes over the period (``run_sweep(..., series=True)``), buckets
    #: anchored on the peak window's first event; else None
    series: list[GroupSeries] | None = None


def run_sweep(
    paths: list[str],
    spec: SweepSpec | None = None,
    *,
    hash_inputs: bool = False,
    progress: ProgressHook | None = None,
    scratch_limit: int | None = None,
    series: bool = False,
    ingest: Ingest | None = None,
    store: Store | None = None,
) -> SweepResult:
    """Sweep ``paths`` (files, directories, globs, ``-``) for every group whose bytes in
    some window reach the threshold. Raises as :func:`~egress_offline.run_hunt` does;
    ``series``, ``ingest`` and ``store`` as there."""
    spec = spec or SweepSpec()
    started = time.perf_counter()
    started_ms = int(time.time() * 1000)
    counts = Counts()
    since, until = spec.since_ms, spec.until_ms
    with (
        Scratch(scratch_limit) as scratch,
        open_inputs(paths, scratch, store=store) as inputs,
    ):
        low = _floor(since)
        # the period is known before reading: the other records' timestamps are counted
        # in it as they come (a time step's count), never stored
        spill = Spill(scratch, stamp_bounds=(low, until))
        # records before `since` can be skipped unread, as the hunt skips those before
        # its window; with or without, the timestamps of the records not decoded are
        # kept, to count those in the period
        read = (ingest or read_into)(
            inputs, spec, spill, counts,
            window_ms=spec.window_ms,
            floor_ms=low,
            count_stamps=True,
            hash_inputs=hash_inputs,
            progress=progress,
            scratch=scratch,
        )  # fmt: skip
        check_understood(read.files, counts, reader="the sweep")
        in_period = pl.col(TS).is_not_null()
        if since is not None:
            in_period &= pl.col(TS) >= since
        if until is not None:
            in_period &= pl.col(TS) < until
        events = public_events(spill, spec.cidrs, in_period, counts, read.files)
        # records with a @timestamp in the period, a document read again among them
        counts.time_window = (
            spill.count_stamps(after=low, before=until) + counts.event_match + counts.duplicates
        )
        rows, partitions = _peaks(events, spec, counts, spill)
        result = SweepResult(
            rows=rows,
            spec=spec,
            counts=counts,
            files=read.files,
            skipped=inputs.skipped,
            first_ms=read.first_ms,
            last_ms=read.last_ms,
            partitions=partitions,
            started_ms=started_ms,
        )
        if series:
            result.series = group_series(
                rows, spill.public, anchor=PEAK_START, long_texts=spill.long_texts
            )
        result.diagnoses = _diagnoses(result, inputs, spill, scratch, in_period)
    files = file_warnings(result.files)
    result.alerts = [d.message for d in result.diagnoses if d.alert] + files
    result.warnings += files
    result.elapsed_seconds = time.perf_counter() - started
    return result


def _floor(since: int | None) -> int:
    """The time floor (and the time step's lower bound, exclusive) of a period starting at
    ``since``: below every timestamp when there is none."""
    return _BEFORE_ALL if since is None else since - 1


def _diagnoses(result: SweepResult, inputs: Inputs, spill: Spill, scratch: Scratch,
               in_period: pl.Expr) -> list[Diagnosis]:  # fmt: skip
    """Why nothing was flagged (see :mod:`egress_offline.engine.diagnosis`)."""
    spec, counts = result.spec, result.counts
    since, until = spec.since_ms, spec.until_ms
    return diagnose(
        spec,
        counts,
        spill,
        place="the period",
        time_step=lambda: period_step(
            valid=counts.valid,
            kept=counts.time_window,
            since_ms=since,
            until_ms=until,
            first_ms=result.first_ms,
            last_ms=result.last_ms,
        ),
        census=lambda: take_census(
            inputs,
            spec,
            scratch,
            window_ms=spec.window_ms,
            floor_ms=_floor(since),
            in_period=in_period,
        ),
        window=_duration(spec.window_ms),
        files=result.files,
    )


def _duration(ms: int) -> str:
    """A window in the units it was most likely given: ``8h``, ``1h30m``."""
    rest, parts = ms // 1000, []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or f"{ms}ms"


def _peaks(
    events: pl.LazyFrame, spec: SweepSpec, counts: Counts, spill: Spill
) -> tuple[pl.DataFrame, int]:
    keys = list(f.GROUP_FIELDS)
    # every group, numbered: memory holds the groups' keys, and their events only as
    # numbers, on disk, read a partition of groups at a time
    groups = events.select(keys).unique().collect(engine="streaming").with_row_index(_GROUP)
    numbered = events.join(groups.lazy(), on=keys, how="inner", nulls_equal=True)
    narrow = spill.sink(numbered.select(_GROUP, TS, SUM, N), "sweep-events.arrow")
    total = pl.scan_ipc(narrow, glob=False).select(pl.len()).collect().item()
    partitions = max(1, -(-total // _PARTITION_ROWS))
    found = []
    for part in range(partitions):
        scan = pl.scan_ipc(narrow, glob=False)
        if partitions > 1:
            scan = scan.filter(pl.col(_GROUP) % partitions == part)
        found.append(_numbered_peaks(scan.collect(), spec.window_ms))
    summed = groups.join(pl.concat(found), on=_GROUP).select(list(_PEAKS_SCHEMA))
    counts.groups = summed.height
    counts.largest = summed.get_column(PEAK).max()  # type: ignore[assignment]
    flagged = summed.filter(pl.col(PEAK) >= spec.threshold).with_columns(
        pl.col(PEAK_START, PEAK_END, FIRST_SEEN, LAST_SEEN).cast(pl.Datetime("ms", "UTC"))
    )
    return finish(flagged, spill, counts, by=PEAK, columns=SWEEP_COLUMNS), partitions


def group_peaks(events: pl.DataFrame, window_ms: int) -> pl.DataFrame:
    """Per group of ``events`` (the keys, ``__ts``, ``__sum``, ``__n``): the peak window
    sum, the first and last event of the peak window (the earliest such window on ties),
    and the group's totals over all its events (see :func:`_numbered_peaks`)."""
    keys = list(f.GROUP_FIELDS)
    groups = events.select(keys).unique().with_row_index(_GROUP)
    numbered = events.join(groups, on=keys, how="inner", nulls_equal=True)
    peaks = _numbered_peaks(numbered.select(_GROUP, TS, SUM, N), window_ms)
    return groups.join(peaks, on=_GROUP).select(list(_PEAKS_SCHEMA))


def _numbered_peaks(events: pl.DataFrame, window_ms: int) -> pl.DataFrame:
    """:func:`group_peaks` of events whose group is a number (``__group``), by number.

    Each group's events are summed per millisecond, in time order, with running sums over
    the whole frame. The window ending at a moment ``t`` holds the moments from the first
    one at or after ``t - window + 1`` (an as-of join, per group) up to ``t``, so its sum
    is a difference of two running sums: no window is summed event by event (a rolling sum
    over each group took four times as long)."""
    # one row per group and millisecond, in time order within each group
    moments = (
        events.group_by(_GROUP, TS)
        .agg(
            pl.col(SUM).sum(),
            pl.col(N).cast(pl.Int64).sum(),
            pl.len().cast(pl.Int64).alias(_EVENTS),
        )
        .sort(_GROUP, TS)
        .with_columns(pl.col(SUM).cum_sum().alias(_RUN_SUM), pl.col(N).cum_sum().alias(_RUN_N))
    )
    # the window (t - window, t]: its first moment is the first at or after this (a
    # timestamp near the least long has every earlier moment of its group in its window)
    low = (
        pl.when(pl.col(TS) < _BEFORE_ALL + window_ms - 1)
        .then(pl.lit(_BEFORE_ALL, dtype=pl.Int64))
        .otherwise(pl.col(TS) - (window_ms - 1))
    )
    ends = moments.select(_GROUP, TS, _RUN_SUM, _RUN_N, low.alias(_LOW))
    starts = moments.select(
        _GROUP,
        pl.col(TS).alias(PEAK_START),
        (pl.col(_RUN_SUM) - pl.col(SUM)).alias(_SUM_BEFORE),
        (pl.col(_RUN_N) - pl.col(N)).alias(_N_BEFORE),
    )
    windows = ends.join_asof(
        starts, left_on=_LOW, right_on=PEAK_START, by=_GROUP, strategy="forward",
        check_sortedness=False,  # sorted by time within each group, as the join needs
    )  # fmt: skip
    window_sum = long_or_null(
        pl.col(_RUN_SUM) - pl.col(_SUM_BEFORE), pl.col(_RUN_N) - pl.col(_N_BEFORE)
    )
    best = pl.col(PEAK).arg_max()  # the first largest: the earliest window on ties
    peaks = (
        windows.select(_GROUP, TS, PEAK_START, window_sum.alias(PEAK))
        .filter(pl.col(PEAK).is_not_null())
        .group_by(_GROUP)
        .agg(pl.col(PEAK).max(), pl.col(PEAK_START).get(best), pl.col(TS).get(best).alias(PEAK_END))
    )
    totals = moments.group_by(_GROUP).agg(
        long_or_null(pl.col(SUM).sum(), pl.col(N).sum()).alias(TOTAL),
        pl.col(_EVENTS).sum().alias(CONNECTIONS),
        pl.col(TS).min().alias(FIRST_SEEN),
        pl.col(TS).max().alias(LAST_SEEN),
    )
    return totals.join(peaks, on=_GROUP, how="left")
