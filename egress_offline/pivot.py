"""pivot: everything an export holds about given processes (``process.entity_id``).

Data flow::

    sources (the pivot's fields; only lines that may hold an id are decoded)
        -> the events of the ids and of their children -> a second pass for the
        parents' start events -> per id: its start event, its parent's, its children,
        its network events summed per destination -> PivotResult (+ ES|QL and KQL)

Memory holds the events of the requested processes and their children, never the export.
A value is kept as the export wrote it; a field with several values keeps them all.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import polars as pl

from egress_offline import fields as f
from egress_offline.engine import ProgressHook
from egress_offline.errors import UsageError
from egress_offline.normalise import (
    exponent_texts,
    exponent_values,
    keyword,
    long_or_null,
    sum_longs,
    timestamps,
)
from egress_offline.sources import (
    RESTART,
    FileReport,
    IdPrefilter,
    Inputs,
    Stamps,
    open_inputs,
    read_batches,
)
from egress_offline.spec import iso_ms

__all__ = ["PIVOT_FIELDS", "EntityPivot", "PivotResult", "esql_query", "kql_filter", "run_pivot"]

EVENT_TYPE: Final = "event.type"
PARENT_ID: Final = "process.parent.entity_id"
DEST_BYTES: Final = "destination.bytes"
#: What a process start event tells, in output order (ECS names).
PROCESS_FIELDS: Final = (
    f.TIMESTAMP,
    f.EXECUTABLE,
    "process.name",
    "process.pid",
    "process.command_line",
    PARENT_ID,
    "process.parent.executable",
    "process.hash.sha256",
    "process.hash.sha1",
    "process.hash.md5",
    "process.code_signature.subject_name",
    "process.code_signature.trusted",
    "process.code_signature.status",
    f.USER_NAME,
    "user.domain",
    f.HOST_NAME,
)
PIVOT_FIELDS: Final = f.FieldSet(
    (
        *PROCESS_FIELDS,
        f.CATEGORY,
        f.ACTION,
        EVENT_TYPE,
        f.ENTITY_ID,
        f.DEST_ADDRESS,
        f.DEST_IP,
        f.DEST_PORT,
        f.SOURCE_BYTES,
        DEST_BYTES,
    ),
    reader="pivot",
    export="Endpoint export",
)
_TS: Final = "__ts"
_KEEP_TEXT: Final = (f.TIMESTAMP,)  # fields not shown as keyword sets


@dataclass
class EntityPivot:
    """What the export holds about one ``process.entity_id``."""

    entity_id: str
    events: int = 0  # its own events (network, process, any other)
    process: dict[str, Any] | None = None  # its start event, else what its events say
    process_source: str | None = None  # "start event" or "other events"
    parent: dict[str, Any] | None = None  # the parent's start event
    children: list[dict[str, Any]] = field(default_factory=list)
    network: list[dict[str, Any]] = field(default_factory=list)  # per destination

    @property
    def found(self) -> bool:
        return self.events > 0 or bool(self.children)

    def as_dict(self) -> dict[str, Any]:
        return {
            "entity_id": self.entity_id,
            "found": self.found,
            "events": self.events,
            "process": self.process,
            "process_source": self.process_source,
            "parent": self.parent,
            "children": self.children,
            "network": self.network,
            "esql": esql_query([self.entity_id]),
            "kql": kql_filter([self.entity_id]),
        }


@dataclass
class PivotResult:
    entities: list[EntityPivot]
    files: list[FileReport]
    skipped: list[str]
    records: int = 0
    malformed: int = 0
    elapsed_seconds: float = 0.0

    @property
    def unknown(self) -> list[str]:
        return [e.entity_id for e in self.entities if not e.found]

    def as_dict(self) -> dict[str, Any]:
        ids = [e.entity_id for e in self.entities]
        return {
            "entities": [e.as_dict() for e in self.entities],
            "unknown": self.unknown,
            "esql": esql_query(ids),
            "kql": kql_filter(ids),
        }


def split_arguments(arguments: Sequence[str], exists: Callable[[str], bool]) -> tuple[
    list[str], list[str]
]:  # fmt: skip
    """``pivot ENTITY_ID... PATH...``: an argument naming an existing file, directory or
    glob match (or ``-``) is a path; any other is an entity id. Ids keep their order,
    repeats once."""
    ids: list[str] = []
    paths: list[str] = []
    for argument in arguments:
        if argument == "-" or exists(argument):
            paths.append(argument)
        elif argument not in ids:
            ids.append(argument)
    if not ids:
        raise UsageError(
            "pivot: no entity id given (every argument names a file); "
            "give process.entity_id values before the export paths"
        )
    if not paths:
        raise UsageError(
            "pivot: no export given (no argument names an existing file, directory or glob "
            f"match; read as entity ids: {', '.join(ids[:3])}); check the paths"
        )
    return ids, paths


def run_pivot(
    ids: Sequence[str],
    paths: Sequence[str],
    *,
    strict: bool = False,
    progress: ProgressHook | None = None,
) -> PivotResult:
    """Everything ``paths`` hold about the processes ``ids``: two passes over the input,
    the second only for the parents' start events."""
    if not ids:
        raise UsageError("pivot: give at least one process.entity_id")
    wanted = list(dict.fromkeys(ids))
    started = time.perf_counter()
    with open_inputs(paths) as inputs:
        own_or_child = _any_of(f.ENTITY_ID, wanted) | _any_of(PARENT_ID, wanted)
        events, reports = _collect(inputs, wanted, own_or_child, strict=strict, progress=progress)
        parents = _parent_ids(events, wanted)
        parent_events = pl.DataFrame()
        missing = [p for p in parents if p not in wanted]
        if missing:  # a parent's start event holds neither id: read again for it
            parent_events, _ = _collect(
                inputs, missing, _any_of(f.ENTITY_ID, missing), strict=strict, progress=None
            )
        everything = pl.concat([events, parent_events]) if parent_events.height else events
        result = PivotResult(
            entities=[_pivot_one(entity, events, everything) for entity in wanted],
            files=reports,
            skipped=inputs.skipped,
            records=sum(r.records for r in reports),
            malformed=sum(r.malformed for r in reports),
        )
    result.elapsed_seconds = time.perf_counter() - started
    return result


