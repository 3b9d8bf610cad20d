"""The hunt: its definition (:class:`HuntSpec`) compiled and run over the inputs.

Data flow::

    readers (a read session: field batches, timestamp batches) -> reduce (the event
        predicate) -> spill -> aggregate (window, CIDR, group and sum, threshold)
        -> HuntResult

Each batch is reduced at once to the narrow *candidate* rows (right OS, category and
action) and the timestamps of the other records. Both are spilled to Arrow files on disk,
so memory holds one batch and the groups, never the input. The window is applied exactly
after the pass, because its anchor (``--now latest``) is the newest timestamp of the whole
input; while reading, a time floor that never passes the final cutoff lets the readers
skip records that are certainly too old. Destination addresses are classified once per
distinct value.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from egress_offline.engine.accounting import check_understood, file_warnings
from egress_offline.engine.aggregate import aggregate_window
from egress_offline.engine.ingest import read_into
from egress_offline.engine.results import Counts, HuntResult
from egress_offline.engine.series import group_series
from egress_offline.engine.spill import Spill
from egress_offline.readers import ProgressHook, open_inputs
from egress_offline.scratch import Scratch
from egress_offline.spec import HuntSpec, RowFilters, iso_ms

__all__ = ["event_warnings", "run_hunt"]


def run_hunt(
    paths: Sequence[str],
    spec: HuntSpec | None = None,
    *,
    hash_inputs: bool = False,
    progress: ProgressHook | None = None,
    scratch_limit: int | None = None,
    series: bool = False,
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
    """
    spec = spec or HuntSpec()
    started = time.perf_counter()
    started_ms = int(time.time() * 1000)
    counts = Counts()
    fixed_now = _fixed_now(spec)
    window_ms = spec.window_ms
    with (
        Scratch(scratch_limit) as scratch,
        open_inputs(paths, scratch) as inputs,
    ):
        spill = Spill(scratch)
        read = read_into(
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
            result.series = group_series(rows, spill.public)
    result.alerts = file_warnings(result.files)
    result.warnings = _warnings(result)
    result.elapsed_seconds = time.perf_counter() - started
    return result


def _fixed_now(spec: HuntSpec) -> int | None:
    """The anchor in epoch ms when it is known before reading (``wall`` is the start of
    the run), else None (``latest``)."""
    if spec.now == "latest":
        return None
    if spec.now == "wall":
        return int(time.time() * 1000)
    assert isinstance(spec.now, datetime)
    return int(spec.now.timestamp() * 1000)


def _warnings(result: HuntResult) -> list[str]:
    counts = result.counts
    spec = result.spec
    notes: list[str] = []
    if counts.valid and result.last_ms is None:
        notes.append(
            "no record has a valid @timestamp, so no window can be placed; "
            "use --all-time to hunt without one"
        )
    elif (
        spec.window is not None
        and result.cutoff_ms is not None
        and result.last_ms is not None
        and result.last_ms <= result.cutoff_ms
    ):
        notes.append(
            f"the window (after {iso_ms(result.cutoff_ms)}) holds no events, but the data has "
            f"events from {iso_ms(result.first_ms)} to {iso_ms(result.last_ms)}; "
            "use --now latest to anchor the window on the newest event, or --all-time"
        )
    notes += event_warnings(spec, counts)
    notes += file_warnings(result.files)
    return notes


def event_warnings(spec: RowFilters, counts: Counts) -> list[str]:
    """Warnings when no event matches, or none that match carries bytes."""
    if counts.valid and counts.event_match == 0:
        return [
            f"the input holds no {spec.event_kinds} events of the chosen OS family, "
            "so this hunt finds nothing here: it reads Elastic Defend network events "
            "(logs-endpoint.events.network-*); Sysmon event 3 and Windows event 5156 are "
            "not such events and do not log bytes"
        ]
    if counts.event_match and counts.event_match_with_bytes == 0:
        return [
            "the input's network events carry no source.bytes at all, so this hunt "
            "cannot run on this data (Sysmon event 3 and Windows event 5156 do not log "
            "bytes; Elastic Defend network events do)"
        ]
    return []
