"""How many rows of a Parquet row group a read may take: as many as the pages of values
stored whole that they reach allow, in :data:`~tuning.READ_ROOM` (``parquet_batches``
reads the row group so many rows at a time).

A page may hold one value of 40 MiB among thousands of short ones, which no footer
average shows: a read of 4,096 rows over 8 such pages held 1.8 GB. So a read is charged
the bytes of every page its rows may reach, in each plain text column (each page's
values and bytes: ``parquet_pages.ChunkPages.runs``), besides the largest page of each
column (:class:`Charge`). A flat column's rows are its values. A list column's rows are
told apart by their repetition levels, where its pages come to more than the room
(``parquet_levels``): its pages are then counted in rows (``row_pages``: the pages that
start no row continue the row before them), and a read reaches the pages of its rows
and the one where the row after them starts (its last row may run on into it); where
they are not counted (its pages fit the room: any read of them fits), a row is taken to
hold its chunk's mean of values.

One size for the whole row group must fit the read that reaches furthest (:meth:`Reads.
rows`); where that is smaller than the row group's other limits, each read is sized
where it starts (:meth:`Reads.at`), so that a few wide rows do not make every read of
their row group one row: 200,000 short rows before 64 rows of 100 MiB took 139 s and
2.8 GB read a row at a time.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import NamedTuple

from egress_offline.readers import tuning

__all__ = ["Charge", "Reads", "prefix_sums", "reach"]


class Charge(NamedTuple):
    """A plain text column's pages as reads reach them: ``pages``, each one's (or each run
    of pages') units and bytes; a row holds ``each`` units, and a read reaches ``after``
    more than its rows hold; ``largest``, its largest page, is not charged to the room;
    ``exact``: its units start at its row group's first row, one a row (a flat column's
    values, a list column's rows), so that a read is charged from where it starts."""

    each: int
    after: int
    pages: tuple[tuple[int, int], ...]
    largest: int
    exact: bool = False


class Reads:
    """The reads of a row group's rows: :attr:`rows` at a time fit wherever they start;
    :meth:`at` says how many fit from a row on. ``charges``: its plain text columns';
    ``per_row``: the bytes each row takes besides (their dictionary entries, offsets);
    ``most``: the rows a read may take at most, whatever its pages."""

    def __init__(self, charges: Sequence[Charge], per_row: int, most: int) -> None:
        self._charges = [(charge, prefix_sums(charge.pages)) for charge in charges if charge.pages]
        self._per_row, self._most = per_row, most
        self._anywhere: dict[tuple[int, int], int] = {}  # (charge, units): its reach
        # any read of two rows may cross a page end of each column: the largest page of
        # each is not charged, and ``parquet_pages`` bounds those to PAGE_ROOM together,
        # so that a read crossing one page end of each column always fits (else two
        # adjacent pages of 34 MiB of short values made every read of their row group
        # one row: 2.4 million rows, 400 s against 7). A read holds at most READ_ROOM
        # and PAGE_ROOM of these values.
        self._room = tuning.READ_ROOM + sum(charge.largest for charge, _ in self._charges)
        self.rows = self._fitting(self._held, 1)
        #: sized where each read starts (:meth:`at`): where some column's units are exact
        self.varies = self.rows < most and any(charge.exact for charge, _ in self._charges)
        #: the rows the reader was last asked to read at a time
        self.asked = self.rows

    def at(self, row: int) -> int:
        """How many rows a read starting at ``row`` may take: at least :attr:`rows`."""
        if not self.varies:
            return self.rows
        return self._fitting(lambda count: self._held(count, row), self.rows)

    def _held(self, count: int, row: int | None = None) -> int:
        """What a read of ``count`` rows holds at most: starting at ``row``, or anywhere."""
        held = count * self._per_row
        for index, (charge, (units, sizes)) in enumerate(self._charges):
            reached = count * charge.each + charge.after
            if row is not None and charge.exact:
                held += _reach_from(units, sizes, row * charge.each, reached)
                continue
            found = self._anywhere.get((index, reached))
            if found is None:  # each read asks again, of the same few counts
                found = self._anywhere[index, reached] = reach(units, sizes, reached)
            held += found
        return held

    def _fitting(self, held: Callable[[int], int], low: int) -> int:
        """The most rows, at least ``low`` and at most ``most``, that ``held`` fits in the
        room (at least ``low`` whatever they hold), by bisection."""
        high = self._most
        if held(high) <= self._room:
            return high
        while low < high:
            middle = (low + high + 1) // 2
            if held(middle) <= self._room:
                low = middle
            else:
                high = middle - 1
        return low


def prefix_sums(found: tuple[tuple[int, int], ...]) -> tuple[list[int], list[int]]:
    """Pages' units and bytes, each summed from the first page: (0, the first's, ...)."""
    units = [0, *accumulate(count for count, _ in found)]
    return units, [0, *accumulate(size for _, size in found)]


def reach(units: list[int], sizes: list[int], count: int) -> int:
    """The most bytes of the pages that ``count`` consecutive units reach, pages' units
    and bytes summed as :func:`prefix_sums` sums them: of all reads, the one starting at
    the last unit of some page reaches furthest from it."""
    most = 0
    for first in range(len(units) - 1):
        end = units[first + 1] - 1 + count - 1  # the read's last unit
        last = min(bisect_right(units, end) - 1, len(units) - 2)
        most = max(most, sizes[last + 1] - sizes[first])
    return most


def _reach_from(units: list[int], sizes: list[int], start: int, count: int) -> int:
    """The bytes of the pages that ``count`` units from unit ``start`` on reach."""
    pages = len(units) - 1
    if start >= units[-1]:
        return 0
    first = bisect_right(units, start) - 1
    last = min(bisect_right(units, start + count - 1) - 1, pages - 1)
    return sizes[last + 1] - sizes[first]
