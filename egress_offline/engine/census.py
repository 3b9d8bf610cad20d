"""The census: what the records of the window hold in the fields that decide the event
step (``host.os.family``, ``event.category``, ``event.action``), counted in a second read
of the inputs, only when that step is to be explained (:mod:`engine.diagnosis`).

The first read cannot give these counts: it decodes only the lines that may match (see
docs/how-it-works.md), so the values of every other record are never seen. The second
read decodes every record of the window (older lines are still skipped unread) with a
handful of fields, and keeps counts only: per field, at most :data:`KEPT_VALUES` distinct
values, the most common (the records of any others are counted together; see
:class:`Tally`), each cut to :data:`VALUE_CHARS` characters. Memory holds one batch and the counts, whatever the data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from egress_offline import fields as f
from egress_offline.fields import FieldSet
from egress_offline.normalise import keyword
from egress_offline.readers import EveryLine, FieldBatch, Inputs, ReadPlan, ReadSession
from egress_offline.scratch import Scratch
from egress_offline.spec import RowFilters

__all__ = [
    "CENSUS_FIELDS",
    "DECIDING",
    "KEPT_VALUES",
    "MISSING",
    "SEVERAL",
    "VALUE_CHARS",
    "Census",
    "Tally",
    "take_census",
]

OS_TYPE: Final = "host.os.type"
EVENT_CODE: Final = "event.code"
EVENT_PROVIDER: Final = "event.provider"
#: The fields the census decodes.
CENSUS_FIELDS: Final = FieldSet(
    (f.TIMESTAMP, f.OS_FAMILY, OS_TYPE, f.CATEGORY, f.ACTION, EVENT_CODE, EVENT_PROVIDER),
    reader="the diagnosis",
)
#: The three fields of the event step, in the query's order.
DECIDING: Final = (f.OS_FAMILY, f.CATEGORY, f.ACTION)
KEPT_VALUES: Final = 1000  # distinct values counted one by one, per field
VALUE_CHARS: Final = 200  # a value is counted by its first characters
#: How a record's field is counted when it has no single value (ES|QL's ``==`` is null on
#: a missing field and on several values: the record is dropped either way).
MISSING: Final = "\x00missing"
SEVERAL: Final = "\x00several"
#: Sysmon's network connection (event 3) and the Windows Filtering Platform's (5156), as
#: Winlogbeat and Elastic Agent write them: neither logs source.bytes.
SYSMON: Final = ("Microsoft-Windows-Sysmon", "3")
WFP: Final = ("Microsoft-Windows-Security-Auditing", "5156")


@dataclass
class Tally:
    """Records counted by a value, bounded: at most :data:`KEPT_VALUES` distinct values
    one by one, the records of the others in :attr:`others`. New values are taken up to
    twice that many; then the most common :data:`KEPT_VALUES` are kept and the rest's
    records move to :attr:`others`. So values that come first (an attacker's million
    distinct ``event.action`` values, say) cannot keep out a common one that comes later,
    and memory holds at most ``2 * KEPT_VALUES`` values, whatever the data. A value
    dropped and seen again starts its count anew (a count is then too small)."""

    counts: dict[str, int] = field(default_factory=dict)
    others: int = 0

    def add(self, rows: Iterable[tuple[str, int]], others: int = 0) -> None:
        """Count ``rows`` (value, records); ``others`` records of values not given."""
        self.others += others
        for value, count in rows:
            self.counts[value] = self.counts.get(value, 0) + count
            if len(self.counts) >= 2 * KEPT_VALUES:
                self._prune()
        if len(self.counts) > KEPT_VALUES:
            self._prune()

    def _prune(self) -> None:
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        self.counts = dict(ranked[:KEPT_VALUES])
        self.others += sum(count for _, count in ranked[KEPT_VALUES:])

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.others

    def top(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` values with most records, most first (then by value)."""
        return sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:n]

    def get(self, value: str) -> int:
        return self.counts.get(value, 0)


@dataclass
class Census:
    """What the records of the window hold. For each deciding field: its values over
    every record (:attr:`values`), over the records that meet the other two conditions
    (:attr:`beside`), and how many records meet its own condition (:attr:`matching`)."""

    records: int = 0
    values: dict[str, Tally] = field(default_factory=lambda: {n: Tally() for n in DECIDING})
    beside: dict[str, Tally] = field(default_factory=lambda: {n: Tally() for n in DECIDING})
    matching: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DECIDING, 0))
    #: ``host.os.family`` of the records whose ``host.os.type`` is a family asked for
    #: (Linux hosts say ``linux`` there, and their distribution's family, such as debian)
    typed: Tally = field(default_factory=Tally)
    sysmon: int = 0  # Sysmon event 3 records
    wfp: int = 0  # Windows event 5156 records