def _any_of(name: str, values: list[str]) -> pl.Expr:
    return pl.col(name).list.eval(pl.element().is_in(values)).list.any().fill_null(False)


def _collect(inputs: Inputs, ids: list[str], keep: pl.Expr, *, strict: bool,
             progress: ProgressHook | None) -> tuple[pl.DataFrame, list[FileReport]]:  # fmt: skip
    """The decoded events ``keep`` selects, from every file, with their timestamps."""
    prefilter = IdPrefilter(tuple(ids))
    parts: list[pl.DataFrame] = []
    reports: list[FileReport] = []
    for number, file in enumerate(inputs.files, start=1):
        report = FileReport(file.name, file.format, file.compression, file.size, unit="line")
        reports.append(report)
        tell = None if progress is None else partial(progress, file.name, number, len(inputs.files))
        mark = len(parts)
        for batch in read_batches(
            file, report, strict=strict, prefilter=prefilter, fields=PIVOT_FIELDS
        ):
            if batch is RESTART:  # the careful reader starts the file again
                del parts[mark:]
                continue
            if isinstance(batch, Stamps):
                continue
            chosen = batch.filter(keep)
            if chosen.height:
                parts.append(_detached(chosen.drop("__pos")))
            if tell is not None:
                tell(report.progress, file.size)
    if not parts:
        schema = {name: f.TEXT_LIST for name in PIVOT_FIELDS.names}
        return pl.DataFrame(schema={**schema, _TS: pl.Int64}), reports
    events = pl.concat(parts).rechunk()
    return events.with_columns(timestamps(events).alias(_TS)), reports


def _detached(frame: pl.DataFrame) -> pl.DataFrame:
    """A copy of a few filtered rows that holds none of the batch's memory: a filtered
    string column still points into the whole batch's buffers (``shrink_to_fit`` does not
    release them for list columns read from Parquet), which held 1.4 GB at 4 GB."""
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression="uncompressed")
    buffer.seek(0)
    return pl.read_ipc(buffer)


def _parent_ids(events: pl.DataFrame, ids: list[str]) -> list[str]:
    own = events.filter(_any_of(f.ENTITY_ID, ids))
    values = own.select(pl.col(PARENT_ID).explode().drop_nulls().unique().sort()).to_series()
    return values.to_list()


def _has(name: str, value: str) -> pl.Expr:
    return pl.col(name).list.contains(value).fill_null(False)


def _is_start() -> pl.Expr:
    return _has(f.CATEGORY, "process") & (_has(EVENT_TYPE, "start") | _has(f.ACTION, "start"))


def _pivot_one(entity: str, events: pl.DataFrame, everything: pl.DataFrame) -> EntityPivot:
    own = events.filter(_any_of(f.ENTITY_ID, [entity]))
    pivot = EntityPivot(entity_id=entity, events=own.height)
    starts = own.filter(_is_start()).sort(_TS, nulls_last=True)
    if starts.height:
        pivot.process, pivot.process_source = _describe(starts.head(1)), "start event"
    elif own.height:
        pivot.process, pivot.process_source = _describe(own), "other events"
    parent_ids = own.select(pl.col(PARENT_ID).explode().drop_nulls().unique()).to_series()
    if starts.height:  # the start event names the parent
        parent_ids = starts.head(1).select(pl.col(PARENT_ID).explode().drop_nulls()).to_series()
    parent_starts = (
        everything.filter(_any_of(f.ENTITY_ID, parent_ids.to_list()) & _is_start())
        .sort(_TS, nulls_last=True)
        .head(1)
    )
    if parent_starts.height:
        pivot.parent = {f.ENTITY_ID: _one(parent_starts, f.ENTITY_ID), **_describe(parent_starts)}
    pivot.children = _children(events, entity)
    pivot.network = _network(own.filter(_has(f.CATEGORY, "network")))
    return pivot


