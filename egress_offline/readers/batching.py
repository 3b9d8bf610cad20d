"""Batching: work that costs much whatever its size (a scan, a decoding, a reduction: some
ten or twenty queries each) is done on many small files' lines or frames together, not
once per file.

* :class:`DecodeQueue` gathers lines to decode, across files, and decodes them together;
* :class:`SmallFileScanner` scans small NDJSON files' lines together, ahead of their turn;
* :class:`FrameBatcher` gathers small field frames into larger ones.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

from egress_offline.fields import FieldSet
from egress_offline.readers import tuning
from egress_offline.readers.decode import decode_lines
from egress_offline.readers.linescan import (
    MAY,
    STAMP,
    irregular,
    marked,
    polars_reads,
    scan_stages,
    to_decode,
)
from egress_offline.readers.model import FILE, POS, FileReport, InputFile
from egress_offline.readers.prefilter import AnyPrefilter
from egress_offline.readers.textcheck import TextChecks, needs_check

__all__ = ["DecodeQueue", "FrameBatcher", "ScanSummary", "SmallFileScanner", "frame_bytes"]

_PATH: Final = "__path"


class DecodeQueue:
    """Lines to decode, gathered up to :data:`~tuning.DECODE_BYTES` of text before they
    are decoded together (see there for why). Each part keeps the report its malformed
    lines are counted in and the number of its file.

    A file's own lines are decoded once they reach the bound (:meth:`decode_own`, while
    it is read); the earlier files' ones only between files (:meth:`decode_all`), so that
    a file the fast reader gives up on takes only its own lines out (:meth:`drop_own`)
    and every frame decoded while a file is read holds that file's records alone."""

    def __init__(self, fields: FieldSet) -> None:
        self.fields = fields
        self._parts: list[tuple[FileReport, int, pl.DataFrame, int]] = []
        self._start = 0  # the parts before it are the earlier files'
        #: decoded bytes per byte of text of the last piece decoded, at least 1: the
        #: next pieces hold that much less text (:meth:`_decode`)
        self._dense = 1.0

    def begin_file(self) -> None:
        self._start = len(self._parts)

    def drop_own(self) -> None:
        del self._parts[self._start :]

    @property
    def size(self) -> int:
        """Bytes of text of every file's lines."""
        return sum(part[3] for part in self._parts)

    @property
    def own_size(self) -> int:
        return sum(part[3] for part in self._parts[self._start :])

    def add(self, report: FileReport, file: int, lines: pl.DataFrame, size: int | None = None
            ) -> bool:  # fmt: skip
        """Keep ``lines`` (``__pos``, ``line``; ``size`` bytes of text, when known) of the
        file numbered ``file``, counted in ``report``; True when its own lines should be
        decoded now."""
        if size is None:
            size = int(lines.select(pl.col("line").str.len_bytes().sum()).item() or 0)
        self._parts.append((report, file, lines, size))
        return self.own_size >= tuning.DECODE_BYTES

    def decode_own(self, *, strict: bool) -> Iterator[pl.DataFrame]:
        """Decode the current file's lines."""
        yield from self._decode(self._taken(self._start), strict=strict)

    def decode_all(self, *, strict: bool) -> Iterator[pl.DataFrame]:
        """Decode every file's lines."""
        yield from self._decode(self._taken(0), strict=strict)

    def _taken(self, start: int) -> list[tuple[FileReport, int, pl.DataFrame, int]]:
        """The parts from ``start`` on, out of the queue (held only by the decoding)."""
        parts = self._parts[start:]
        del self._parts[start:]
        self._start = min(self._start, start)
        return parts

    def _decode(self, parts: list[tuple[FileReport, int, pl.DataFrame, int]], *,
                strict: bool) -> Iterator[pl.DataFrame]:  # fmt: skip
        """Field frames (``__file``, ``__pos``, the fields) of ``parts``' lines. The lines
        are numbered in one sequence while decoded, and each malformed one is told to its
        own file's report at its own line number. They are decoded at most about
        :data:`~tuning.DECODE_BYTES` of text at a time (decoding holds its text several
        times over), and the decoded pieces handed on together until they come to that
        much (:func:`frame_bytes`): a piece of short fields is a fifth of its text, but
        values packed in lists take more than their text, and the pieces of a larger queue,
        put together, held each piece's decoding at once (lists of 2,001 values: 16 MiB of
        lines decode to some 70 MiB), and the next pieces are cut as much smaller as the
        last decoded to more than its text (the hostile case of such lines peaked at 640
        to 770 MiB, 410 to 440 so)."""
        if not parts:
            return
        firsts, frames, number = [], [], 0
        for _, _, lines, _ in parts:
            firsts.append(number)
            frames.append(
                lines.select(pl.int_range(number, number + lines.height).alias(POS), "line")
            )
            number += lines.height
        positions = pl.concat([lines.get_column(POS) for _, _, lines, _ in parts])
        numbered = pl.concat(frames).rechunk()
        line_bytes = max(1.0, sum(part[3] for part in parts) / max(1, numbered.height))
        # the parts' own lines are numbered's now: only whose they are is kept
        owners = [(report, file) for report, file, _, _ in parts]
        del frames, parts
        held: list[pl.DataFrame] = []  # decoded pieces, handed on together while small
        size = at = 0
        while at < numbered.height:
            # as many lines as DECODE_BYTES of text (of the lines' mean length), less as
            # the last piece decoded to more than its text
            step = max(1, int(tuning.DECODE_BYTES / self._dense / line_bytes))
            piece = numbered.slice(at, step)
            at += step
            bad: list[tuple[int, str]] = []
            decoded = decode_lines(piece, bad, self.fields)
            for number, reason in sorted(bad):  # --strict stops at the first
                report = owners[bisect.bisect(firsts, number) - 1][0]
                report.note_malformed(positions[number], reason, strict=strict)
            text = int(piece.select(pl.col("line").str.len_bytes().sum()).item() or 0)
            del piece
            decoded_size = frame_bytes(decoded) if decoded.height else 0
            self._dense = max(1.0, decoded_size / max(1, text))
            if decoded.height == 0:
                continue
            held.append(decoded)
            size += decoded_size
            del decoded
            if size >= tuning.DECODE_BYTES:  # as large as its text may be: handed on now
                ready = _joined(held)
                held, size = [], 0
                yield _owned(ready, owners, firsts, positions)
                del ready
        if held:
            yield _owned(_joined(held), owners, firsts, positions)


