"""pivot: everything an export holds about given processes (``process.entity_id``).

Data flow::

    sources (the pivot's fields; only lines that may hold an id are decoded)
        -> the events of the ids and of their children -> a second pass for the
        parents' start events -> per id: its start event, its parent's, its children,
        its network events summed per destination -> PivotResult (+ ES|QL and KQL)

Memory holds the process events (start, end) of the ids, their parents and children, and
of every other event only summaries per process and per destination: never the network
events of a busy process. A value is kept as the export wrote it; a field with several
values keeps them all.
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
    POS,
    RESTART,
    FileReport,
    Gathered,
    IdPrefilter,
    InputFile,
    Scanned,
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
    "process.code_signature.exists",
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
        first = _gather(inputs.files, wanted, own_or_child, strict=strict, progress=progress)
        seen = first.found.seen()
        missing = [p for p in _parent_ids(seen, wanted) if p not in wanted]
        processes = first.found.processes()
        if missing and first.with_processes:
            # a parent's start event holds neither id: read again for it, in the files
            # that may hold process events at all
            again = None if progress is None else _second_pass(progress, len(inputs.files))
            parents = _gather(
                first.with_processes, missing,
                _any_of(f.ENTITY_ID, missing) & _has(f.CATEGORY, "process"),
                strict=strict, progress=again,
            )  # fmt: skip
            processes = pl.concat([processes, parents.found.processes()])
        network = first.found.network()
        result = PivotResult(
            entities=[_pivot_one(entity, seen, processes, network) for entity in wanted],
            files=first.reports,
            skipped=inputs.skipped,
            records=sum(r.records for r in first.reports),
            malformed=sum(r.malformed for r in first.reports),
        )
    result.elapsed_seconds = time.perf_counter() - started
    return result


def _second_pass(progress: ProgressHook, files: int) -> ProgressHook:
    """Progress of the second pass, told as files of their own: ``[2/2] name (parents)``."""

    def tell(name: str, number: int, _files: int, fraction: float, size: int) -> None:
        progress(f"{name} (parents)", number + files, 2 * files, fraction, size)

    return tell


def _any_of(name: str, values: list[str]) -> pl.Expr:
    return pl.col(name).list.eval(pl.element().is_in(values)).list.any().fill_null(False)


def _has(name: str, value: str) -> pl.Expr:
    return pl.col(name).list.contains(value).fill_null(False)


def _is_start() -> pl.Expr:
    return _has(f.CATEGORY, "process") & (_has(EVENT_TYPE, "start") | _has(f.ACTION, "start"))


def _detached(frame: pl.DataFrame) -> pl.DataFrame:
    """A copy of a few filtered rows that holds none of the batch's memory: a filtered
    string column still points into the whole batch's buffers (``shrink_to_fit`` does not
    release them for list columns read from Parquet), which held 1.4 GB at 4 GB."""
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression="uncompressed")
    buffer.seek(0)
    return pl.read_ipc(buffer)


_ENTITY: Final = "__entity"
_EVENTS: Final = "__events"
_COMPACT: Final = 64  # summaries gathered before they are merged into one
_WAITING: Final = 4 << 20  # bytes of selected events gathered before they are summarised


def _values(name: str) -> pl.Expr:
    """In a group: the distinct values of a text-list column, in order of appearance."""
    return pl.col(name).explode().drop_nulls().unique(maintain_order=True)


def _describing() -> list[pl.Expr]:
    """Aggregations that describe a process from its events (see :func:`_describe`)."""
    return [
        pl.col(_TS).min(),
        *[_values(name).alias(name) for name in PROCESS_FIELDS if name != f.TIMESTAMP],
    ]


def _merge_seen(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.group_by(_ENTITY, maintain_order=True).agg(pl.col(_EVENTS).sum(), *_describing())


_NETWORK_KEYS: Final = [_ENTITY, f.DEST_ADDRESS]
_SUMS: Final = ("__out", "__out_n", "__in", "__in_n", "events", "connections")
_SETS: Final = (f.DEST_IP, f.DEST_PORT, f.ACTION)


def _merge_network(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.group_by(_NETWORK_KEYS).agg(
        *[pl.col(name).sum() for name in _SUMS],
        *[pl.col(name).explode().drop_nulls().unique().sort() for name in _SETS],
        pl.col("first_seen").min(),
        pl.col("last_seen").max(),
    )


class _Found:
    """What reading keeps of the selected events: process events whole (there are few),
    and of all events only summaries per process (and per destination for the ids'
    network events), merged as they come. Memory holds processes and destinations, never
    the events of a busy process."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self._processes: list[pl.DataFrame] = []
        self._seen: list[pl.DataFrame] = []
        self._network: list[pl.DataFrame] = []
        self._marked = (0, 0, 0)

    def mark(self) -> tuple[int, int, int]:
        """Where a file begins. Summaries are merged only within a file, so that a
        rollback here cannot lose an earlier file's or keep the file's own: the earlier
        files' ones are merged here, once they are many."""
        if len(self._seen) >= _COMPACT:
            self._seen = [_merge_seen(pl.concat(self._seen))]
        if len(self._network) >= _COMPACT:
            self._network = [_merge_network(pl.concat(self._network))]
        self._marked = (len(self._processes), len(self._seen), len(self._network))
        return self._marked

    def rollback(self, mark: tuple[int, int, int]) -> None:
        """Forget what came after ``mark`` (the careful reader starts a file again)."""
        del self._processes[mark[0] :], self._seen[mark[1] :], self._network[mark[2] :]

    def add(self, batch: pl.DataFrame) -> None:
        """Summarise ``batch``: selected events, detached from the batches they were read
        in (see :func:`_gather`), so that what is kept pins none of them."""
        batch = batch.drop("__pos")
        events = batch.with_columns(timestamps(batch).alias(_TS))
        process = events.filter(_has(f.CATEGORY, "process"))
        if process.height:
            self._processes.append(process)
        by_entity = events.with_columns(keyword(f.ENTITY_ID).alias(_ENTITY)).explode(_ENTITY)
        self._seen.append(
            by_entity.drop_nulls(_ENTITY)
            .group_by(_ENTITY, maintain_order=True)
            .agg(pl.len().alias(_EVENTS), *_describing())
        )
        network = by_entity.filter(pl.col(_ENTITY).is_in(self.ids) & _has(f.CATEGORY, "network"))
        if network.height:
            self._network.append(_network_summary(network))
        _, own_seen, own_network = self._marked  # where the file's own summaries start
        if len(self._seen) - own_seen >= _COMPACT:
            self._seen[own_seen:] = [_merge_seen(pl.concat(self._seen[own_seen:]))]
        if len(self._network) - own_network >= _COMPACT:
            merged = _merge_network(pl.concat(self._network[own_network:]))
            self._network[own_network:] = [merged]

    def processes(self) -> pl.DataFrame:
        if not self._processes:
            schema = {name: f.TEXT_LIST for name in PIVOT_FIELDS.names}
            return pl.DataFrame(schema={**schema, _TS: pl.Int64})
        return pl.concat(self._processes)

    def seen(self) -> pl.DataFrame:
        """Per entity id found: its event count, and what its events say of it."""
        if not self._seen:
            schema: dict[str, Any] = {_ENTITY: pl.String, _EVENTS: pl.UInt32, _TS: pl.Int64}
            schema.update({name: f.TEXT_LIST for name in PROCESS_FIELDS if name != f.TIMESTAMP})
            return pl.DataFrame(schema=schema)
        return _merge_seen(pl.concat(self._seen))

    def network(self) -> pl.DataFrame:
        if not self._network:
            return pl.DataFrame(schema={_ENTITY: pl.String})
        return _merge_network(pl.concat(self._network))


