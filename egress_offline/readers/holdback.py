"""Lines held back until they turn old (``--now latest``, compressed files).

A compressed file cannot be sampled at its end, so with ``--now latest`` the time floor
only rises as reading goes, and in a file in time order every line looks new when it is
read. Held back, most turn old while reading goes on and are skipped undecoded like any
other old line; the rest are decoded at the end of the file.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from egress_offline.readers.linescan import MAY, STAMP, older_than
from egress_offline.readers.timefloor import TimeFloor

__all__ = ["HeldPart", "LineHoldBack"]


class LineHoldBack:
    """Marked lines that may match and are not yet known to be old. The held lines are
    judged again after every batch; their text is bounded (see
    :data:`~egress_offline.readers.tuning.HELD_BYTES` and the NDJSON reader)."""

    def __init__(self) -> None:
        self.held: list[HeldPart] = []

    @property
    def size(self) -> int:
        return sum(part.size for part in self.held)

    def keep(self, batch: pl.DataFrame, floor: TimeFloor) -> pl.DataFrame:
        """Hold back the lines of ``batch`` to decode that are not old yet, and give back
        the rest of it with the lines held before that are old now. A part whose lines
        are all old, or none, is told from its timestamps' range, without a look at it."""
        low = floor.ms
        old = older_than(low)
        later = pl.col(MAY) & ~old
        out = [batch.filter(~later)]
        held, self.held = [*self.held, HeldPart.of(batch.filter(later))], []
        for part in held:
            if part.frame.height == 0:
                continue
            if (
                low is not None
                and part.all_turn_old
                and part.newest is not None
                and part.newest <= low
            ):
                out.append(part.frame)  # whole parts, most often: no copy
            elif low is None or part.oldest is None or part.oldest > low:
                self.held.append(part)
            else:
                out.append(part.frame.filter(old))
                self.held.append(HeldPart.of(part.frame.filter(~old)))
        return pl.concat([part for part in out if part.height] or out[:1])

    def release(self) -> list[pl.DataFrame]:
        """Every line still held, to be judged with the floor as it is now."""
        held, self.held = self.held, []
        return [part.frame for part in held]


@dataclass(frozen=True)
class HeldPart:
    """A part of the held lines: the bytes of its text, and the range of the timestamps
    by which its lines can turn old (one canonical @timestamp key each, see
    :func:`~egress_offline.readers.linescan.older_than`): ``oldest`` is None when none
    can, ``all_turn_old`` says whether every line can."""

    frame: pl.DataFrame
    size: int
    oldest: int | None
    newest: int | None
    all_turn_old: bool

    @staticmethod
    def of(frame: pl.DataFrame) -> HeldPart:
        can = pl.col(STAMP).is_not_null()
        size, oldest, newest, every = frame.select(
            pl.col("line").str.len_bytes().sum().alias("size"),
            pl.col(STAMP).filter(can).min().alias("oldest"),
            pl.col(STAMP).filter(can).max().alias("newest"),
            can.all().alias("all"),
        ).row(0)
        return HeldPart(frame, int(size or 0), oldest, newest, bool(every) and frame.height > 0)
