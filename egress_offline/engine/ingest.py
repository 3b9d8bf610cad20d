"""Ingest: one read session over the inputs, its field batches reduced into the spill and
its timestamp batches counted there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from egress_offline.engine.reduce import prefilter_for, reduce_batch
from egress_offline.engine.results import Counts
from egress_offline.engine.spill import Spill
from egress_offline.readers import (
    FieldBatch,
    FileReport,
    Inputs,
    ProgressHook,
    ReadPlan,
    ReadSession,
)
from egress_offline.scratch import Scratch
from egress_offline.spec import RowFilters

__all__ = ["Ingest", "Ingested", "read_into"]


@dataclass(frozen=True)
class Ingested:
    """What reading found: each file's report, and the data's time range (epoch ms)."""

    files: list[FileReport]
    first_ms: int | None
    last_ms: int | None


#: What reads the inputs into the spill: :func:`read_into` here, or another engine's
#: (``egress_offline.spark``: each file read by a Spark task), called alike.
Ingest = Callable[..., Ingested]


def read_into(inputs: Inputs, spec: RowFilters, spill: Spill, counts: Counts, *,
           window_ms: int | None, floor_ms: int | None, count_stamps: bool,
           hash_inputs: bool, progress: ProgressHook | None,
           scratch: Scratch) -> Ingested:  # fmt: skip
    """Read every input into ``spill``, and count the records. ``window_ms`` and
    ``floor_ms`` set the time floor (see :class:`~egress_offline.readers.ReadPlan`);
    ``count_stamps`` keeps the timestamps of the records that do not match, for a time
    step to count."""
    plan = ReadPlan(
        prefilter=prefilter_for(spec),
        window_ms=window_ms,
        floor_ms=floor_ms,
        strict=spec.strict,
        hash_inputs=hash_inputs,
        csv_timezone=spec.csv_timezone,
    )
    # the spill can go back to where it stood: a large file's output comes as it is read
    with ReadSession(inputs, plan, scratch, progress=progress, checkpoint=spill) as session:
        for item in session:
            if isinstance(item, FieldBatch):
                reduce_batch(item, spec, spill, count_stamps=count_stamps)
            else:
                spill.add_stamps(item.ms)
    counts.records = sum(report.records for report in session.reports)
    counts.malformed = sum(report.malformed for report in session.reports)
    counts.valid = counts.records - counts.malformed
    return Ingested(session.reports, session.first_ms, session.last_ms)