#: Lines that may hold a process event: ``"process"`` as a value (followed by ``,`` ``]``
#: or ``}``, where a key is followed by ``:``), or anything written with a ``\\u`` escape.
_PROCESS_HINT: Final = r'"process"\s*[,\]}]|\\u'


@dataclass
class _Pass:
    """What one pass over the files found."""

    found: _Found
    reports: list[FileReport]
    #: the files that may hold process events: only those are read again for parents
    with_processes: list[InputFile]


def _gather(files: list[InputFile], ids: list[str], keep: pl.Expr, *, strict: bool,
            progress: ProgressHook | None) -> _Pass:  # fmt: skip
    """The events ``keep`` selects, from every file, summarised as they come; and which
    files may hold process events (a decoded one, or a line that may be one)."""
    prefilter = IdPrefilter(tuple(ids), hint=_PROCESS_HINT)
    found_pass = _Pass(_Found(ids), [], [])
    scanned = None if strict else Scanned(files)  # small files' lines, scanned together
    # selected events wait to be summarised together: each summary costs some twenty
    # queries whatever its size (about 19 ms), which every batch holding the process's
    # events paid (1,000 gzip files: 828 summaries, 15.5 s)
    waiting = Gathered(found_pass.found.add, _WAITING)
    for number, file in enumerate(files, start=1):
        report = FileReport(file.name, file.format, file.compression, file.size, unit="line")
        found_pass.reports.append(report)
        tell = None if progress is None else partial(progress, file.name, number, len(files))
        waiting.settle()  # the earlier files' events: before the mark, never after it
        mark = found_pass.found.mark()
        waiting.begin_file()
        processes = False
        for batch in read_batches(
            file, report, strict=strict, prefilter=prefilter, fields=PIVOT_FIELDS,
            scanned=scanned,
        ):  # fmt: skip
            if batch is RESTART:
                found_pass.found.rollback(mark)
                waiting.drop_file()
                continue
            if isinstance(batch, Stamps):
                continue
            processes = processes or bool(batch.select(_has(f.CATEGORY, "process").any()).item())
            chosen = batch.filter(keep)
            if chosen.height:
                # detached: what waits must not pin the whole batch's memory
                waiting.add(_detached(chosen.select(POS, *PIVOT_FIELDS.names)))
            if tell is not None:
                tell(report.progress, file.size)
        if processes or report.hinted:
            found_pass.with_processes.append(file)
    waiting.flush()
    return found_pass


