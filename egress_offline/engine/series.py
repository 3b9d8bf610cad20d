"""The flagged groups' bytes over time, for charts (``--html``): per group, its public
events' ``source.bytes`` summed per time bucket, and the cumulative sum at each bucket's
last event.

Memory is bounded whatever the number of events: at most :data:`MAX_GROUPS` groups, at
most about :data:`MAX_POINTS` points each. A group with no more events than that has a
point at every distinct millisecond of its events; a larger one has its events summed in
buckets of equal length, each point at the last event of its bucket, so that the
cumulative sum is still exact at every point (it counts every event up to and including
that moment), only the moments between points are left out. The public events are read
in one streaming query, as :func:`~egress_offline.engine.aggregate.with_context` reads
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from egress_offline import fields as f
from egress_offline.engine.aggregate import by_group
from egress_offline.engine.long_texts import LongTexts
from egress_offline.engine.reduce import SUM
from egress_offline.engine.results import CONNECTIONS, FIRST_SEEN, LAST_SEEN
from egress_offline.engine.spill import Part, scan_parts
from egress_offline.readers import TS

__all__ = ["MAX_GROUPS", "MAX_POINTS", "GroupSeries", "group_series"]

#: the flagged groups given a series: the first ones, in the rows' order (largest first)
MAX_GROUPS: Final = 100
#: points per group, about (one more when the buckets are anchored inside the span)
MAX_POINTS: Final = 2000
_ORIGIN: Final = "__origin"
_WIDTH: Final = "__width"
_BUCKET: Final = "__bucket"
_POINTS: Final[dict[str, Any]] = {
    "time": pl.Datetime("ms", "UTC"),
    "events": pl.Int64,
    "bytes": pl.Int128,
    "cumulative": pl.Int128,
}


@dataclass(frozen=True)
class GroupSeries:
    """One flagged group's bytes over time."""

    #: the group's keys: ``process.entity_id``, ``destination.address``,
    #: ``process.executable`` (None where the group has none)
    key: tuple[str | None, ...]
    #: one row per point, in time order: ``time`` (Datetime, ms, UTC: the last event of
    #: the bucket), ``events``, ``bytes`` (their ``source.bytes`` summed) and
    #: ``cumulative`` (every event of the group up to and including ``time``)
    points: pl.DataFrame
    #: the bucket's length in ms: 1 when every distinct millisecond is a point
    bucket_ms: int

    @property
    def events(self) -> int:
        """The events drawn (those without a valid ``@timestamp`` cannot be placed)."""
        return int(self.points.get_column("events").sum()) if self.points.height else 0


def group_series(
    flagged: pl.DataFrame,
    public: Sequence[Part],
    *,
    anchor: str = FIRST_SEEN,
    max_groups: int = MAX_GROUPS,
    max_points: int = MAX_POINTS,
    long_texts: LongTexts | None = None,
) -> list[GroupSeries]:
    """The series of the first ``max_groups`` rows of ``flagged`` (the output rows: the
    group keys, ``connections``, ``first_seen``, ``last_seen`` and the ``anchor``
    column), from the public events in ``public`` (:attr:`Spill.public`). Buckets start
    at the ``anchor`` time (the sweep anchors them on the peak window's first event, so
    that the cumulative sum just before the window is a point). ``long_texts``: the
    spill's, whose tokens its events' long keys are."""
    keys = list(f.GROUP_FIELDS)
    wanted = flagged.head(max_groups).filter(pl.col(anchor).is_not_null())
    if wanted.height == 0:
        return []
    first, last = pl.col(FIRST_SEEN).cast(pl.Int64), pl.col(LAST_SEEN).cast(pl.Int64)
    span = last - first + 1
    plan = wanted.select(
        *keys,
        pl.col(anchor).cast(pl.Int64).alias(_ORIGIN),
        pl.when(pl.col(CONNECTIONS) <= max_points)
        .then(1)
        .otherwise(((span + max_points - 1) // max_points).clip(1))
        .cast(pl.Int64)
        .alias(_WIDTH),
    )
    tokened = plan if long_texts is None else long_texts.as_tokens(plan, keys)
    # one streaming query over every part: memory holds the buckets, never the events
    # (a query per part cost its planning and threads each time)
    merged = (
        by_group(scan_parts(public))
        .select(*keys, TS, SUM)
        .filter(pl.col(TS).is_not_null())
        .join(tokened.lazy(), on=keys, how="inner", nulls_equal=True)
        .with_columns(((pl.col(TS) - pl.col(_ORIGIN)) // pl.col(_WIDTH)).alias(_BUCKET))
        .group_by(*keys, _BUCKET)
        .agg(
            pl.len().cast(pl.Int64).alias("events"),
            pl.col(SUM).sum().alias("bytes"),
            pl.col(TS).max().alias("time"),
        )
        .collect(engine="streaming")
        if public
        else None
    )
    found: dict[tuple[str | None, ...], pl.DataFrame] = {}
    if merged is not None and merged.height:
        cumulative = merged.sort([*keys, _BUCKET], nulls_last=True).select(
            *keys,
            pl.col("time").cast(pl.Datetime("ms", "UTC")),
            "events",
            "bytes",
            pl.col("bytes").cum_sum().over(keys, order_by=_BUCKET).alias("cumulative"),
        )
        found = {
            tuple(key): rows.drop(keys)
            for key, rows in cumulative.group_by(keys, maintain_order=True)
        }
    empty = pl.DataFrame(schema=_POINTS)
    # the spilled keys' long texts are tokens (engine/long_texts.py); the rows', texts
    return [
        GroupSeries(key=row[:-1], points=found.get(spilled, empty), bucket_ms=row[-1])
        for row, spilled in zip(plan.select(*keys, _WIDTH).iter_rows(),
                                tokened.select(*keys).iter_rows(), strict=True)
    ]  # fmt: skip
