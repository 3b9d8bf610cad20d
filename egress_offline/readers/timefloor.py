"""The time floor: how old a record may be and still be in the window, as far as is known
while reading, and the sampling of the files' ends that gives ``--now latest`` a first
bound before any file is read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from egress_offline.fields import TIMESTAMP, FieldSet
from egress_offline.normalise import canonical_ms
from egress_offline.readers import tuning
from egress_offline.readers.decode import decode_lines, doc_field_exprs
from egress_offline.readers.linescan import STAMP, plain_stamp_text, tidied
from egress_offline.readers.model import POS, InputFile, StampBatch
from egress_offline.readers.sniff import peek_text
from egress_offline.readers.textcheck import TextChecks, checked_whole

__all__ = ["TIMESTAMP_ONLY", "TimeFloor"]

#: Decodes only the record's own @timestamp, in every layout.
TIMESTAMP_ONLY: Final = FieldSet((TIMESTAMP,))


@dataclass
class TimeFloor:
    """How old a record may be and still be in the window, as far as is known while
    reading: records whose @timestamp (epoch ms) is at most :attr:`ms` are not in it.

    With a fixed anchor (``--now wall`` or a time) that is the cutoff itself. With
    ``--now latest`` the anchor is the newest timestamp of the whole input, so the floor
    rises as newer records are seen: it is never above the final cutoff.
    """

    window_ms: int | None  # None: the hunt has no window, nothing is old
    fixed_ms: int | None = None  # the cutoff, when the anchor is known before reading
    latest_ms: int | None = None  # the newest timestamp seen so far
    #: files whose ends have given their bound already (:meth:`sample`)
    sampled: set[InputFile] = field(default_factory=set)
    #: the text checks, which give a compressed file's end
    checks: TextChecks = field(default_factory=TextChecks)

    def __post_init__(self) -> None:
        # only --now latest samples the files' ends: with a fixed anchor no tail is used
        self.checks.keep_tails = self.rising

    @property
    def rising(self) -> bool:
        """Is the anchor unknown before reading (``--now latest``), so the floor rises?"""
        return self.window_ms is not None and self.fixed_ms is None

    @property
    def ms(self) -> int | None:
        if self.window_ms is None:
            return None
        if self.fixed_ms is not None:
            return self.fixed_ms
        return None if self.latest_ms is None else self.latest_ms - self.window_ms

    def stamps(self, ms: pl.Series) -> StampBatch | None:
        """The timestamps of records not decoded that may be in the window, to count
        there; None when the hunt has no window (every valid record is in it)."""
        counted = self.may_count(pl.col(ms.name))
        return None if counted is None else StampBatch(ms.to_frame().select(counted).to_series())

    def may_count(self, ms: pl.Expr) -> pl.Expr | None:
        """The timestamps of ``ms`` that may be in the window at the floor known now, for
        a caller's own query (see :meth:`recount`); None when the hunt has no window."""
        if self.window_ms is None:
            return None
        low = self.ms
        return ms.drop_nulls() if low is None else ms.filter(ms > low)

    def recount(self, ms: pl.Series, low: int | None) -> StampBatch:
        """The timestamps ``ms`` that :meth:`may_count` kept when the floor was ``low``,
        kept again if the floor has risen since (``--now latest``)."""
        now = self.ms
        return StampBatch(ms if now is None or now == low else ms.filter(ms > now))

    def sample(
        self, files: Sequence[InputFile], tell: Callable[[float, int], None] | None = None
    ) -> None:
        """``--now latest`` over several files: take a bound from the ends of every NDJSON
        file (the start of a compressed one) before any is read. Each file alone looks new
        when it is read, so in a directory in time order every early file was decoded
        whole; with the newest file's bound, their old lines are skipped as in one file.
        The lines of many files' ends are decoded together, in one query (its fixed cost
        was most of what a small file paid: 201 files of 1 MB, about 5 ms a file before).
        ``tell`` is told how far sampling has come and how many bytes it reads in all.
        A file is sampled once."""
        if not self.rising:
            return
        lines = [file for file in files if file.format == "ndjson" and file not in self.sampled]
        size = sum(min(file.size, 2 * tuning.SAMPLE) for file in lines)
        texts: list[str] = []
        with self.checks.ahead(lines):
            for done, file in enumerate(lines, start=1):
                texts += _sample_lines(file, self.checks)
                self.sampled.add(file)
                if len(texts) >= tuning.SAMPLED_AT_ONCE or done == len(lines):
                    self.observe(_latest_of(texts))
                    texts = []
                if tell is not None:
                    tell(done / len(lines), size)

    def observe(self, latest_ms: int | None) -> None:
        if latest_ms is not None and (self.latest_ms is None or latest_ms > self.latest_ms):
            self.latest_ms = latest_ms


