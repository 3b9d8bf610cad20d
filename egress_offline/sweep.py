"""sweep: every exfiltration episode in a historical dump, not only the last 8 hours.

Data flow::

    readers -> reduce (the event predicate, as the hunt) -> spill -> period -> CIDR
        -> keys exploded -> hash partitions on disk -> per group, a sliding window over
        its sorted events -> peak -> threshold -> SweepResult

For each group, the sum of ``source.bytes`` over the events in ``(t - window, t]`` is
taken at every event time ``t`` (a true sliding window: every episode, wherever it
starts), and the largest is the group's peak. Events with equal timestamps are all in
each other's windows. The events are split by a hash of the group keys into partitions
written to disk and read one at a time, so memory holds one partition's events, never the
whole dump.
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
_PARTITION_ROWS: Final = 100_000  # events a partition holds, about
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
) -> SweepResult:
    """Sweep ``paths`` (files, directories, globs, ``-``) for every group whose bytes in
    some window reach the threshold. Raises as :func:`~egress_offline.run_hunt` does;
    ``series`` and ``ingest`` as there."""
    spec = spec or SweepSpec()
    started = time.perf_counter()
    started_ms = int(time.time() * 1000)
    counts = Counts()
    since, until = spec.since_ms, spec.until_ms
    with (
        Scratch(scratch_limit) as scratch,
        open_inputs(paths, scratch) as inputs,
    ):
        spill = Spill(scratch)
        # records before `since` can be skipped unread, as the hunt skips those before
        # its window; with or without, the timestamps of the records not decoded are
        # kept, to count those in the period
        read = (ingest or read_into)(
            inputs, spec, spill, counts,
            window_ms=spec.window_ms,
            floor_ms=_BEFORE_ALL if since is None else since - 1,
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
        # records with a @timestamp in the period; an event match once per document
        low = _BEFORE_ALL if since is None else since - 1
        counts.time_window = spill.count_stamps(after=low, before=until) + counts.event_match
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
            result.series = group_series(rows, spill.public, anchor=PEAK_START)
        result.diagnoses = _diagnoses(result, inputs, spill, scratch, in_period)
    files = file_warnings(result.files)
    result.alerts = [d.message for d in result.diagnoses if d.alert] + files
    result.warnings += files
    result.elapsed_seconds = time.perf_counter() - started
    return result


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
            floor_ms=_BEFORE_ALL if since is None else since - 1,
            in_period=in_period,
        ),
        window=_duration(spec.window_ms),
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
    narrow = spill.sink(events.select(*keys, TS, SUM, N), "sweep-events.arrow")
    total = pl.scan_ipc(narrow, glob=False).select(pl.len()).collect(engine="streaming").item()
    partitions = max(1, -(-total // _PARTITION_ROWS))
    found = []
    for part in range(partitions):
        scan = pl.scan_ipc(narrow, glob=False)
        if partitions > 1:
            scan = scan.filter(pl.struct(keys).hash(seed=7) % partitions == part)
        found.append(group_peaks(scan.collect(engine="streaming"), spec.window_ms))
    summed = pl.concat(found)
    counts.groups = summed.height
    counts.largest = summed.get_column(PEAK).max()  # type: ignore[assignment]
    flagged = summed.filter(pl.col(PEAK) >= spec.threshold).with_columns(
        pl.col(PEAK_START, PEAK_END, FIRST_SEEN, LAST_SEEN).cast(pl.Datetime("ms", "UTC"))
    )
    return finish(flagged, spill, counts, by=PEAK, columns=SWEEP_COLUMNS), partitions


def group_peaks(events: pl.DataFrame, window_ms: int) -> pl.DataFrame:
    """Per group of ``events`` (the keys, ``__ts``, ``__sum``, ``__n``): the peak window
    sum, the first and last event of the peak window (the earliest such window on ties),
    and the group's totals over all its events."""
    keys = list(f.GROUP_FIELDS)
    if events.height == 0:
        return pl.DataFrame(
            schema={
                **{name: pl.String for name in keys},
                PEAK: pl.Int64,
                PEAK_START: pl.Int64,
                PEAK_END: pl.Int64,
                TOTAL: pl.Int64,
                CONNECTIONS: pl.Int64,
                FIRST_SEEN: pl.Int64,
                LAST_SEEN: pl.Int64,
            }
        )
    ordered = events.sort([*keys, TS], nulls_last=True)
    windows = ordered.rolling(
        index_column=TS, period=f"{window_ms}i", closed="right", group_by=keys
    ).agg(
        pl.col(SUM).sum().alias("__wsum"),
        pl.col(N).cast(pl.Int64).sum().alias("__wn"),
        pl.col(TS).min().alias(PEAK_START),
    )
    peaks = (
        windows.with_columns(long_or_null(pl.col("__wsum"), pl.col("__wn")).alias(PEAK))
        .filter(pl.col(PEAK).is_not_null())
        .sort([*keys, PEAK, TS], descending=[False, False, False, True, False], nulls_last=True)
        .group_by(keys, maintain_order=True)
        .first()
        .select(*keys, PEAK, PEAK_START, pl.col(TS).alias(PEAK_END))
    )
    totals = events.group_by(keys).agg(
        long_or_null(pl.col(SUM).sum(), pl.col(N).cast(pl.Int64).sum()).alias(TOTAL),
        pl.len().cast(pl.Int64).alias(CONNECTIONS),
        pl.col(TS).min().alias(FIRST_SEEN),
        pl.col(TS).max().alias(LAST_SEEN),
    )
    return totals.join(peaks, on=keys, how="left", nulls_equal=True).select(
        *keys, PEAK, PEAK_START, PEAK_END, TOTAL, CONNECTIONS, FIRST_SEEN, LAST_SEEN
    )
