"""The fast NDJSON reader: one streaming line scan per file (or per group of small
files), each batch of marked lines accounted for vectorised, and the lines that may match
queued to be decoded (:class:`~egress_offline.readers.batching.DecodeQueue`).

A line that cannot match is never decoded. It is still accounted for: counted as a
record, counted as malformed when it is not shaped like a JSON object, and its
@timestamp read by a pattern, for the data's time range, the ``latest`` anchor and the
count of records in the window. Any damage the scan meets makes the reader give up
(:class:`FastReaderGaveUp`); the read session then reads the file with the careful
reader instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl

from egress_offline.normalise import timestamp_text_ms, timestamps
from egress_offline.readers import tuning
from egress_offline.readers.ahead import PulledAhead
from egress_offline.readers.batching import DecodeQueue, ScanSummary, SmallFileScanner
from egress_offline.readers.decode import decode_lines
from egress_offline.readers.linescan import (
    BYTES,
    HINT,
    MAY,
    SHAPE_END,
    SHAPE_START,
    SHAPED,
    STAMP,
    TS_ANY,
    batch_rows,
    filled,
    irregular,
    line_scan,
    older_than,
    polars_reads,
    timestamp_keys,
    to_decode,
    to_decode_exprs,
)
from egress_offline.readers.model import POS, FileReport, InputFile, StampBatch
from egress_offline.readers.prefilter import AnyPrefilter, Prefilter
from egress_offline.readers.textcheck import TextChecks, needs_check
from egress_offline.readers.timefloor import TIMESTAMP_ONLY, TimeFloor

__all__ = ["FastReaderGaveUp", "read_ndjson_fast"]

#: What the fast reader yields: decoded field frames (``__file``, ``__pos``, the
#: fields) and the timestamps of records not decoded that may be in the window.
Output = pl.DataFrame | StampBatch
#: The column of a batch's accounting that holds the timestamps to count, as one list
_COUNTED = "__counted"


class FastReaderGaveUp(Exception):
    """The fast reader met damage (invalid UTF-8, a damaged compressed stream, an error
    or a panic in the scan, a scan that ended early); its cause says which. Whatever it
    produced for the file is void."""


class _Reading:
    """One file's fast read: where its lines are counted and queued."""

    def __init__(self, file: InputFile, report: FileReport, number: int, *, strict: bool,
                 prefilter: AnyPrefilter, floor: TimeFloor, queue: DecodeQueue) -> None:  # fmt: skip
        self.file, self.report, self.number = file, report, number
        self.strict, self.prefilter, self.floor, self.queue = strict, prefilter, floor, queue
        self.checks: TextChecks = floor.checks


def read_ndjson_fast(file: InputFile, report: FileReport, *, number: int, strict: bool,
                     prefilter: AnyPrefilter, floor: TimeFloor, queue: DecodeQueue,
                     scanner: SmallFileScanner | None) -> Iterator[Output]:  # fmt: skip
    """The field frames and timestamp batches of ``file`` (number ``number`` of the
    inputs), malformed records noted in ``report``. The file's last lines to decode are
    left in ``queue``, to be decoded with the next files' ones. Raises
    :class:`FastReaderGaveUp` on damage."""
    reading = _Reading(file, report, number, strict=strict, prefilter=prefilter, floor=floor,
                       queue=queue)  # fmt: skip
    try:
        yield from _read(reading, scanner)
    # a panic of Polars too (not an Exception): the careful reader takes other paths
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError, ValueError) as exc:
        raise FastReaderGaveUp(f"{file.name}: {exc}") from exc


def _read(reading: _Reading, scanner: SmallFileScanner | None) -> Iterator[Output]:
    file, prefilter, floor = reading.file, reading.prefilter, reading.floor
    whole = file.size  # the bytes of its text: exact, once checked when compressed
    if needs_check(file):
        check = reading.checks.of(file)
        if not check.fast:
            raise FastReaderGaveUp(f"{file.name}: {check.why_not}")
        whole = check.text_size
    expected = max(1, whole)
    # --now latest: a first bound on the anchor lets old lines be skipped from the start:
    # from the file's ends, sampled here or before any file was read (TimeFloor.sample)
    if isinstance(prefilter, Prefilter) and floor.rising:
        floor.sample([file])
    floor_ms = floor.ms if prefilter is not None else None
    ahead = scanner.take(file, prefilter, floor_ms) if scanner is not None else None
    if ahead is not None:
        # scanned with other small files, and summarised already
        for batch, summary in ahead:
            yield from _account_batch(batch, reading, summary)
        return
    seen = lines = 0
    text_bytes = tuning.STRICT_BATCH_TEXT if prefilter is None else tuning.BATCH_TEXT
    rows = batch_rows(file, text_bytes)
    with polars_reads(file):  # the scan reads Polars' settings when it starts
        scan = line_scan(file, prefilter, floor_ms)
        with PulledAhead(scan, tuning.SCAN_AHEAD_BYTES) as pieces:
            for batch, size in _batches(pieces, text_bytes, rows):
                seen += size
                lines += batch.height
                yield from _account_batch(batch, reading)
                reading.report.progress = min(0.99, seen / expected)
    _check_whole(file, whole, seen, lines)