def _sample_lines(file: InputFile, checks: TextChecks) -> list[str]:
    """Whole lines in a file's first and last bytes that hold a timestamp key, a bounded
    number at each end (exports are in time order, one way or the other): they seed
    ``--now latest`` (:func:`_latest_of`). A compressed file's end is the text check's
    (the check reads it whole before the fast reader does: it is read once). A line
    that is not UTF-8 is not a record (the careful reader counts it as malformed)."""
    if file.size == 0:
        return []
    try:
        if file.compression != "none":
            head = peek_text(file, file.compression, file.size)[0]
            tail = b""
            if checked_whole(file):
                tail = checks.tail(file)
                if checks.of(file).text_size <= len(tail):  # the whole text: a whole first line
                    tail = b"\n" + tail
        else:
            with file.open() as handle:
                head = handle.read(tuning.SAMPLE)
                handle.seek(max(0, file.size - tuning.SAMPLE))
                tail = handle.read(tuning.SAMPLE)
    except OSError:
        return []  # the reading that follows says what and where
    marked = [
        [line for line in part if b'"@timestamp"' in line]
        for part in (head.split(b"\n")[:-1], tail.split(b"\n")[1:])
    ]
    texts = []
    for line in marked[0][: tuning.SAMPLE_LINES] + marked[1][-tuning.SAMPLE_LINES :]:
        with suppress(UnicodeDecodeError):
            texts.append(line.decode("utf-8"))
    return texts


def _latest_of(texts: list[str]) -> int | None:
    """A lower bound of the newest @timestamp of the files whose sampled lines are
    ``texts`` (:func:`_sample_lines`). Only lines whose decoded @timestamp is the one the
    line scan reads count: the final anchor is then at least this, whichever way the line
    is read. The lines are decoded newest first by that reading, a few at a time, until
    one counts: no older line can give a newer bound."""
    if not texts:
        return None
    line = tidied(pl.col("line"))
    lines = pl.DataFrame({"line": texts}, schema={"line": pl.String}).select(
        line, plain_stamp_text(line).alias(STAMP)
    )
    # only a line whose canonical @timestamp the scan reads can count
    read = canonical_ms(pl.col(STAMP))
    ranked = lines.filter(read.is_not_null()).sort(read, descending=True, maintain_order=True)
    for start in range(0, ranked.height, tuning.DECODED_NEWEST):
        latest = _agreed_newest(ranked.slice(start, tuning.DECODED_NEWEST).lazy())
        if latest is not None:
            return latest
    return None


def _agreed_newest(lines: pl.LazyFrame) -> int | None:
    """The newest @timestamp of ``lines`` (``line``) decoded that is the one the line
    scan reads (``__stamp``), in one query; a damaged line is passed over."""
    # the record's one @timestamp value, decoded, where it is the text the scan reads
    value = pl.col(TIMESTAMP)
    agreed = pl.when((value.list.len() == 1) & (value.list.first() == pl.col(STAMP)))
    newest = canonical_ms(agreed.then(value.list.first())).max()
    try:
        latest = (
            lines.with_columns(
                pl.col("line").str.json_decode(TIMESTAMP_ONLY.document_dtype).alias("__doc")
            )
            .select(*doc_field_exprs(pl.col("__doc"), TIMESTAMP_ONLY), STAMP)
            .select(newest)
            .collect(engine="in-memory")
            .item()
        )
    except pl.exceptions.PolarsError:  # a damaged line: decode the others on their own
        numbered = lines.with_row_index(POS).with_columns(pl.col(POS).cast(pl.Int64)).collect()
        decoded = decode_lines(numbered.select(POS, "line"), [], TIMESTAMP_ONLY)
        latest = decoded.join(numbered.select(POS, STAMP), on=POS).select(newest).item()
    return None if latest is None else int(latest)