def _value(name: str) -> pl.Expr:
    """A record's value of ``name`` as counted: its single value (cut short), or
    :data:`MISSING` or :data:`SEVERAL`."""
    kept = keyword(name)
    return (
        pl.when(kept.list.len() == 1)
        .then(kept.list.first().str.slice(0, VALUE_CHARS))
        .when(kept.list.len() == 0)
        .then(pl.lit(MISSING))
        .otherwise(pl.lit(SEVERAL))
    )


def _meets(name: str, wanted: tuple[str, ...] | None) -> pl.Expr:
    """ES|QL's ``name == value`` for any of ``wanted`` (None: any value)."""
    if wanted is None:
        return pl.lit(True)
    kept = keyword(name)
    return (kept.list.len() == 1) & kept.list.first().is_in(list(wanted))


def _is(pair: tuple[str, str]) -> pl.Expr:
    provider, code = pair
    return (_value(EVENT_PROVIDER) == provider) & (_value(EVENT_CODE) == code)


def take_census(inputs: Inputs, spec: RowFilters, scratch: Scratch, *,
                window_ms: int | None, floor_ms: int | None,
                in_period: pl.Expr) -> Census:  # fmt: skip
    """Read ``inputs`` again and count what the records in the period hold (``floor_ms``
    and ``window_ms`` set the time floor, as for the first read; ``in_period`` picks the
    records counted)."""
    plan = ReadPlan(
        fields=CENSUS_FIELDS,
        prefilter=EveryLine(),
        window_ms=window_ms,
        floor_ms=floor_ms,
        csv_timezone=spec.csv_timezone,
    )
    wanted = {f.OS_FAMILY: spec.os_families, f.CATEGORY: spec.categories, f.ACTION: spec.actions}
    meets = {name: _meets(name, values) for name, values in wanted.items()}
    census = Census()
    with ReadSession(inputs, plan, scratch) as session:
        for item in session:
            if isinstance(item, FieldBatch):
                _count(item.frame.filter(in_period), census, meets, spec.os_families)
    return census


def _count(frame: pl.DataFrame, census: Census, meets: dict[str, pl.Expr],
           families: tuple[str, ...] | None) -> None:  # fmt: skip
    if frame.height == 0:
        return
    ok = {name: f"__ok{number}" for number, name in enumerate(DECIDING)}
    typed = _value(OS_TYPE).is_in(list(families)) if families is not None else pl.lit(False)
    marked = frame.select(
        *[_value(name).alias(name) for name in DECIDING],
        *[meets[name].fill_null(False).alias(ok[name]) for name in DECIDING],
        typed.alias("__typed"),
        _is(SYSMON).alias("__sysmon"),
        _is(WFP).alias("__wfp"),
    )
    census.records += marked.height
    sums = marked.select(
        *[pl.col(ok[name]).sum() for name in DECIDING], pl.col("__sysmon", "__wfp").sum()
    ).row(0)
    for name, count in zip(DECIDING, sums, strict=False):
        census.matching[name] += int(count)
    census.sysmon += int(sums[-2])
    census.wfp += int(sums[-1])
    for name in DECIDING:
        census.values[name].add(*_counted(marked, name))
        others = [pl.col(ok[other]) for other in DECIDING if other != name]
        census.beside[name].add(*_counted(marked.filter(others[0] & others[1]), name))
    census.typed.add(*_counted(marked.filter("__typed"), f.OS_FAMILY))


def _counted(frame: pl.DataFrame, name: str) -> tuple[list[tuple[str, int]], int]:
    """Records per value of ``name`` in ``frame``: the :data:`KEPT_VALUES` most common
    values (then by value), and the records of the others, for :meth:`Tally.add`."""
    if frame.height == 0:
        return [], 0
    counted = frame.group_by(name).len().sort("len", name, descending=[True, False])
    rest = int(counted.get_column("len").slice(KEPT_VALUES).sum())
    return counted.head(KEPT_VALUES).rows(), rest  # type: ignore[return-value]
