"""The span of a stretch of Parquet row groups' @timestamps (its oldest and newest, epoch
ms, as the engine reads them), from its timestamp column alone: a stretch whose rows are
all older than the time floor is passed over unread (see
:mod:`~egress_offline.readers.parquet_screen`; a stretch is one row group, or consecutive
small ones: ``parquet_batches.stretches``). Spans are found a few stretches ahead, on
threads of their own (:class:`SpansAhead`): reading and decompressing a timestamp column
leaves the main thread idle.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final

import polars as pl

from egress_offline.fields import TIMESTAMP
from egress_offline.normalise import CANONICAL_FORM, text_ms
from egress_offline.readers import tuning
from egress_offline.readers.parquet import parquet_raw, positioned, row_stamps
from egress_offline.readers.parquet_batches import (
    Stretch,
    batches,
    leaf_indexes,
    page_sizes,
    text_reader,
)

__all__ = ["Span", "SpansAhead", "latest_sampled", "plain_span", "stretch_span", "written_newer"]

#: A stretch's oldest and newest @timestamp (None: none that reads), or None when its
#: timestamps must be read row by row.
Span = tuple[int | None, int | None] | None
_STAMP: Final = "__stamp"
#: Stretches whose spans are being found ahead of the one being read, at most; each
#: finding holds one batch of a timestamp column.
_AHEAD: Final = 2
#: The canonical form of a timestamp (the engine's), with no text around it.
_CANONICAL: Final = re.compile(CANONICAL_FORM.removeprefix("^"), re.ASCII)


class SpansAhead:
    """The spans of a file's stretches (``stretches``, asked for by their index there),
    found :data:`_AHEAD` stretches ahead of the one asked for, on two threads, each with
    its own reader of the file's one handle (``source``, whose positional reads are
    safe from any thread) and its parsed footer. Asked for in order; :meth:`close`
    cancels the findings not begun and waits for those under way. A finding's failure
    is raised when its stretch is asked for, as if found then."""

    def __init__(self, source: Any, parquet: Any, timed: list[str],
                 stretches: list[Stretch], *, known: dict[int, Span] | None = None,
                 wanted: Callable[[int], bool] = lambda index: True) -> None:  # fmt: skip
        """``known``: spans found already (:func:`latest_sampled`'s), not read again;
        ``wanted``: is a stretch's span likely to be asked for (found ahead only if so)?"""
        self._source, self._metadata, self._timed = source, parquet.metadata, timed
        self._pages = page_sizes(parquet)
        self._stretches = stretches
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._known = dict(known or {})
        self._wanted = wanted
        self._found: dict[int, Future[Span]] = {}
        self._next = 0  # the next stretch to hand to the threads

    def span(self, index: int) -> Span:
        if index in self._known:
            return self._known.pop(index)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(2, thread_name_prefix="egress-offline-span")
            self._next = index
        while self._next <= min(index + _AHEAD, len(self._stretches) - 1):
            if self._next not in self._known and self._wanted(self._next):
                self._found[self._next] = self._pool.submit(self._find, self._next)
            self._next += 1
        finding = self._found.pop(index, None)
        if finding is None:  # asked out of order: found here
            return stretch_span(self._own(), self._stretches[index], self._timed)
        return finding.result()

    def _own(self) -> Any:
        parquet = getattr(self._local, "parquet", None)
        if parquet is None:
            parquet = text_reader(self._source, self._metadata, self._timed, self._pages)
            self._local.parquet = parquet
        return parquet

    def _find(self, index: int) -> Span:
        return stretch_span(self._own(), self._stretches[index], self._timed)

    def close(self) -> None:
        for finding in self._found.values():
            finding.cancel()
        self._found.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def stretch_span(parquet: Any, stretch: Stretch, timed: list[str]) -> Span:
    """The oldest and newest @timestamp of a stretch of row groups, read a batch at a
    time with nothing kept: exact (see :func:`plain_span`) from the least and greatest texts of a
    plain text column, else from every row's timestamp; None when a text column's span
    is not exact."""
    spans: list[tuple[int | None, int | None] | None] = []
    for record_batch in batches(parquet, stretch, timed, tuning.SCREEN_ROWS):
        # no row numbers: their column cost a third; a table's chunks kept as read
        frame = pl.from_arrow(record_batch, rechunk=False)
        assert isinstance(frame, pl.DataFrame)
        span = plain_span([frame])
        if span is None:
            found = parquet_raw(frame.schema, TIMESTAMP)
            if len(found) == 1 and found[0][1] == pl.String:
                return None  # texts that are not all one plain shape: read row by row
            stamp = row_stamps(frame).cast(pl.Int64)
            span = (stamp.min(), stamp.max())  # type: ignore[assignment]
        spans.append(span)
    lows = [low for low, _ in spans if low is not None]  # type: ignore[misc]
    highs = [high for _, high in spans if high is not None]  # type: ignore[misc]
    return (min(lows) if lows else None, max(highs) if highs else None)


def plain_span(frames: list[pl.DataFrame]) -> tuple[int | None, int | None] | None:
    """The oldest and newest @timestamp (epoch ms, as the engine reads them) of a row
    group's timestamp column, read from its least and greatest texts, when that is exact;
    else None, and each row's timestamp must be read.

    It is exact when one plain text column holds the timestamps and every text in it has
    the same length and ends in ``Z``: the general rule then reads every one of them in a
    single shape of fixed-width fields (``2022-04-04T18:52:00.6007809Z``), or not at all,
    so text order is time order, but for a comma before the fraction, which the rule
    reads as a point and which sorts before it (``00,9Z`` before ``00.1Z``): the least
    and greatest texts must hold none, nor any other text of the greatest's second. A text that cannot be read (``10:00:60Z``: the cluster
    reads no 60th second) lies between the two and counts for nothing either way; the
    least and greatest themselves must read."""
    if not frames:  # a row group of no rows
        return None, None
    found = parquet_raw(frames[0].schema, TIMESTAMP)
    if len(found) != 1 or found[0][1] != pl.String:
        return None
    text = pl.col(_STAMP)
    width = text.str.len_bytes()
    texts = pl.concat([frame.select(found[0][0].alias(_STAMP)) for frame in frames])
    row = texts.select(
        width.min().alias("narrow"),
        width.max().alias("wide"),
        text.str.ends_with("Z").all().alias("zoned"),
        text.min().alias("low"),
        text.max().alias("high"),
    )
    narrow, wide, zoned, low, high = row.row(0)
    if low is None:  # no timestamps at all
        return None, None
    if narrow != wide or not zoned or "," in low or "," in high:
        return None
    low_ms, high_ms = _plain_ms(low), _plain_ms(high)
    if low_ms is None or high_ms is None:  # not plainly a time: as the engine reads it
        low_ms, high_ms = text_ms(pl.Series([low, high], dtype=pl.String)).to_list()
    if low_ms is None or high_ms is None:
        return None
    # a comma sorts before a point: a text of the greatest's second written with one may
    # be later than it (of the least's second, it would be the least)
    last = texts.filter(text >= high[:19] + ",")
    if last.select(text.str.contains(",", literal=True).any()).item():
        return None
    return low_ms, high_ms


def _plain_ms(text: str) -> int | None:
    """Epoch ms of a text of the canonical form (:func:`~egress_offline.normalise.canonical_ms`)
    whose fields are a valid time, read as the engine reads it (the seconds, and the
    fraction's first three digits), without a query (the two texts of each row group
    took most of its span's time); None for any other, which the engine's rule reads."""
    if _CANONICAL.fullmatch(text) is None:
        return None
    try:
        moment = datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:  # no such day or time
        return None
    millis = int(text[20:23]) if text[19] == "." else 0
    return int(moment.timestamp()) * 1000 + millis


def written_newer(parquet: Any, stretch: Stretch, timed: list[str], low: int) -> bool:
    """Does the writer's statistics of the timestamp column (one plain text column) of
    some row group of a stretch give a greatest text later than the floor's? A hint
    only, that the stretch has rows in the window and its span is not worth finding (its
    rows are screened, as a stretch's whose span is not exact): the statistics are the
    writer's word, and text order is not time order (:func:`plain_span`)."""
    if len(timed) != 1 or low < 0:
        return False
    # the greatest text of the floor's millisecond, which is not in the window
    try:
        moment = datetime.fromtimestamp(low // 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):  # past year 9999: no hint
        return False
    floor = moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{low % 1000:03d}999999Z"
    try:
        indexes = leaf_indexes(parquet, timed)
        if len(indexes) != 1:
            return False
        metadata = parquet.metadata
        for group in stretch:
            statistics = metadata.row_group(group).column(indexes[0]).statistics
            if statistics is None or not statistics.has_min_max:
                continue
            greatest = statistics.max
            if isinstance(greatest, str) and greatest > floor:
                return True
    except Exception:  # a damaged footer: no hint, the reads say what is wrong
        return False
    return False


def latest_sampled(parquet: Any, deciding: list[str], stretches: list[Stretch],
                   found: dict[int, Span] | None = None) -> int | None:  # fmt: skip
    """A lower bound of the newest @timestamp of a Parquet file, from its first and last
    stretches (exports are in time order, one way or the other), so that ``--now
    latest`` can skip old rows from the start. Each row's timestamp is read as the
    screening and the engine read it, so the final anchor is at least this: from the
    timestamp column alone, by its greatest text where that is exact (:func:`plain_span`;
    reading the deciding columns and every row's time took a tenth of a 1 GB hunt).
    The spans read go to ``found`` (by the stretch's index), for :class:`SpansAhead` not
    to read them again."""
    timed = [path for path in deciding if path in (TIMESTAMP, f"_source.{TIMESTAMP}")]
    last = len(stretches) - 1
    newest: int | None = None
    for index in sorted({0, last}) if last >= 0 else ():
        stretch = stretches[index]
        span = stretch_span(parquet, stretch, timed) if timed else None
        if timed and found is not None:
            found[index] = span
        high = span[1] if span is not None else _newest_read(parquet, stretch, deciding)
        if high is not None and (newest is None or high > newest):
            newest = high
    return newest


def _newest_read(parquet: Any, stretch: Stretch, deciding: list[str]) -> int | None:
    """The newest @timestamp of a stretch of row groups, every row's read."""
    newest: int | None = None
    for record_batch in batches(parquet, stretch, deciding, tuning.PARQUET_ROWS):
        high = row_stamps(positioned(record_batch, 1)).cast(pl.Int64).max()
        if isinstance(high, int) and (newest is None or high > newest):
            newest = high
    return newest
