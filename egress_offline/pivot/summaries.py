"""What the pivot keeps of the events it selects while reading: process events whole,
and of all events only summaries per process and per destination, merged as they come."""

from __future__ import annotations

import io
from typing import Any, Final

import polars as pl

from egress_offline import fields as f
from egress_offline.normalise import (
    exponent_texts,
    exponent_values,
    keyword,
    sum_longs,
)
from egress_offline.pivot.events import DEST_BYTES, PIVOT_FIELDS, PROCESS_FIELDS, has, has_any
from egress_offline.readers import TS
from egress_offline.readers.batching import frame_bytes
from egress_offline.spec import DEFAULT_ACTIONS, DEFAULT_CATEGORIES

__all__ = [
    "COMPACT",
    "ENTITY",
    "EVENTS",
    "WAITING",
    "Found",
    "Waiting",
    "describing",
    "detached",
    "values_of",
]

ENTITY: Final = "__entity"
EVENTS: Final = "__events"
COMPACT: Final = 64  # summaries gathered before they are merged into one
WAITING: Final = 4 << 20  # bytes of selected events gathered before they are summarised


def detached(frame: pl.DataFrame) -> pl.DataFrame:
    """A copy of a few filtered rows that holds none of the batch's memory: a filtered
    string column still points into the whole batch's buffers (``shrink_to_fit`` does not
    release them for list columns read from Parquet), which held 1.4 GB at 4 GB."""
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression="uncompressed")
    buffer.seek(0)
    return pl.read_ipc(buffer)


def values_of(name: str) -> pl.Expr:
    """In a group: the distinct values of a text-list column, in order of appearance."""
    return pl.col(name).explode().drop_nulls().unique(maintain_order=True)


def describing() -> list[pl.Expr]:
    """Aggregations that describe a process from its events (see :func:`describe`)."""
    return [
        pl.col(TS).min(),
        *[values_of(name).alias(name) for name in PROCESS_FIELDS if name != f.TIMESTAMP],
    ]


def merge_seen(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.group_by(ENTITY, maintain_order=True).agg(pl.col(EVENTS).sum(), *describing())


_NETWORK_KEYS: Final = [ENTITY, f.DEST_ADDRESS]
_SUMS: Final = ("__out", "__out_n", "__in", "__in_n", "events", "connections")
_SETS: Final = (f.DEST_IP, f.DEST_PORT, f.ACTION)


def merge_network(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.group_by(_NETWORK_KEYS).agg(
        *[pl.col(name).sum() for name in _SUMS],
        *[pl.col(name).explode().drop_nulls().unique().sort() for name in _SETS],
        pl.col("first_seen").min(),
        pl.col("last_seen").max(),
    )


class Found:
    """What reading keeps of the selected events: process events whole (there are few;
    each distinct one once), and of all events only summaries per process (and per
    destination for the ids' network events), merged as they come. Memory holds
    processes and destinations, never the events of a busy process."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self._processes: list[pl.DataFrame] = []
        self._seen: list[pl.DataFrame] = []
        self._network: list[pl.DataFrame] = []

    def add(self, batch: pl.DataFrame) -> None:
        """Summarise ``batch``: selected events, detached from the batches they were read
        in (see :func:`_gather`), so that what is kept pins none of them."""
        events = batch.select(*PIVOT_FIELDS.names, TS)
        # the same process event again (a copy of the export, or a bomb of one event)
        # is kept once: what pivot reads of them is which they are, not how many
        process = events.filter(has(f.CATEGORY, "process")).unique(maintain_order=True)
        if process.height:
            self._processes.append(process)
        if len(self._processes) >= COMPACT:
            self._processes = [pl.concat(self._processes).unique(maintain_order=True)]
        by_entity = events.with_columns(keyword(f.ENTITY_ID).alias(ENTITY)).explode(ENTITY)
        self._seen.append(
            by_entity.drop_nulls(ENTITY)
            .group_by(ENTITY, maintain_order=True)
            .agg(pl.len().alias(EVENTS), *describing())
        )
        network = by_entity.filter(
            pl.col(ENTITY).is_in(self.ids) & has_any(f.CATEGORY, DEFAULT_CATEGORIES)
        )
        if network.height:
            self._network.append(network_summary(network))
        if len(self._seen) >= COMPACT:
            self._seen = [merge_seen(pl.concat(self._seen))]
        if len(self._network) >= COMPACT:
            self._network = [merge_network(pl.concat(self._network))]

    def processes(self) -> pl.DataFrame:
        if not self._processes:
            schema = {name: f.TEXT_LIST for name in PIVOT_FIELDS.names}
            return pl.DataFrame(schema={**schema, TS: pl.Int64})
        return pl.concat(self._processes)

    def seen(self) -> pl.DataFrame:
        """Per entity id found: its event count, and what its events say of it."""
        if not self._seen:
            schema: dict[str, Any] = {ENTITY: pl.String, EVENTS: pl.UInt32, TS: pl.Int64}
            schema.update({name: f.TEXT_LIST for name in PROCESS_FIELDS if name != f.TIMESTAMP})
            return pl.DataFrame(schema=schema)
        return merge_seen(pl.concat(self._seen))

    def network(self) -> pl.DataFrame:
        if not self._network:
            return pl.DataFrame(schema={ENTITY: pl.String})
        return merge_network(pl.concat(self._network))


class Waiting:
    """Selected events waiting to be summarised together, up to :data:`WAITING` bytes:
    each summary costs some twenty queries whatever its size (about 19 ms), which every
    batch holding the process's events paid (1,000 gzip files: 828 summaries, 15.5 s)."""

    def __init__(self, found: Found) -> None:
        self._found = found
        self._frames: list[pl.DataFrame] = []
        self._size = 0

    def add(self, frame: pl.DataFrame) -> None:
        self._frames.append(frame)
        self._size += frame_bytes(frame)
        if self._size >= WAITING:
            self.flush()

    def flush(self) -> None:
        if self._frames:
            self._found.add(pl.concat(self._frames, rechunk=True))
        self._frames, self._size = [], 0


def network_summary(net: pl.DataFrame) -> pl.DataFrame:
    """One batch of an id's network events (``ENTITY`` set), summed per destination."""
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
        .group_by(ENTITY, "__address")
        .agg(
            pl.col("__out").sum(),
            pl.col("__out_n").sum(),
            pl.col("__in").sum(),
            pl.col("__in_n").sum(),
            pl.len().alias("events"),
            has_any(f.ACTION, DEFAULT_ACTIONS).sum().alias("connections"),
            *[values_of(name).sort().alias(name) for name in _SETS],
            pl.col(TS).min().alias("first_seen"),
            pl.col(TS).max().alias("last_seen"),
        )
        .rename({"__address": f.DEST_ADDRESS})
    )
