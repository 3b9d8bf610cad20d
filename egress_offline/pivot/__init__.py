"""pivot: everything an export holds about given processes (see ``run``)."""

from __future__ import annotations

from egress_offline.pivot.events import PIVOT_FIELDS
from egress_offline.pivot.queries import esql_query, kql_filter
from egress_offline.pivot.result import EntityPivot, PivotResult
from egress_offline.pivot.run import run_pivot, split_arguments

__all__ = [
    "PIVOT_FIELDS",
    "EntityPivot",
    "PivotResult",
    "esql_query",
    "kql_filter",
    "run_pivot",
    "split_arguments",
]
