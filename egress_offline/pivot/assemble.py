"""Per entity id, from what reading kept: its process (its start event, else what its
events say), its parent's start event, its children, and its network timeline."""

from __future__ import annotations

from typing import Any

import polars as pl

from egress_offline import fields as f
from egress_offline.normalise import long_or_null
from egress_offline.pivot.events import PARENT_ID, PROCESS_FIELDS, any_of, is_start
from egress_offline.pivot.result import EntityPivot
from egress_offline.pivot.summaries import ENTITY, EVENTS, describing, values_of
from egress_offline.readers import TS
from egress_offline.timetext import iso_ms

__all__ = ["describe", "parent_ids", "pivot_one"]


def parent_ids(seen: pl.DataFrame, ids: list[str]) -> list[str]:
    own = seen.filter(pl.col(ENTITY).is_in(ids))
    if own.height == 0:
        return []
    return own.select(values_of(PARENT_ID).sort()).to_series().to_list()


def _one(values: list[str] | None) -> Any:
    """A field's distinct values: None, the value, or a list of values."""
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def describe(summary: dict[str, Any]) -> dict[str, Any]:
    """The process fields of a summary (of one start event, or of all a process's events)."""
    return {
        name: iso_ms(summary[TS]) if name == f.TIMESTAMP else _one(summary[name])
        for name in PROCESS_FIELDS
    }


def _start_of(entities: list[str], processes: pl.DataFrame) -> dict[str, Any] | None:
    """The earliest start event of any of ``entities``, described (with its
    ``process.entity_id``); None without one."""
    starts = processes.filter(any_of(f.ENTITY_ID, entities) & is_start())
    if starts.height == 0:
        return None
    first = starts.sort(TS, nulls_last=True).head(1).with_columns(pl.lit(0).alias(ENTITY))
    summary = first.group_by(ENTITY).agg(*describing(), values_of(f.ENTITY_ID).alias("__id"))
    row = summary.row(0, named=True)
    return {**describe(row), f.ENTITY_ID: _one(row["__id"])}


def pivot_one(entity: str, seen: pl.DataFrame, processes: pl.DataFrame,
               network: pl.DataFrame) -> EntityPivot:  # fmt: skip
    own = seen.filter(pl.col(ENTITY) == entity)
    pivot = EntityPivot(entity_id=entity, events=int(own[EVENTS].sum()) if own.height else 0)
    if own.height:
        pivot.first_seen = iso_ms(own.select(pl.col(TS).min()).item())
    start = _start_of([entity], processes)
    if start is not None:
        start.pop(f.ENTITY_ID)
        pivot.process, pivot.process_source = start, "start event"
        pivot.started = start[f.TIMESTAMP]
    elif own.height:
        # what its events say; the time of the first is not when it started
        described = {**describe(own.row(0, named=True)), f.TIMESTAMP: None}
        pivot.process, pivot.process_source = described, "other events"
    parent_ids = pivot.process[PARENT_ID] if pivot.process else None
    if parent_ids is not None:
        parent = _start_of(parent_ids if isinstance(parent_ids, list) else [parent_ids], processes)
        if parent is not None:
            pivot.parent = {f.ENTITY_ID: parent.pop(f.ENTITY_ID), **parent}
    pivot.children = _children(entity, seen, processes)
    pivot.network = _network(network.filter(pl.col(ENTITY) == entity))
    return pivot


def _children(entity: str, seen: pl.DataFrame, processes: pl.DataFrame) -> list[dict[str, Any]]:
    """One row per child process: its start event when the export has it, else what its
    other events say (``@timestamp`` then None: the first of them is ``first_seen``,
    not its start); started ones first, in order of start, then the others by first
    seen."""
    children = seen.filter(pl.col(PARENT_ID).list.contains(entity) & (pl.col(ENTITY) != entity))
    rows = []
    for child in children.iter_rows(named=True):
        start = _start_of([child[ENTITY]], processes)
        described = start if start is not None else describe(child)
        rows.append(
            {
                f.ENTITY_ID: child[ENTITY],
                f.TIMESTAMP: None if start is None else start[f.TIMESTAMP],
                "first_seen": iso_ms(child[TS]),
                f.EXECUTABLE: described[f.EXECUTABLE],
                "process.pid": described["process.pid"],
                "process.command_line": described["process.command_line"],
                "events": child[EVENTS],
                "source": "start event" if start is not None else "other events",
            }
        )
    rows.sort(
        key=lambda row: (row[f.TIMESTAMP] is None, row[f.TIMESTAMP] or "", row["first_seen"] or "")
    )
    return rows


def _network(summary: pl.DataFrame) -> list[dict[str, Any]]:
    """The id's network events summed per destination.address, as a timeline.
    ``connections`` counts the finished ones (``disconnect_received``, which carries the
    bytes), as the hunt's column does; ``events`` counts every action."""
    if summary.height == 0:
        return []
    rows = summary.sort("first_seen", f.DEST_ADDRESS, nulls_last=True).select(
        f.DEST_ADDRESS,
        f.DEST_IP,
        long_or_null(pl.col("__out"), pl.col("__out_n")).alias("bytes_out"),
        long_or_null(pl.col("__in"), pl.col("__in_n")).alias("bytes_in"),
        pl.col("events").cast(pl.Int64),
        pl.col("connections").cast(pl.Int64),
        f.DEST_PORT,
        f.ACTION,
        "first_seen",
        "last_seen",
    )
    result = []
    for row in rows.to_dicts():
        row["first_seen"] = iso_ms(row["first_seen"])
        row["last_seen"] = iso_ms(row["last_seen"])
        result.append(row)
    return result
