"""pivot: everything an export holds about given processes (see ``run``)."""

from __future__ import annotations

from egress_offline.pivot.arguments import looks_like_path, split_arguments
from egress_offline.pivot.events import PIVOT_FIELDS
from egress_offline.pivot.queries import esql_query, kql_filter
from egress_offline.pivot.result import EntityPivot, PivotResult
from egress_offline.pivot.run import run_pivot

__all__ = [
    "PIVOT_FIELDS",
    "EntityPivot",
    "PivotResult",
    "esql_query",
    "kql_filter",
    "looks_like_path",
    "run_pivot",
    "split_arguments",
]
