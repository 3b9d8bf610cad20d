"""What a Spark task runs: THIS package's read session and row predicate over its share of
the input files, so that the semantics live in one place (the readers, ``normalise``,
``engine.reduce``) whichever engine runs them.

The job is a range of file numbers, a partition per group of files; each task reads its
files with one :class:`~egress_offline.readers.ReadSession` (as the local engine reads all
of them), reduces every field batch to the candidate rows, and hands on Arrow record
batches of three columns: the file's number, what the payload is, and the payload:

- ``rows``: candidate rows (:func:`~egress_offline.engine.reduce.candidate_schema`), as
  Arrow IPC, the file numbered as among all the inputs;
- ``stamps``: the other records' timestamps, for the time step to count;
- ``report``: the file's :class:`~egress_offline.readers.FileReport` and its time range;
- ``error``: the :class:`~egress_offline.errors.EgressError` reading met (a malformed
  record under ``--strict``, an unreadable file), raised again by the driver.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import polars as pl
import pyarrow as pa

from egress_offline.engine.reduce import prefilter_for, reduce_batch
from egress_offline.engine.spill import Spill
from egress_offline.errors import EgressError
from egress_offline.readers import FILE, FieldBatch, InputFile, Inputs, ReadPlan, ReadSession
from egress_offline.scratch import Scratch
from egress_offline.spec import RowFilters

__all__ = ["OUTPUT_SCHEMA", "ReadJob", "frame_of", "read_partition"]

OUTPUT_SCHEMA: Final = "number int, kind string, payload binary"
_ARROW_SCHEMA: Final = pa.schema(
    [("number", pa.int32()), ("kind", pa.string()), ("payload", pa.binary())]
)
_STAMPS_HELD: Final = 1 << 20  # timestamps gathered before they are handed on


@dataclass(frozen=True)
class ReadJob:
    """Everything a task needs, shipped with the function: the inputs (paths the
    executors can read), the hunt's predicate and the reading's settings, as
    :func:`~egress_offline.engine.read_into` takes them. ``seed_ms`` is the newest
    timestamp the driver sampled at the files' ends (``--now latest``), so that every
    task starts with the floor one session over all the files would have."""

    files: tuple[InputFile, ...]
    spec: RowFilters
    window_ms: int | None
    floor_ms: int | None
    count_stamps: bool
    hash_inputs: bool
    seed_ms: int | None
    scratch_limit: int | None


class _Outbox(Spill):
    """A spill that hands its rows on to Spark instead of writing them to disk."""

    def __init__(self, scratch: Scratch, numbers: list[int]) -> None:
        super().__init__(scratch)
        self._numbers = pl.Series(numbers, dtype=pl.UInt32)
        self.ready: list[tuple[int, str, bytes]] = []
        self._waiting: list[pl.Series] = []
        self._count = 0

    def add(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        numbered = frame.with_columns(
            pl.col(FILE).replace_strict(
                list(range(self._numbers.len())), self._numbers, return_dtype=pl.UInt32
            )
        )
        self.ready.append((-1, "rows", _ipc(numbered)))

    def add_stamps(self, stamps: pl.Series) -> None:
        if stamps.len() == 0:
            return
        self._waiting.append(stamps)
        self._count += stamps.len()
        if self._count >= _STAMPS_HELD:
            self.flush_stamps()

    def flush_stamps(self) -> None:
        if self._waiting:
            self.ready.append((-1, "stamps", _ipc(pl.concat(self._waiting).to_frame())))
        self._waiting, self._count = [], 0

    def drain(self) -> Iterator[pa.RecordBatch]:
        if self.ready:
            numbers, kinds, payloads = zip(*self.ready, strict=True)
            self.ready = []
            yield pa.RecordBatch.from_arrays(
                [pa.array(numbers, pa.int32()), pa.array(kinds), pa.array(payloads, pa.binary())],
                schema=_ARROW_SCHEMA,
            )


def read_partition(job: ReadJob, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The function given to ``mapInArrow``: ``batches`` hold the file numbers (``id``) of
    this task's files; read them, hand on what :mod:`this module <.tasks>` says."""
    numbers = sorted(n for batch in batches for n in batch.column("id").to_pylist())
    if not numbers:
        return
    files = [job.files[n] for n in numbers]
    plan = ReadPlan(
        prefilter=prefilter_for(job.spec),
        window_ms=job.window_ms,
        floor_ms=job.floor_ms,
        strict=job.spec.strict,
        hash_inputs=job.hash_inputs,
        csv_timezone=job.spec.csv_timezone,
    )
    with Scratch(job.scratch_limit) as scratch:
        outbox = _Outbox(scratch, numbers)
        session = ReadSession(Inputs(files=files, skipped=[]), plan, scratch)
        session.floor.observe(job.seed_ms)
        try:
            with session:
                for item in session:
                    if isinstance(item, FieldBatch):
                        reduce_batch(item, job.spec, outbox, count_stamps=job.count_stamps)
                    else:
                        outbox.add_stamps(item.ms)
                    yield from outbox.drain()
        except EgressError as error:
            outbox.flush_stamps()
            yield from outbox.drain()
            at = next((n for n, f in zip(numbers, files, strict=True) if f.name == error.file), -1)
            outbox.ready.append((at, "error", pickle.dumps(error)))
            yield from outbox.drain()
            return
        outbox.flush_stamps()
        for number, report in zip(numbers, session.reports, strict=True):
            facts = (report, session.first_ms, session.last_ms)
            outbox.ready.append((number, "report", pickle.dumps(facts)))
        yield from outbox.drain()


def _ipc(frame: pl.DataFrame) -> bytes:
    sink = io.BytesIO()
    frame.write_ipc(sink, compression="lz4")
    return sink.getvalue()


def frame_of(payload: bytes) -> pl.DataFrame:
    """A ``rows`` or ``stamps`` payload as a frame."""
    return pl.read_ipc(io.BytesIO(payload))