def _check_whole(file: InputFile, whole: int, seen: int, lines: int) -> None:
    """Did the scan's lines cover the file's text? Each line counts its bytes and one line
    end, so they make the text's bytes, less one for each ``\\r`` before a line end (the
    scan drops it) and plus one where the last line has no end. Fewer than that means the
    scan ended early, and the rest of the file would be missing from the counts and rows:
    the careful reader reads it instead. (A panic of Polars' engine is raised by the scan
    itself, ``ahead.py``; this holds whatever else might end a scan quietly, as
    ``collect_batches`` did on a panic in Polars 2.1.)"""
    if seen + lines < whole:
        raise FastReaderGaveUp(
            f"{file.name}: the line scan ended early: its lines hold {seen:,} bytes of "
            f"the text's {whole:,}"
        )


def _batches(pieces: Iterator[pl.DataFrame], text_bytes: int,
             most: int) -> Iterator[tuple[pl.DataFrame, int]]:  # fmt: skip
    """The scan's marked lines in batches of at most ``text_bytes`` of text (or one of its
    pieces) and ``most`` lines, each with its text's bytes. A piece is what the scan
    made of one of Polars' reads of the file (a few MiB of lines, or one longer line), so
    a batch holds what its text holds, whatever the lines: batches of so many lines,
    counted from the mean length of the file's first lines, held 16,384 lines of 1 MiB
    (an 800 line zstd file of 37 KB took over 3 GB). Each batch is one chunk: every
    later step is much faster on one."""
    held: list[pl.DataFrame] = []
    size = rows = 0
    for piece in pieces:
        for start in range(0, piece.height, most):
            part = piece.slice(start, most)
            part_size = int(part.get_column(BYTES).sum())
            if held and (size + part_size > text_bytes or rows + part.height > most):
                yield _joined(held), size
                held, size, rows = [], 0, 0
            held.append(part)
            size += part_size
            rows += part.height
    if held:
        yield _joined(held), size


def _joined(frames: list[pl.DataFrame]) -> pl.DataFrame:
    if len(frames) == 1 and frames[0].n_chunks() == 1:
        return frames[0]
    return pl.concat(frames, rechunk=True)


def _account_batch(batch: pl.DataFrame, reading: _Reading,
                   summary: ScanSummary | None = None) -> Iterator[Output]:  # fmt: skip
    """Account for one batch of marked lines: yield the @timestamps of the records not
    decoded that may be in the window, and queue the lines that may match (yielding what
    the queue decodes once the file's own lines fill it). A batch whose lines are all
    plain (shaped like an object, with a canonical timestamp or none) is accounted for in
    three queries: each query waits for threads that the scan keeps busy, so fewer
    queries cost less (1 GB: 0.49 s in some ten before); or in none, summarised already
    with other small files' (see :class:`SmallFileScanner`)."""
    report, floor, queue = reading.report, reading.floor, reading.queue
    text = pl.col("line")
    if HINT in batch.columns and not report.hinted:
        report.hinted = bool(batch.get_column(HINT).any())
    if summary is not None and not summary.odd:
        report.records += batch.height
        report.cover_range(summary.low, summary.high)
        full = bool(summary.wanted.height) and queue.add(
            report, reading.number, summary.wanted, summary.wanted_bytes
        )
        if summary.low is not None:
            floor.observe(report.last_ms)
            if floor.window_ms is not None and summary.stamps.len():
                yield StampBatch(summary.stamps)
        if full:
            yield from queue.decode_own(strict=reading.strict)
        return
    # the floor may have risen since the scan began (--now latest): look again
    decode = pl.col(MAY)
    if reading.prefilter is not None:
        decode &= ~older_than(floor.ms)
    skip = ~decode
    stamp = pl.col(STAMP)
    # the timestamps to count come from the same query, at the floor known now
    floor_ms = floor.ms
    counted = floor.may_count(stamp.filter(skip))
    found = batch.select(
        (skip & irregular()).any().alias("odd"),
        decode.sum().alias("decode"),
        text.filter(decode).str.len_bytes().sum().alias("bytes"),
        stamp.filter(skip).min().alias("low"),
        stamp.filter(skip).max().alias("high"),
        *([] if counted is None else [counted.implode().alias(_COUNTED)]),
        *(column.implode() for column in to_decode_exprs(decode)),
    )
    odd, wanted_n, wanted_bytes, low, high = (found.to_series(i).item() for i in range(5))
    if odd:
        del found  # its lists: the odd path takes its own lines
        yield from _account_odd_batch(batch, reading, decode=decode)
        return
    report.records += batch.height
    report.cover_range(low, high)
    full = False
    if wanted_n:
        wanted = pl.DataFrame([found.get_column(name)[0].alias(name) for name in (POS, "line")])
        full = queue.add(report, reading.number, wanted, wanted_bytes)
    if low is not None:
        floor.observe(report.last_ms)
        if counted is not None:
            yield floor.recount(found.get_column(_COUNTED)[0], floor_ms)
    if full:
        yield from queue.decode_own(strict=reading.strict)


