"""pivot: everything an export holds about given processes (``process.entity_id``).

Data flow::

    readers (the pivot's fields; only lines that may hold an id are decoded)
        -> the events of the ids and of their children (summaries) -> a second pass
        for the parents' start events -> per id (assemble): its start event, its
        parent's, its children, its network events summed per destination
        -> PivotResult (+ ES|QL and KQL, queries)

Memory holds the process events (start, end) of the ids, their parents and children, and
of every other event only summaries per process and per destination: never the network
events of a busy process. A value is kept as the export wrote it; a field with several
values keeps them all.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

from egress_offline import fields as f
from egress_offline.errors import InputError, UsageError
from egress_offline.pivot.assemble import parent_ids, pivot_one
from egress_offline.pivot.events import PARENT_ID, PIVOT_FIELDS, any_of, has
from egress_offline.pivot.result import PivotResult
from egress_offline.pivot.summaries import Found, Waiting, detached
from egress_offline.readers import (
    FILE,
    ID,
    INDEX,
    FieldBatch,
    FileReport,
    IdPrefilter,
    InputFile,
    Inputs,
    ProgressHook,
    ReadPlan,
    ReadSession,
    open_inputs,
)
from egress_offline.scratch import Scratch
from egress_offline.spec import parse_zone

__all__ = ["run_pivot"]


def run_pivot(
    ids: Sequence[str],
    paths: Sequence[str],
    *,
    strict: bool = False,
    csv_timezone: str = "UTC",
    progress: ProgressHook | None = None,
    scratch_limit: int | None = None,
    hash_inputs: bool = False,
) -> PivotResult:
    """Everything ``paths`` hold about the processes ``ids``: two passes over the input,
    the second only for the parents' start events. ``csv_timezone``: the zone of a Kibana
    CSV export's dates (see :func:`~egress_offline.spec.parse_zone`); ``hash_inputs``
    adds each file's SHA-256 to its report."""
    if not ids:
        raise UsageError("pivot: give at least one process.entity_id")
    zone = parse_zone(csv_timezone)
    wanted = list(dict.fromkeys(ids))
    started = time.perf_counter()
    started_ms = int(time.time() * 1000)
    with Scratch(scratch_limit) as scratch, open_inputs(paths, scratch) as inputs:
        own_or_child = any_of(f.ENTITY_ID, wanted) | any_of(PARENT_ID, wanted)
        first = _gather(inputs, wanted, own_or_child, strict=strict, zone=zone, progress=progress,
                        scratch=scratch, hash_inputs=hash_inputs)  # fmt: skip
        records = sum(r.records for r in first.reports)
        if records and records == sum(r.malformed for r in first.reports):
            raise InputError(
                f"every one of the {records:,} records read is malformed, so pivot read "
                "nothing; check the files' layout and encoding and export them again"
            )
        seen = first.found.seen()
        missing = [p for p in parent_ids(seen, wanted) if p not in wanted]
        processes = first.found.processes()
        if missing and first.with_processes:
            # a parent's start event holds neither id: read again for it, in the files
            # that may hold process events at all
            again = None if progress is None else _second_pass(progress, len(inputs.files))
            parents = _gather(
                Inputs(first.with_processes, []), missing,
                any_of(f.ENTITY_ID, missing) & has(f.CATEGORY, "process"),
                strict=strict, zone=zone, progress=again, scratch=scratch,
            )  # fmt: skip
            processes = pl.concat([processes, parents.found.processes()])
        network = first.found.network()
        result = PivotResult(
            entities=[pivot_one(entity, seen, processes, network) for entity in wanted],
            files=first.reports,
            skipped=inputs.skipped,
            records=sum(r.records for r in first.reports),
            malformed=sum(r.malformed for r in first.reports),
            started_ms=started_ms,
        )
    result.elapsed_seconds = time.perf_counter() - started
    return result


def _second_pass(progress: ProgressHook, files: int) -> ProgressHook:
    """Progress of the second pass, told as files of their own: ``[2/2] name (parents)``."""

    def tell(name: str, number: int, _files: int, fraction: float, size: int) -> None:
        progress(f"{name} (parents)", number + files, 2 * files, fraction, size)

    return tell


#: Lines that may hold a process event: ``"process"`` as a value (followed by ``,`` ``]``
#: or ``}``, where a key is followed by ``:``), or anything written with a ``\\u`` escape.
_PROCESS_HINT: Final = r'"process"\s*[,\]}]|\\u'


@dataclass
class _Pass:
    """What one pass over the files found."""

    found: Found
    reports: list[FileReport]
    #: the files that may hold process events: only those are read again for parents
    with_processes: list[InputFile]


class _Once:
    """The selected events, each document once: an event whose ``_index`` and ``_id`` an
    earlier one had is dropped (and counted in its file's report). Memory holds the keys
    of the selected events only."""

    def __init__(self) -> None:
        self._seen = pl.DataFrame(schema={INDEX: pl.String, ID: pl.String})

    def fresh(self, events: pl.DataFrame, reports: list[FileReport]) -> pl.DataFrame:
        keyed = pl.col(ID).is_not_null()
        if events.height == 0 or not events.select(keyed.any()).item():
            return events
        marked = events.with_row_index("__row")
        first = marked.filter(keyed).unique([INDEX, ID], keep="first", maintain_order=True)
        new = first.join(self._seen, on=[INDEX, ID], how="anti", nulls_equal=True)
        kept = marked.filter(~keyed | pl.col("__row").is_in(new.get_column("__row").implode()))
        for number, count in (
            marked.filter(~pl.col("__row").is_in(kept.get_column("__row").implode()))
            .group_by(FILE)
            .len()
            .rows()
        ):
            reports[number].duplicates += count
        self._seen = pl.concat([self._seen, new.select(INDEX, ID)])
        return kept.drop("__row")


def _gather(inputs: Inputs, ids: list[str], keep: pl.Expr, *, strict: bool, zone: str,
            progress: ProgressHook | None, scratch: Scratch,
            hash_inputs: bool = False) -> _Pass:  # fmt: skip
    """The events ``keep`` selects, from every file, summarised as they come; and which
    files may hold process events (a decoded one, or a line that may be one)."""
    plan = ReadPlan(
        fields=PIVOT_FIELDS,
        prefilter=IdPrefilter(tuple(ids), hint=_PROCESS_HINT),
        strict=strict,
        csv_timezone=zone,
        hash_inputs=hash_inputs,
    )
    found = Found(ids)
    waiting = Waiting(found)
    processes: set[int] = set()  # the numbers of the files with a process event decoded
    once = _Once()
    with ReadSession(inputs, plan, scratch, progress=progress) as session:
        for item in session:
            if not isinstance(item, FieldBatch):
                continue
            batch = item.frame
            holding = batch.filter(has(f.CATEGORY, "process")).get_column(FILE).unique()
            processes.update(holding.to_list())
            chosen = once.fresh(batch.filter(keep), session.reports)
            if chosen.height:
                # detached: what waits must not pin the whole batch's memory
                waiting.add(detached(chosen))
    waiting.flush()
    reports = session.reports
    with_processes = [
        file
        for number, (file, report) in enumerate(zip(inputs.files, reports, strict=True))
        if number in processes or report.hinted
    ]
    return _Pass(found, reports, with_processes)
