"""The hunt: its definition (:class:`HuntSpec`) compiled and run over the inputs.

Data flow::

    readers (a read session: field batches, timestamp batches) -> reduce (the event
        predicate) -> spill -> aggregate (window, CIDR, group and sum, threshold)
        -> HuntResult

Each batch is reduced at once to the narrow *candidate* rows (right OS, category and
action) and the timestamps of the other records. Both are spilled as compressed Arrow
IPC, its first 32 MiB in memory and the rest in scratch files, so memory holds one batch,
that much spill and the groups, never the input. The window is applied exactly
after the pass, because its anchor (``--now latest``) is the newest timestamp of the whole
input; while reading, a time floor that never passes the final cutoff lets the readers
skip records that are certainly too old. Destination addresses are classified once per
distinct value. When nothing is flagged, the steps that removed (nearly) every record are
named, from the data (``diagnosis``); with ``--now latest``, an anchor that stands apart
from the rest of the data is said (``anchor``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

import polars as pl

from egress_offline.engine.accounting import check_understood, file_warnings
from egress_offline.engine.aggregate import aggregate_window
from egress_offline.engine.anchor import check_anchor
from egress_offline.engine.census import take_census
from egress_offline.engine.diagnosis import diagnose, window_step
from egress_offline.engine.ingest import Ingest, read_into
from egress_offline.engine.results import Counts, Diagnosis, HuntResult
from egress_offline.engine.series import group_series
from egress_offline.engine.spill import Spill
from egress_offline.readers import TS, Inputs, ProgressHook, open_inputs
from egress_offline.readers.remote import Store
from egress_offline.scratch import Scratch
from egress_offline.spec import HuntSpec

__all__ = ["run_hunt"]


def run_hunt(
    paths: Sequence[str],
    spec: HuntSpec | None = None,
    *,
    hash_inputs: bool = False,
    progress: ProgressHook | None = None,
    scratch_limit: int | None = None,
    series: bool = False,
    ingest: Ingest | None = None,
    store: Store | None = None,
) -> HuntResult:
    """Run the hunt over ``paths`` (files, directories, globs, ``-`` for stdin).

    Raises :class:`~egress_offline.errors.InputError` for an input that cannot be read,
    :class:`~egress_offline.errors.DataError` for a malformed record under ``strict``.
    ``hash_inputs`` adds each file's SHA-256 to its report (it reads every file again).
    ``progress`` is told how far reading has come, for a progress display.
    ``scratch_limit`` bounds the scratch space in bytes (see :mod:`egress_offline.scratch`;
    over it, :class:`~egress_offline.errors.ScratchError`).
    ``series`` adds the flagged groups' bytes over time (:attr:`HuntResult.series`, see
    :mod:`egress_offline.engine.series`), for charts.
    ``ingest`` reads the inputs into the spill (default :func:`read_into`; the Spark
    engine passes its own, see :mod:`egress_offline.spark`); ``store`` lets URIs
    (``s3a://``...) be named among ``paths`` (the Spark engine's; see
    :mod:`egress_offline.readers.remote`).
    """
    spec = spec or HuntSpec()
    started = time.perf_counter()
    started_ms = int(time.time() * 1000)
    counts = Counts()
    fixed_now = _fixed_now(spec)
    window_ms = spec.window_ms
    with (
        Scratch(scratch_limit) as scratch,
        open_inputs(paths, scratch, store=store) as inputs,
    ):
        spill = Spill(scratch)
        read = (ingest or read_into)(
            inputs, spec, spill, counts,
            window_ms=window_ms,
            floor_ms=None if window_ms is None or fixed_now is None else fixed_now - window_ms,
            count_stamps=window_ms is not None,
            hash_inputs=hash_inputs,
            progress=progress,
            scratch=scratch,
        )  # fmt: skip
        check_understood(read.files, counts)
        now_ms = read.last_ms if spec.now == "latest" else fixed_now
        cutoff_ms = None if window_ms is None or now_ms is None else now_ms - window_ms
        rows = aggregate_window(spill, spec, cutoff_ms, counts, read.files)
        result = HuntResult(
            rows=rows,
            spec=spec,
            counts=counts,
            files=read.files,
            skipped=inputs.skipped,
            now_ms=now_ms,
            cutoff_ms=cutoff_ms,
            first_ms=read.first_ms,
            last_ms=read.last_ms,
            started_ms=started_ms,
        )
        if series:
            result.series = group_series(rows, spill.public, long_texts=spill.long_texts)
        anchor = check_anchor(inputs, spec, counts, scratch, now_ms=now_ms, cutoff_ms=cutoff_ms)
        result.diagnoses = ([anchor] if anchor else []) + _diagnoses(result, inputs, spill, scratch)
    files = file_warnings(result.files)
    told = [anchor.message] if anchor else []
    result.alerts = told + [d.message for d in result.diagnoses if d.alert and d is not anchor]
    result.alerts += files
    result.warnings = told + files
    result.elapsed_seconds = time.perf_counter() - started
    return result


def _diagnoses(result: HuntResult, inputs: Inputs, spill: Spill,
               scratch: Scratch) -> list[Diagnosis]:  # fmt: skip
    """Why nothing was flagged (see :mod:`engine.diagnosis`)."""
    spec, counts = result.spec, result.counts
    window_ms, cutoff_ms = spec.window_ms, result.cutoff_ms
    mode = spec.now if isinstance(spec.now, str) else "fixed"
    return diagnose(
        spec,
        counts,
        spill,
        place="the input" if window_ms is None else "the window",
        time_step=lambda: window_step(
            valid=counts.valid,
            kept=counts.time_window,
            now=mode,
            cutoff_ms=cutoff_ms,
            first_ms=result.first_ms,
            last_ms=result.last_ms,
        ),
        census=lambda: take_census(
            inputs,
            spec,
            scratch,
            window_ms=window_ms,
            floor_ms=cutoff_ms,
            in_period=pl.lit(True) if cutoff_ms is None else pl.col(TS) > cutoff_ms,
        ),
        files=result.files,
    )


def _fixed_now(spec: HuntSpec) -> int | None:
    """The anchor in epoch ms when it is known before reading (``wall`` is the start of
    the run), else None (``latest``)."""
    if spec.now == "latest":
        return None
    if spec.now == "wall":
        return int(time.time() * 1000)
    assert isinstance(spec.now, datetime)
    return int(spec.now.timestamp() * 1000)
