"""Aggregation: the spilled candidate rows -> the period or window -> the CIDR step ->
groups and their byte sums -> the threshold -> the flagged rows with their context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from egress_offline import fields as f
from egress_offline.engine.reduce import HAS_BYTES, SUM, N, candidate_schema
from egress_offline.engine.results import (
    CONNECTIONS,
    FIRST_SEEN,
    LAST_SEEN,
    OPTIONAL_COLUMNS,
    OUTPUT_COLUMNS,
    TOTAL,
    Counts,
)
from egress_offline.engine.spill import Spill
from egress_offline.normalise import long_or_null, present
from egress_offline.ranges import classify
from egress_offline.readers import TS
from egress_offline.spec import HuntSpec

__all__ = ["aggregate_window", "finish", "public_events", "with_context"]


def public_events(
    spill: Spill, cidrs: tuple[Any, ...], in_period: pl.Expr, counts: Counts
) -> pl.LazyFrame:
    """The candidate rows in the period whose destination is public, one row per group
    key combination (a multi-valued key puts the row in each of its groups). Counts the
    event matches in the period and the public ones. The rows are written once to the
    scratch directory, and read from there by every later step."""
    candidates = spill.scan(candidate_schema())
    windowed = candidates.filter(in_period)
    matched = windowed.select(pl.len(), pl.col(HAS_BYTES).sum()).collect(engine="streaming")
    counts.event_match, counts.event_match_with_bytes = (int(v or 0) for v in matched.row(0))

    addresses = windowed.select(pl.col(f.DEST_IP).explode().drop_nulls().unique())
    texts = addresses.collect(engine="streaming").to_series().to_list()
    table = classify(texts, cidrs)
    valid = table.filter(pl.col("ip_canon").is_not_null())
    canon = present(
        pl.col(f.DEST_IP).list.eval(
            pl.element().replace_strict(
                valid["ip_text"], valid["ip_canon"], default=None, return_dtype=pl.String
            )
        )
    ).list.unique()
    by_canon = valid.unique("ip_canon")
    public_only = (
        pl.col("__canon")
        .list.first()
        .replace_strict(
            by_canon["ip_canon"], by_canon["ip_excluded"], default=None, return_dtype=pl.Boolean
        )
        .not_()
    )
    # One spilled batch at a time, eagerly: the streaming engine would hold every row for
    # the list expression. Written to scratch, then read by every later step.
    public_paths = []
    for number, path in enumerate(spill.files):
        part = (
            pl.scan_ipc(path, glob=False)
            .collect()
            .filter(in_period)
            .with_columns(canon.alias("__canon"))
            .filter((pl.col("__canon").list.len() == 1) & public_only)
            .drop("__canon")
        )
        if part.height:
            public_paths.append(spill.directory / f"public-{number:06d}.arrow")
            part.write_ipc(public_paths[-1], compression="uncompressed")
    public = pl.scan_ipc(public_paths, glob=False) if public_paths else candidates.clear()
    counts.public_destination = public.select(pl.len()).collect(engine="streaming").item()

    exploded = public
    for name in f.GROUP_FIELDS:
        exploded = exploded.with_columns(
            pl.when(pl.col(name).list.len() == 0)
            .then(pl.lit([None], dtype=f.TEXT_LIST))
            .otherwise(pl.col(name))
            .alias(name)
        ).explode(name)
    return exploded


def aggregate_window(spill: Spill, spec: HuntSpec, cutoff_ms: int | None,
                     counts: Counts) -> pl.DataFrame:  # fmt: skip
    """The hunt's flagged groups: the public events after ``cutoff_ms`` (every one with
    no window), summed per group, at or above the threshold."""
    if spec.window is None:
        in_window = pl.lit(True)
        counts.time_window = counts.valid
    elif cutoff_ms is None:  # no anchor for the window: nothing can be in it
        in_window = pl.lit(False)
        counts.time_window = 0
    else:
        in_window = pl.col(TS) > cutoff_ms
        counts.time_window = spill.count_stamps(after=cutoff_ms)
    exploded = public_events(spill, spec.cidrs, in_window, counts)
    counts.time_window += counts.event_match
    keys = list(f.GROUP_FIELDS)
    # Only streamable aggregations here: memory holds the groups, never their events.
    groups = exploded.group_by(keys).agg(
        pl.col(SUM).sum().alias("__total"),
        pl.col(N).cast(pl.Int64).sum().alias("__values"),
        pl.len().cast(pl.Int64).alias(CONNECTIONS),
        pl.col(TS).min().alias(FIRST_SEEN),
        pl.col(TS).max().alias(LAST_SEEN),
    )
    total = long_or_null(pl.col("__total"), pl.col("__values"))
    summed = groups.with_columns(total.alias(TOTAL)).collect(engine="streaming")
    counts.groups = summed.height
    flagged = summed.filter(pl.col(TOTAL) >= spec.threshold).with_columns(
        pl.col(FIRST_SEEN, LAST_SEEN).cast(pl.Datetime("ms", "UTC"))
    )
    return finish(flagged, exploded, spill.directory, counts, by=TOTAL, columns=OUTPUT_COLUMNS)


def finish(flagged: pl.DataFrame, events: pl.LazyFrame, scratch: Path, counts: Counts, *,
           by: str, columns: tuple[str, ...]) -> pl.DataFrame:  # fmt: skip
    """The flagged groups as output: their context from ``events``, largest ``by`` first
    then by key, in ``columns``; the optional columns are left out when no row has one."""
    keys = list(f.GROUP_FIELDS)
    flagged = with_context(flagged, events, keys, scratch)
    flagged = flagged.sort(
        [by, *keys], descending=[True, False, False, False], nulls_last=True
    ).select(columns)
    counts.flagged = flagged.height
    empty = [
        name
        for name in OPTIONAL_COLUMNS
        if flagged.height and flagged.get_column(name).list.len().max() == 0
    ]
    return flagged.drop(empty) if flagged.height else flagged


def with_context(
    flagged: pl.DataFrame, events: pl.LazyFrame, keys: list[str], scratch: Path
) -> pl.DataFrame:
    """Each context field's distinct values per flagged group. The events of the flagged
    groups are written once to a scratch file (streamed, so memory holds no events), and
    each field's distinct (keys, value) pairs are taken from there."""
    wanted = flagged.lazy().select(keys)
    subset = scratch / "flagged-events.arrow"
    events.select(*keys, *f.CONTEXT_FIELDS).join(
        wanted, on=keys, how="semi", nulls_equal=True
    ).sink_ipc(subset)
    for name in f.CONTEXT_FIELDS:
        values = (
            pl.scan_ipc(subset, glob=False)
            .select(*keys, name)
            .explode(name)
            .drop_nulls(name)
            .unique()
            .group_by(keys)
            .agg(pl.col(name).sort())
            .collect(engine="streaming")
        )
        flagged = flagged.join(values, on=keys, how="left", nulls_equal=True).with_columns(
            pl.col(name).fill_null(pl.lit([], dtype=f.TEXT_LIST))
        )
    return flagged
