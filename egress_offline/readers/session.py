"""The read session: one object owns a read of the inputs, from the first file to the
last, and hands its caller (the hunt, the sweep, pivot) one typed stream of finished
:class:`FieldBatch` and :class:`~egress_offline.readers.model.StampBatch` items.

It owns what reading shares across files: the time floor (and the sampling of the
files' ends for ``--now latest``), the decode queue, the scan of small files together,
the gathering of small field batches, the data's time range, and restarts. When the fast
NDJSON reader gives up part-way through a file, the session reads the file again with
the careful reader; what the fast reader produced for that file was held back until the
file's end (``held.FileOutput``), so nothing handed out is ever taken back; or, when the
caller can go back (a :class:`Checkpoint`), a large file's output is handed on as it is
read and taken back by the caller if the reader gives up. Errors from Polars, pyarrow
and the OS met while a file is read become an :class:`~egress_offline.errors.InputError`
naming the file (``boundary.translated``, around each file's read, here and only here).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol

import polars as pl

from egress_offline.fields import HUNT, TIMESTAMP, FieldSet
from egress_offline.normalise import timestamps
from egress_offline.readers import tuning
from egress_offline.readers.batching import DecodeQueue, FrameBatcher, SmallFileScanner
from egress_offline.readers.boundary import not_the_file, translated
from egress_offline.readers.bulk import read_bulk
from egress_offline.readers.careful import read_careful
from egress_offline.readers.csv import read_csv
from egress_offline.readers.held import FileOutput
from egress_offline.readers.jsondoc import read_json_document
from egress_offline.readers.model import (
    FILE,
    ID,
    INDEX,
    POS,
    TS,
    FileReport,
    InputFile,
    Inputs,
    StampBatch,
)
from egress_offline.readers.ndjson import FastReaderGaveUp, read_ndjson_fast
from egress_offline.readers.parquet import read_parquet
from egress_offline.readers.prefilter import AnyPrefilter
from egress_offline.readers.remote import staged
from egress_offline.readers.timefloor import TimeFloor
from egress_offline.readers.transcode import utf8_copy
from egress_offline.readers.values import read_values
from egress_offline.scratch import Scratch

#: The readers of NDJSON layouts other than documents (see :class:`~model.Layout`).
_LINE_READERS: Final = {"values": read_values, "bulk": read_bulk}

__all__ = [
    "SAMPLING",
    "Checkpoint",
    "FieldBatch",
    "ProgressHook",
    "ReadItem",
    "ReadPlan",
    "ReadSession",
]

#: Called as reading goes on: (file shown to the user, its number from 1, how many files,
#: fraction of that file read, its size in bytes). Before reading, ``--now latest`` samples
#: the ends of every file: that is told as file number 0, named :data:`SAMPLING`, with the
#: bytes it reads in all. Never called by the library to print.
ProgressHook = Callable[[str, int, int, float, int], None]
SAMPLING: Final = "sampling the ends of the files for --now latest"


@dataclass(frozen=True)
class FieldBatch:
    """Finished records: ``__file`` (the number of the record's file among the inputs),
    ``__pos`` (its line, record or row there), ``__ts`` (its @timestamp in epoch ms, as
    the engine reads it, or null), ``__index`` and ``__id`` (the document's, where the
    record carries them) and one ``List(String)`` column per field read. No record older
    than the time floor is in it."""

    frame: pl.DataFrame


#: What a read session hands on.
ReadItem = FieldBatch | StampBatch


class Checkpoint(Protocol):
    """A session's caller that can go back to where it stood: given one, the session
    hands on a large NDJSON file's output as it is read, instead of holding it to the
    file's end (a 4 GB sweep wrote its decoded events to the scratch directory and read
    them back: 1.8 s of its main thread, 2 s of a writer thread's, 79 MiB of scratch).
    If the fast reader gives up on the file, the session calls
    :meth:`rollback` with what :meth:`mark` returned before the file's first item, and
    then hands on the careful reader's output."""

    def mark(self) -> Any: ...

    def rollback(self, mark: Any) -> None: ...


@dataclass(frozen=True, kw_only=True)
class ReadPlan:
    """What to read and how. ``prefilter`` judges lines (and Parquet rows) by their text
    (None: every record is decoded, as ``--strict`` does). ``window_ms`` and
    ``floor_ms`` set the time floor: with a window, records at or below the floor are
    outside it and may be skipped unread; ``floor_ms`` is the fixed floor when it is
    known before reading, else it rises with the newest timestamp seen (``--now
    latest``). ``hash_inputs`` adds each file's SHA-256 to its report."""

    fields: FieldSet = HUNT
    prefilter: AnyPrefilter = None
    window_ms: int | None = None
    floor_ms: int | None = None
    strict: bool = False
    hash_inputs: bool = False
    #: the time zone of a Kibana CSV export's dates, which carry none (IANA or offset)
    csv_timezone: str = "UTC"


class ReadSession:
    """One read of ``inputs`` (see the module docstring). Use it as a context manager
    (it removes its scratch files) and iterate it once; afterwards :attr:`reports` holds
    what each file held and :attr:`first_ms`, :attr:`last_ms` the data's time range."""

    def __init__(self, inputs: Inputs, plan: ReadPlan, scratch: Scratch | None = None, *,
                 progress: ProgressHook | None = None,
                 checkpoint: Checkpoint | None = None) -> None:  # fmt: skip
        self.inputs = inputs
        self._checkpoint = checkpoint
        #: where a file's output and UTF-8 copies wait; one of its own when not given
        self.scratch = scratch or Scratch()
        self._own_scratch = scratch is None
        self.plan = plan
        self.reports: list[FileReport] = []
        self.floor = TimeFloor(window_ms=plan.window_ms, fixed_ms=plan.floor_ms)
        self._progress = progress
        self._first: int | None = None
        self._last: int | None = None
        self._queue = DecodeQueue(plan.fields)
        self._batcher = FrameBatcher(tuning.GATHER_BYTES, alone=tuning.SMALL_BATCH)
        self._copies: list[Path] = []  # UTF-8 copies being read
        #: small files scanned together; --strict scans each alone
        self._scanner = None if plan.strict else SmallFileScanner(inputs.files, self.floor.checks)

    @property
    def first_ms(self) -> int | None:
        """The oldest valid @timestamp read (epoch ms), or None."""
        return self._first

    @property
    def last_ms(self) -> int | None:
        """The newest valid @timestamp read (epoch ms), or None."""
        return self._last

    def __enter__(self) -> ReadSession:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        self.close()

    def close(self) -> None:
        """Remove the session's scratch files (and its scratch directory, if its own)."""
        for path in self._copies:
            self.scratch.release(path)
        self._copies.clear()
        if self._own_scratch:
            self.scratch.close()

    def __iter__(self) -> Iterator[ReadItem]:
        files = self.inputs.files
        sampling = None
        if self._progress is not None:
            sampling = partial(self._progress, SAMPLING, 0, len(files))
        self.floor.sample(files, tell=sampling)
        # the next compressed NDJSON file's text check (a whole pass over its text, on one
        # core) runs while a file is read: 4 GB in 8 gzip files, a fixed --now, 6.7 s to 5.2
        with self.floor.checks.ahead(files, depth=1):
            yield from self._read_files(files)

    def _read_files(self, files: Sequence[InputFile]) -> Iterator[ReadItem]:
        plan, queue, batcher = self.plan, self._queue, self._batcher
        for number, file in enumerate(files):
            report = FileReport.of(file)
            self.reports.append(report)
            tell: Callable[[float, int], None] | None = None
            if self._progress is not None:
                tell = partial(self._progress, file.name, number + 1, len(files))
            as_read = self._as_read(file)
            if as_read:  # what earlier files left waiting goes first: see _read_ndjson
                yield from self._waiting(flush=True)
            # a file named by URI: read through a local copy, made now and removed once read
            with translated(file), staged(file, self.scratch) as local:
                before = _state(local)
                for item in self._read_file(number, local, report, tell=tell, as_read=as_read):
                    yield from self._hand_on(item, batcher)
                changed = _changed(local, before, _state(local))
                if plan.hash_inputs and changed is None:
                    # a second read, of the bytes read, if the file stays as it was
                    digest = sha256_of(local.path, local.size)
                    changed = _changed(local, before, _state(local))
                    report.sha256 = digest if changed is None else None
                if plan.hash_inputs and changed is not None:  # a hash would not be of
                    # the bytes read
                    changed += "; its SHA-256 is not recorded (it would not be of what was read)"
            if changed is not None:
                report.notes.append(changed)
            if tell is not None:
                tell(1.0, file.size)
            # between files: the lines of small files wait to be decoded together;
            # --strict stops at the first malformed record, so it decodes each file's
            if plan.strict or queue.size >= tuning.DECODE_BYTES:
                yield from self._waiting(flush=False)
            self._cover(report.first_ms, report.last_ms)  # the records passed over
            if report.first_ms is not None:
                report.understood = True  # records passed over that hold an @timestamp
        yield from self._waiting(flush=True)

    def _waiting(self, *, flush: bool) -> Iterator[ReadItem]:
        """Every file's lines waiting in the decode queue, decoded and handed on; with
        ``flush``, the batches still gathering too."""
        for frame in self._queue.decode_all(strict=self.plan.strict):
            yield from self._hand_on(self._timed(frame), self._batcher)
        if flush:
            for frame in self._batcher.flush():
                yield self._finished(frame)

    def _as_read(self, file: InputFile) -> bool:
        """Is ``file``'s output handed on as it is read (see :class:`Checkpoint`)? Only a
        large NDJSON file's: the earlier files' output is handed on before it, which would
        cost small files their gathering."""
        return (
            self._checkpoint is not None
            and file.format == "ndjson"
            and file.layout == "documents"
            and file.text_estimate >= tuning.OUTPUT_AS_READ
        )

    def _read_file(self, number: int, file: InputFile, report: FileReport, *,
                   tell: Callable[[float, int], None] | None, as_read: bool = False
                   ) -> Iterator[pl.DataFrame | StampBatch]:  # fmt: skip
        """One file's output: timed field frames and timestamp batches, by the reader of
        its format and layout (through a UTF-8 copy when it is UTF-16 or ends its lines
        with ``\\r`` alone)."""
        plan = self.plan
        if file.needs_copy:
            copy = utf8_copy(file, self.scratch, report)
            self._copies.append(copy.path)
            try:
                yield from self._read_file(number, copy, report, tell=tell, as_read=as_read)
            finally:
                self.scratch.release(copy.path)
                self._copies.remove(copy.path)
            return
        if file.format == "ndjson" and file.layout == "documents":
            yield from self._read_ndjson(number, file, report, tell=tell, as_read=as_read)
            return
        items: Iterator[pl.DataFrame | StampBatch]
        if file.format == "parquet":
            items = read_parquet(file, report, prefilter=plan.prefilter, floor=self.floor,
                                 fields=plan.fields)  # fmt: skip
        elif file.format == "csv":
            items = read_csv(file, report, strict=plan.strict, fields=plan.fields,
                             zone=plan.csv_timezone)  # fmt: skip
        else:
            reader = {"json": read_json_document}.get(file.format) or _LINE_READERS[file.layout]
            items = iter(reader(file, report, strict=plan.strict, fields=plan.fields))
        for item in items:
            yield item if isinstance(item, StampBatch) else self._timed(_numbered(item, number))
            if tell is not None:
                tell(report.progress, file.size)

    def _read_ndjson(self, number: int, file: InputFile, report: FileReport, *,
                     tell: Callable[[float, int], None] | None, as_read: bool
                     ) -> Iterator[pl.DataFrame | StampBatch]:  # fmt: skip
        """An NDJSON file, by the fast reader; if it gives up, again by the careful one.
        The fast reader's output waits until the file's end (``held.FileOutput``), or,
        ``as_read``, is handed on at once, nothing of earlier files waiting with it, and
        taken back from the caller (:class:`Checkpoint`) if the reader gives up."""
        plan, floor, queue = self.plan, self.floor, self._queue
        start = (floor.latest_ms, self._first, self._last)
        output = None if as_read else FileOutput(self.scratch)
        # the caller has taken in everything handed on so far: this is where it stands
        mark = self._checkpoint.mark() if as_read and self._checkpoint is not None else None
        queue.begin_file()
        try:
            for item in read_ndjson_fast(file, report, number=number, strict=plan.strict,
                                         prefilter=plan.prefilter, floor=floor, queue=queue,
                                         scanner=self._scanner):  # fmt: skip
                timed = item if isinstance(item, StampBatch) else self._timed(item)
                if output is None:
                    yield timed
                else:
                    output.add(timed)
                if tell is not None:
                    tell(report.progress, file.size)
        except FastReaderGaveUp:
            # damage: the file is read again, whole, by the careful reader; nothing the
            # fast reader found of it counts, nor what it taught the floor and the range
            if output is not None:
                output.discard()
            elif self._checkpoint is not None:  # its frames still gathering, then the rest
                self._batcher.discard()
                with not_the_file():  # the caller's failure (its spill's writes)
                    self._checkpoint.rollback(mark)
            queue.drop_own()
            floor.latest_ms, self._first, self._last = start
            report.reset()
            report.reader = "careful"
            for frame in read_careful(file, report, strict=plan.strict, fields=plan.fields):
                yield self._timed(_numbered(frame, number))
                if tell is not None:
                    tell(report.progress, file.size)
            return
        if output is not None:
            yield from output.release()

    def _timed(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with ``__ts``; its times widen the data's range and raise the floor,
        and the files whose records hold a field are marked understood."""
        holding = pl.any_horizontal([pl.col(n).list.len() > 0 for n in self.plan.fields.names])
        for number in frame.select(pl.col(FILE).filter(holding).unique()).to_series().to_list():
            self.reports[number].understood = True
        if TS in frame.columns:  # read by the reader already, as the engine reads it
            ms = frame.get_column(TS)
        elif TIMESTAMP in frame.columns:
            ms = timestamps(frame)
        else:
            ms = pl.repeat(None, frame.height, dtype=pl.Int64, eager=True)
        low, high = ms.min(), ms.max()
        self._cover(low, high)  # type: ignore[arg-type]
        self.floor.observe(high)  # type: ignore[arg-type]
        return frame.drop(TS, strict=False).with_columns(ms.alias(TS))  # last, as for all

    def _cover(self, low: int | None, high: int | None) -> None:
        if low is not None and high is not None:
            self._first = low if self._first is None else min(self._first, low)
            self._last = high if self._last is None else max(self._last, high)

    def _hand_on(self, item: pl.DataFrame | StampBatch, batcher: FrameBatcher
                 ) -> Iterator[ReadItem]:  # fmt: skip
        if isinstance(item, StampBatch):
            yield item
            return
        for gathered in batcher.add(item):
            yield self._finished(gathered)

    def _finished(self, frame: pl.DataFrame) -> FieldBatch:
        """A field batch of ``frame``'s records that are not older than the floor."""
        low = self.floor.ms
        columns = [FILE, POS, TS, INDEX, ID, *self.plan.fields.names]
        if low is not None:
            return FieldBatch(frame.filter(pl.col(TS) > low).select(columns))
        return FieldBatch(frame.select(columns))


def _state(file: InputFile) -> tuple[int, int] | None:
    """A file's size and modification time, to tell whether it changed while read."""
    try:
        status = os.stat(file.path)
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns


def _changed(file: InputFile, before: tuple[int, int] | None,
             after: tuple[int, int] | None) -> str | None:  # fmt: skip
    """What to say of a file that changed between being found and being read, or while
    it was read (a copy still being written, a log rotated): what was read may be part of
    it only."""
    if before is None or after is None:
        return None
    sizes = [file.size, before[0], after[0]]
    if len(set(sizes)) == 1 and before[1] == after[1]:
        return None
    if sizes[0] != sizes[2]:
        how = (
            f"{'grew' if sizes[2] > sizes[0] else 'shrank'} from {sizes[0]:,} to {sizes[2]:,} bytes"
        )
    else:
        how = "was modified"
    return (
        f"the file {how} while it was read (a copy still being written?); what was read "
        "may not be all of it: read it again once it is complete"
    )


def _numbered(frame: pl.DataFrame, number: int) -> pl.DataFrame:
    """A reader's frame of one file's records, with the file's number."""
    if FILE in frame.columns:
        return frame
    return frame.with_columns(pl.lit(number, dtype=pl.UInt32).alias(FILE))


def sha256_of(path: Path, size: int | None = None) -> str:
    """The SHA-256 of a file's bytes (its first ``size``, if given), as hex."""
    digest = hashlib.sha256()
    left = size
    with path.open("rb") as handle:
        while block := handle.read(1 << 20 if left is None else min(1 << 20, left)):
            digest.update(block)
            if left is not None:
                left -= len(block)
    return digest.hexdigest()