def _joined(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")


def _owned(decoded: pl.DataFrame, owners: list[tuple[FileReport, int]], firsts: list[int],
           positions: pl.Series) -> pl.DataFrame:  # fmt: skip
    """``decoded`` with each line's file (``__file``: the number of the file of the part
    it is in, ``owners``, whose first lines are numbered ``firsts``) and its own line
    number (``positions``, by its number in the sequence)."""
    sequence = decoded.get_column(POS)
    numbers = {file for _, file in owners}
    if len(numbers) == 1:  # one file's lines, most often
        files = pl.repeat(numbers.pop(), decoded.height, dtype=pl.UInt32, eager=True)
    else:  # each line's part is the last that starts at or before it
        starts = pl.Series(firsts, dtype=pl.Int64)
        files_of = pl.Series([file for _, file in owners], dtype=pl.UInt32)
        files = files_of.gather(starts.search_sorted(sequence, side="right") - 1)
    return decoded.with_columns(files.alias(FILE), positions.gather(sequence).alias(POS))


@dataclass(frozen=True)
class ScanSummary:
    """What accounting for a small file's marked lines takes (see the NDJSON reader),
    found for the files scanned together in a few queries, instead of a few for each file.
    The lines were marked against the floor as it was at the scan: exact, as the floor
    only rises (a line looked at again later may only turn old)."""

    odd: bool  # some line not decoded needs a second look: accounted for alone
    wanted: pl.DataFrame  # __pos and text of the lines to decode
    wanted_bytes: int
    low: int | None  # @timestamp range of the lines not decoded
    high: int | None
    stamps: pl.Series  # theirs that may be in the window


_NO_LINES: Final = pl.DataFrame(schema={POS: pl.Int64, "line": pl.String})
_NO_STAMPS: Final = pl.Series(STAMP, [], dtype=pl.Int64)


class SmallFileScanner:
    """The marked lines of small NDJSON files, scanned together ahead of their turn.

    When a small file's turn comes, it and the small files that follow it in ``files``
    are scanned in one query, up to :data:`~tuning.GROUP_SCAN_TEXT` of text, and each
    file's marked lines are kept for its turn, with its :class:`ScanSummary`. A file is
    then read as if it had been scanned alone: its own line numbers, damage, records and
    time range. If the scan together fails (a damaged file among them), each file is
    scanned alone, and meets its damage there."""

    def __init__(self, files: Sequence[InputFile], checks: TextChecks) -> None:
        self._files = list(files)
        self._checks = checks
        self._index = {file: number for number, file in enumerate(self._files)}
        self._scanned: dict[InputFile, list[tuple[pl.DataFrame, ScanSummary]]] = {}
        self._alone: set[InputFile] = set()
        self._prefilter: AnyPrefilter = None  # the scanned lines'

    def take(self, file: InputFile, prefilter: AnyPrefilter,
             floor_ms: int | None) -> list[tuple[pl.DataFrame, ScanSummary]] | None:  # fmt: skip
        """``file``'s marked lines (as the line scan gives them) as batches, each with
        its summary, or None when it is to be scanned alone."""
        if file in self._scanned:
            own = self._scanned.pop(file)
            return own if prefilter == self._prefilter else None
        if file in self._alone or not self._small(file) or file not in self._index:
            return None
        group = [file]
        text = self._text(file)
        for later in itertools.islice(self._files, self._index[file] + 1, None):
            if later in self._scanned or later in self._alone or not self._small(later):
                break
            if text + self._text(later) > tuning.GROUP_SCAN_TEXT:
                break
            group.append(later)
            text += self._text(later)
        if len(group) == 1:
            return None
        try:
            scanned = _scan_together(group, prefilter, floor_ms)
        except (pl.exceptions.PolarsError, OSError, ValueError):
            self._alone.update(group)
            return None
        self._scanned.update(scanned)
        self._prefilter = prefilter
        return self._scanned.pop(file)

    def _small(self, file: InputFile) -> bool:
        """Is ``file`` scanned with others? NDJSON documents of at most
        :data:`~tuning.SMALL_TEXT` of text, whose first 64 KiB held whole lines or that is
        shorter than that (an empty file, or one line without a line end). The size of a
        compressed file's text is the text check's (the estimate from its first bytes
        could be anything: a small gzip may expand to gigabytes)."""
        if file.format != "ndjson" or file.layout != "documents" or file.needs_copy:
            return False
        if file.uri is not None:
            return False  # read through a copy made when its turn comes
        if needs_check(file) and not self._checks.of(file).fast:
            return False
        if not file.line_bytes:
            return self._text(file) < tuning.PEEK
        return self._text(file) <= tuning.SMALL_TEXT

    def _text(self, file: InputFile) -> int:
        return self._checks.of(file).text_size if needs_check(file) else file.size


def _split(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """``frame``'s rows by their file (the path), in order, without the path."""
    parts = frame.partition_by(_PATH, maintain_order=True, include_key=False, as_dict=True)
    return {str(key[0]): part for key, part in parts.items()}


def _scan_together(
    files: list[InputFile], prefilter: AnyPrefilter, floor_ms: int | None
) -> dict[InputFile, list[tuple[pl.DataFrame, ScanSummary]]]:
    """The line scan of several files in one query: each file's marked lines, and what
    accounting for them takes."""
    stages, kept = scan_stages(prefilter, floor_ms)
    paths = [str(file.path) for file in files]
    scan = pl.scan_lines(
        paths, name="line", row_index_name=POS, glob=False, include_file_paths=_PATH
    )
    with polars_reads(next((file for file in files if file.line_bytes), files[0])):
        lines = (
            marked(scan, stages)
            .select(*kept, pl.col(_PATH))
            # each line's number in its own file
            .with_columns((pl.col(POS) - pl.col(POS).min().over(_PATH) + 1).alias(POS))
            .collect(engine="streaming")
        )
    # lines older than floor_ms were marked unable to match in the scan (scan_stages)
    decode, text, stamp = pl.col(MAY), pl.col("line"), pl.col(STAMP)
    skip = ~decode
    sums = lines.group_by(_PATH).agg(
        (skip & irregular()).any().alias("odd"),
        text.filter(decode).str.len_bytes().sum().alias("bytes"),
        stamp.filter(skip).min().alias("low"),
        stamp.filter(skip).max().alias("high"),
    )
    fresh = stamp.is_not_null() if floor_ms is None else stamp > floor_ms
    wanted = _split(to_decode(lines, decode, _PATH))
    stamps = _split(lines.filter(skip & fresh).select(_PATH, stamp))
    by_file = _split(lines)
    summaries: dict[str, ScanSummary] = {}
    for path, odd, size, low, high in sums.iter_rows():
        summaries[path] = ScanSummary(
            odd=odd,
            wanted=wanted.get(path, _NO_LINES),
            wanted_bytes=int(size or 0),
            low=low,
            high=high,
            stamps=stamps[path].to_series() if path in stamps else _NO_STAMPS,
        )
    return {
        file: [(by_file[path], summaries[path])] if path in by_file else []
        for file, path in zip(files, paths, strict=True)
    }


def frame_bytes(frame: pl.DataFrame) -> int:
    """A frame's size in memory: Polars' estimate, and at least 16 bytes for each element
    of its lists. The estimate leaves out null elements, and a list of 2,001 elements,
    all but one null, was counted as nothing: 16,384 events of such lists (a 20 KB zstd
    file) were gathered into one batch and took 2.9 GB."""
    lists = [name for name, kind in frame.schema.items() if isinstance(kind, pl.List)]
    size = int(frame.estimated_size())
    if not lists:
        return size
    elements = frame.select(pl.sum_horizontal(pl.col(lists).list.len().sum())).item()
    return max(size, int(elements or 0) * _ELEMENT_BYTES)


#: What a list element takes at least: a string view.
_ELEMENT_BYTES: Final = 16


class FrameBatcher:
    """Frames gathered up to ``bound`` bytes, then handed on together (concatenated); one
    of at least ``alone`` bytes is handed on at once, by itself (gathering large frames
    only raises peak memory). ``columns``, when given, are the only ones kept."""

    def __init__(self, bound: int, *, alone: int | None = None,
                 columns: Sequence[str] = ()) -> None:  # fmt: skip
        self._bound, self._alone, self._columns = bound, alone, list(columns)
        self._frames: list[pl.DataFrame] = []
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def add(self, frame: pl.DataFrame) -> Iterator[pl.DataFrame]:
        """Gather ``frame``; yield what is to be handed on now."""
        if frame.height == 0:
            return
        frame = frame.select(self._columns) if self._columns else frame
        size = frame_bytes(frame)
        if self._alone is not None and size >= self._alone:
            yield frame
            return
        self._frames.append(frame)
        self._size += size
        if self._size >= self._bound:
            yield from self.flush()

    def discard(self) -> None:
        """Forget whatever is gathered."""
        self._frames, self._size = [], 0

    def flush(self) -> Iterator[pl.DataFrame]:
        """Hand on whatever is gathered."""
        frames, self._frames, self._size = self._frames, [], 0
        if frames:
            yield pl.concat(frames, rechunk=True)
