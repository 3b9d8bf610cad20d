"""ES|QL responses (``POST /_query``, and the async form): ``columns`` and ``values``.

Each row is a record; a column's name is the field's dotted name; ``null`` is missing; a
multi-valued cell is a JSON array. ``values`` holds rows, or, with ``columnar: true``,
one array per column: the response does not say which, so the orientation that agrees
with the columns' types is taken (rows when both do). An ES|QL response holds at most
10,000 rows (1,000 unless the query set ``LIMIT``), so it is read in Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from egress_offline.errors import InputError

__all__ = ["ROW_LIMITS", "esql_rows", "is_esql"]

#: ES|QL's default and largest row counts: a response holding exactly this many rows was
#: most likely cut there.
ROW_LIMITS: Final = (1_000, 10_000)
_NUMERIC: Final = frozenset({"long", "integer", "double", "unsigned_long", "counter_long",
                             "counter_integer", "counter_double"})  # fmt: skip


def is_esql(value: Any) -> bool:
    """Is ``value`` an ES|QL response (or a running async one, which holds no rows)?"""
    if not isinstance(value, dict):
        return False
    if isinstance(value.get("columns"), list) and isinstance(value.get("values"), list):
        return True
    return value.get("is_running") is True and "columns" not in value and "response" not in value


def esql_rows(value: dict[str, Any], name: str, notes: list[str] | None = None
              ) -> Iterator[dict[str, Any] | None]:  # fmt: skip
    """Each row of an ES|QL response as a record: ``{column name: cell}`` (None for a
    row that is not as wide as the columns: malformed). What the reader should know (a
    response cut at ES|QL's row limit) goes to ``notes``."""
    columns = value.get("columns")
    if not isinstance(columns, list):
        return  # a running async query: no rows yet
    names = []
    for column in columns:
        if not isinstance(column, dict) or not isinstance(column.get("name"), str):
            raise InputError(
                f"{name}: an ES|QL response whose columns are not {{name, type}} objects; "
                "export the query's response as it came",
                file=name,
            )
        names.append(column["name"])
    types = [str(column.get("type", "")) for column in columns]
    cells = value["values"]
    if _columnar(cells, types):
        rows: list[Any] = list(zip(*cells, strict=True)) if cells else []
    else:
        rows = cells
    if notes is not None and len(rows) in ROW_LIMITS:
        notes.append(
            f"an ES|QL response of exactly {len(rows):,} rows: ES|QL stops there unless the "
            "query sets a LIMIT, so the export may hold only part of the events; query "
            "again with a narrower time range or a LIMIT"
        )
    if notes is not None and value.get("is_partial") is True:
        notes.append("an ES|QL response marked partial: some of the rows may be missing")
    for row in rows:
        if not isinstance(row, (list, tuple)) or len(row) != len(names):
            yield None  # malformed: counted as such by the caller
            continue
        yield {key: cell for key, cell in zip(names, row, strict=True) if cell is not None}


def _columnar(cells: list[Any], types: list[str]) -> bool:
    """Are ``cells`` one array per column (``columnar: true``)? Decided by their shape,
    and where both shapes fit, by which agrees with the columns' types."""
    width = len(types)
    shaped = [isinstance(cell, list) for cell in cells]
    if len(cells) != width or not all(shaped):
        return False
    if len({len(cell) for cell in cells}) != 1:  # columns are all as long as each other
        return False
    if any(len(cell) != width for cell in cells):
        return True  # rows would each be as wide as the columns
    as_columns = sum(_agrees(item, types[j]) for j, cell in enumerate(cells) for item in cell)
    as_rows = sum(_agrees(item, types[j]) for row in cells for j, item in enumerate(row))
    return as_columns > as_rows


def _agrees(cell: Any, kind: str) -> bool:
    if cell is None:
        return True
    if isinstance(cell, list):
        return all(_agrees(item, kind) for item in cell)
    if kind in _NUMERIC:
        return isinstance(cell, (int, float)) and not isinstance(cell, bool)
    if kind == "boolean":
        return isinstance(cell, bool)
    return isinstance(cell, str)