def _one(frame: pl.DataFrame, name: str) -> Any:
    """A field's distinct values over ``frame``: None, the value, or a list of values."""
    values = frame.select(keyword(name).explode().drop_nulls().unique(maintain_order=True))
    found = values.to_series().to_list()
    return None if not found else found[0] if len(found) == 1 else found


def _describe(frame: pl.DataFrame) -> dict[str, Any]:
    """The process fields of ``frame`` (one start event, or all of a process's events)."""
    out: dict[str, Any] = {}
    for name in PROCESS_FIELDS:
        if name == f.TIMESTAMP:
            out[name] = iso_ms(frame.get_column(_TS).min())  # type: ignore[arg-type]
        else:
            out[name] = _one(frame, name)
    return out


def _children(events: pl.DataFrame, entity: str) -> list[dict[str, Any]]:
    """One row per child process: its start event when the export has it, else what its
    other events say; in order of first appearance."""
    children = events.filter(
        _any_of(PARENT_ID, [entity]) & ~_any_of(f.ENTITY_ID, [entity])
    ).with_columns(keyword(f.ENTITY_ID).alias("__child"))
    if children.height == 0:
        return []
    rows = []
    for (child,), part in children.explode("__child").group_by("__child", maintain_order=True):
        if child is None:
            continue
        starts = part.filter(_is_start()).sort(_TS, nulls_last=True)
        chosen = starts.head(1) if starts.height else part
        described = _describe(chosen)
        rows.append(
            {
                f.ENTITY_ID: child,
                f.TIMESTAMP: described[f.TIMESTAMP],
                f.EXECUTABLE: described[f.EXECUTABLE],
                "process.pid": described["process.pid"],
                "process.command_line": described["process.command_line"],
                "events": part.height,
                "source": "start event" if starts.height else "other events",
            }
        )
    rows.sort(key=lambda row: (row[f.TIMESTAMP] is None, row[f.TIMESTAMP] or ""))
    return rows


def _network(net: pl.DataFrame) -> list[dict[str, Any]]:
    """The process's network events summed per destination.address, as a timeline.
    ``connections`` counts the finished ones (``disconnect_received``, which carries the
    bytes), as the hunt's column does; ``events`` counts every action."""
    if net.height == 0:
        return []
    texts = [
        text
        for name in (f.SOURCE_BYTES, DEST_BYTES)
        for text in net.select(exponent_texts(name)).to_series().to_list()
    ]
    exponents = exponent_values(texts)
    out_sum, out_n = sum_longs(f.SOURCE_BYTES, exponents)
    in_sum, in_n = sum_longs(DEST_BYTES, exponents)
    address = keyword(f.DEST_ADDRESS)
    rows = (
        net.with_columns(
            pl.when(address.list.len() == 0)
            .then(pl.lit([None], dtype=f.TEXT_LIST))
            .otherwise(address)
            .alias("__address"),
            out_sum.alias("__out"),
            out_n.alias("__out_n"),
            in_sum.alias("__in"),
            in_n.alias("__in_n"),
        )
        .explode("__address")
        .group_by("__address")
        .agg(
            pl.col(f.DEST_IP).explode().drop_nulls().unique().sort().alias(f.DEST_IP),
            long_or_null(pl.col("__out").sum(), pl.col("__out_n").sum()).alias("bytes_out"),
            long_or_null(pl.col("__in").sum(), pl.col("__in_n").sum()).alias("bytes_in"),
            pl.len().alias("events"),
            _has(f.ACTION, "disconnect_received").sum().alias("connections"),
            pl.col(f.DEST_PORT).explode().drop_nulls().unique().sort().alias(f.DEST_PORT),
            pl.col(f.ACTION).explode().drop_nulls().unique().sort().alias(f.ACTION),
            pl.col(_TS).min().alias("first_seen"),
            pl.col(_TS).max().alias("last_seen"),
        )
        .sort("first_seen", "__address", nulls_last=True)
        .rename({"__address": f.DEST_ADDRESS})
    )
    result = []
    for row in rows.to_dicts():
        row["first_seen"] = iso_ms(row["first_seen"])
        row["last_seen"] = iso_ms(row["last_seen"])
        result.append(row)
    return result


# -------------------------------------------------------------- queries for the cluster

_KEEP: Final = (
    "@timestamp, event.category, event.action, process.entity_id, process.parent.entity_id, "
    "process.executable, process.command_line, destination.address, destination.ip, "
    "destination.port, source.bytes, destination.bytes"
)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def esql_query(ids: Sequence[str]) -> str:
    """An ES|QL query for the ids' events and their children's, in time order."""
    listed = ", ".join(_quoted(i) for i in ids)
    return (
        "FROM logs-endpoint.events.*\n"
        f"| WHERE process.entity_id IN ({listed}) OR process.parent.entity_id IN ({listed})\n"
        "| SORT @timestamp\n"
        f"| KEEP {_KEEP}\n"
        "| LIMIT 10000"
    )


def kql_filter(ids: Sequence[str]) -> str:
    """A KQL filter (Discover, Timeline) for the same events."""
    listed = " or ".join(_quoted(i) for i in ids)
    return f"process.entity_id : ({listed}) or process.parent.entity_id : ({listed})"