def _parent_ids(seen: pl.DataFrame, ids: list[str]) -> list[str]:
    own = seen.filter(pl.col(_ENTITY).is_in(ids))
    if own.height == 0:
        return []
    return own.select(_values(PARENT_ID).sort()).to_series().to_list()


def _one(values: list[str] | None) -> Any:
    """A field's distinct values: None, the value, or a list of values."""
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _describe(summary: dict[str, Any]) -> dict[str, Any]:
    """The process fields of a summary (of one start event, or of all a process's events)."""
    return {
        name: iso_ms(summary[_TS]) if name == f.TIMESTAMP else _one(summary[name])
        for name in PROCESS_FIELDS
    }


def _start_of(entities: list[str], processes: pl.DataFrame) -> dict[str, Any] | None:
    """The earliest start event of any of ``entities``, described (with its
    ``process.entity_id``); None without one."""
    starts = processes.filter(_any_of(f.ENTITY_ID, entities) & _is_start())
    if starts.height == 0:
        return None
    first = starts.sort(_TS, nulls_last=True).head(1).with_columns(pl.lit(0).alias(_ENTITY))
    summary = first.group_by(_ENTITY).agg(*_describing(), _values(f.ENTITY_ID).alias("__id"))
    row = summary.row(0, named=True)
    return {**_describe(row), f.ENTITY_ID: _one(row["__id"])}


def _pivot_one(entity: str, seen: pl.DataFrame, processes: pl.DataFrame,
               network: pl.DataFrame) -> EntityPivot:  # fmt: skip
    own = seen.filter(pl.col(_ENTITY) == entity)
    pivot = EntityPivot(entity_id=entity, events=int(own[_EVENTS].sum()) if own.height else 0)
    start = _start_of([entity], processes)
    if start is not None:
        start.pop(f.ENTITY_ID)
        pivot.process, pivot.process_source = start, "start event"
    elif own.height:
        pivot.process, pivot.process_source = _describe(own.row(0, named=True)), "other events"
    parent_ids = pivot.process[PARENT_ID] if pivot.process else None
    if parent_ids is not None:
        parent = _start_of(parent_ids if isinstance(parent_ids, list) else [parent_ids], processes)
        if parent is not None:
            pivot.parent = {f.ENTITY_ID: parent.pop(f.ENTITY_ID), **parent}
    pivot.children = _children(entity, seen, processes)
    pivot.network = _network(network.filter(pl.col(_ENTITY) == entity))
    return pivot


def _children(entity: str, seen: pl.DataFrame, processes: pl.DataFrame) -> list[dict[str, Any]]:
    """One row per child process: its start event when the export has it, else what its
    other events say; in order of start."""
    children = seen.filter(pl.col(PARENT_ID).list.contains(entity) & (pl.col(_ENTITY) != entity))
    rows = []
    for child in children.iter_rows(named=True):
        start = _start_of([child[_ENTITY]], processes)
        described = start if start is not None else _describe(child)
        rows.append(
            {
                f.ENTITY_ID: child[_ENTITY],
                f.TIMESTAMP: described[f.TIMESTAMP],
                f.EXECUTABLE: described[f.EXECUTABLE],
                "process.pid": described["process.pid"],
                "process.command_line": described["process.command_line"],
                "events": child[_EVENTS],
                "source": "start event" if start is not None else "other events",
            }
        )
    rows.sort(key=lambda row: (row[f.TIMESTAMP] is None, row[f.TIMESTAMP] or ""))
    return rows


def _network_summary(net: pl.DataFrame) -> pl.DataFrame:
    """One batch of an id's network events (``_ENTITY`` set), summed per destination."""
    texts = [
        text
        for name in (f.SOURCE_BYTES, DEST_BYTES)
        for text in net.select(exponent_texts(name)).to_series().to_list()
    ]
    exponents = exponent_values(texts)
    out_sum, out_n = sum_longs(f.SOURCE_BYTES, exponents)
    in_sum, in_n = sum_longs(DEST_BYTES, exponents)
    address = keyword(f.DEST_ADDRESS)
    return (
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
        .group_by(_ENTITY, "__address")
        .agg(
            pl.col("__out").sum(),
            pl.col("__out_n").sum(),
            pl.col("__in").sum(),
            pl.col("__in_n").sum(),
            pl.len().alias("events"),
            _has(f.ACTION, "disconnect_received").sum().alias("connections"),
            *[_values(name).sort().alias(name) for name in _SETS],
            pl.col(_TS).min().alias("first_seen"),
            pl.col(_TS).max().alias("last_seen"),
        )
        .rename({"__address": f.DEST_ADDRESS})
    )


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