def _account_odd_batch(batch: pl.DataFrame, reading: _Reading, *,
                       decode: pl.Expr) -> Iterator[Output]:  # fmt: skip
    """:func:`_account_batch` for a batch with blank lines, lines not shaped like an
    object or timestamps that are not canonical."""
    report, floor = reading.report, reading.floor
    text = pl.col("line")
    # blank lines are not records; only lines not shaped like an object can be blank
    blank = ~pl.col(SHAPED) & ~filled(text).fill_null(True)
    frame = batch.filter(~blank) if batch.select(blank.any()).item() else batch
    wanted = to_decode(frame, decode)
    bad: list[tuple[int, str]] = []
    stamps = _account_passed_over(frame, ~decode, report, bad)
    full = False
    if wanted.height:
        report.records += wanted.height
        full = reading.queue.add(report, reading.number, wanted)
    for position, reason in bad:  # in line order; the report keeps the first few
        report.note_malformed(position, reason, strict=reading.strict)
    if stamps.len():
        floor.observe(report.last_ms)
        counted = floor.stamps(stamps)
        if counted is not None:
            yield counted
    if full:
        yield from reading.queue.decode_own(strict=reading.strict)


def _account_passed_over(frame: pl.DataFrame, skip: pl.Expr, report: FileReport,
                         bad: list[tuple[int, str]]) -> pl.Series:  # fmt: skip
    """Count the records of ``frame`` that are not decoded (``skip``; those not shaped
    like a JSON object go to ``bad``) and return the @timestamps (epoch ms) of the others:
    canonical ones from the scan, any other form parsed here, on those lines only. A line
    with several ``@timestamp`` keys, or whose one value is not plainly a string or an
    integer (:data:`~linescan.TS_ANY`), is decoded for it (its damage goes to ``bad``)."""
    text = pl.col("line")
    skipped, odd = frame.select(skip.sum().alias("n"), (skip & irregular()).any().alias("odd")).row(
        0
    )
    report.records += skipped
    if not odd:
        stamps = frame.select(pl.col(STAMP).filter(skip).drop_nulls()).to_series()
        report.cover(stamps)
        return stamps
    rest = frame.filter(skip)
    shaped = pl.col(SHAPED) | (
        text.str.contains(SHAPE_START) & text.str.contains(SHAPE_END)
    ).fill_null(False)
    checked = rest.with_columns(shaped.alias(SHAPED))
    bad.extend(
        (position, "not a complete JSON object")
        for position in checked.filter(~pl.col(SHAPED)).get_column(POS)
    )
    good = checked.filter(pl.col(SHAPED))
    parts = [good.get_column(STAMP)]
    keys = pl.col("__keys")  # counted once, for the lines not read by the scan
    unread = good.filter(pl.col(STAMP).is_null()).with_columns(timestamp_keys(text).alias("__keys"))
    # one key, not in the canonical form, but plainly a string or an integer: read by a
    # pattern; several keys (the first may be nested in another object), or any other
    # value: decoded
    plain = pl.coalesce(pl.col("1"), pl.col("2"))
    found = (
        unread.filter(keys > 0)
        .with_columns(text.str.extract_groups(TS_ANY).alias("__found"))
        .unnest("__found")
    )
    single = found.filter((keys == 1) & plain.is_not_null())
    if single.height:
        parts.append(single.select(timestamp_text_ms(plain)).to_series().cast(pl.Int64))
    keyed = found.filter((keys > 1) | plain.is_null())
    if keyed.height:
        lines = keyed.select(POS, text.str.strip_prefix("\ufeff"))
        decoded = decode_lines(lines, bad, TIMESTAMP_ONLY)
        parts.append(timestamps(decoded).cast(pl.Int64))
    stamps = pl.concat(parts).drop_nulls().alias(STAMP)
    report.cover(stamps)
    return stamps
