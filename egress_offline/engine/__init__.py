"""The local engine: the hunt's definition compiled into Polars queries and run over the
inputs on this machine.

    ingest     one read session (``egress_offline.readers``) into the spill
    reduce     the row predicate, compiled from the spec; each batch to candidate rows
    spill      candidate rows and timestamps on disk
    aggregate  window or period, CIDR step, groups and sums, threshold, context
    results    Counts, HuntResult, the output columns
    series     the flagged groups' bytes over time, bounded, for charts
    diagnosis  why nothing was flagged, step by step, from the data (census: a second
               read that counts the event step's values; anchor: the check of
               --now latest)
    hunt       run_hunt

``egress_offline.sweep`` and ``egress_offline.pivot`` build on the same pieces.
"""

from __future__ import annotations

from egress_offline.engine.accounting import check_understood, file_warnings
from egress_offline.engine.aggregate import finish, public_events
from egress_offline.engine.hunt import run_hunt
from egress_offline.engine.ingest import Ingested, read_into
from egress_offline.engine.reduce import SUM, N, event_match, prefilter_for
from egress_offline.engine.results import (
    CONNECTIONS,
    FIRST_SEEN,
    LAST_SEEN,
    OUTPUT_COLUMNS,
    TOTAL,
    Counts,
    DataRange,
    Diagnosis,
    HuntResult,
)
from egress_offline.engine.series import GroupSeries, group_series
from egress_offline.engine.spill import Spill
from egress_offline.readers import TS, ProgressHook

__all__ = [
    "CONNECTIONS",
    "FIRST_SEEN",
    "LAST_SEEN",
    "OUTPUT_COLUMNS",
    "SUM",
    "TOTAL",
    "TS",
    "Counts",
    "DataRange",
    "Diagnosis",
    "GroupSeries",
    "HuntResult",
    "Ingested",
    "N",
    "ProgressHook",
    "Spill",
    "check_understood",
    "event_match",
    "file_warnings",
    "finish",
    "group_series",
    "prefilter_for",
    "public_events",
    "read_into",
    "run_hunt",
]
