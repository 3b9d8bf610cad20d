"""Aggregation: the spilled candidate rows -> the period or window -> the CIDR step ->
groups and their byte sums -> the threshold -> the flagged rows with their context."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import polars as pl

from egress_offline import fields as f
from egress_offline.engine.reduce import HAS_BYTES, SUM, UNREAD, N, candidate_schema
from egress_offline.engine.results import (
    CONNECTIONS,
    FIRST_SEEN,
    LAST_SEEN,
    OPTIONAL_COLUMNS,
    OUTPUT_COLUMNS,
    TOTAL,
    Counts,
)
from egress_offline.engine.spill import Part, Spill, scan_part, scan_parts
from egress_offline.normalise import long_or_null, present
from egress_offline.ranges import classify
from egress_offline.readers import FILE, ID, INDEX, POS, TS, FileReport, tuning
from egress_offline.scratch import written
from egress_offline.spec import HuntSpec

__all__ = [
    "aggregate_window",
    "by_group",
    "duplicates",
    "finish",
    "public_events",
    "with_context",
]


def public_events(
    spill: Spill, cidrs: tuple[Any, ...], in_period: pl.Expr, counts: Counts,
    files: list[FileReport],
) -> pl.LazyFrame:  # fmt: skip
    """The candidate rows in the period whose destination is public, each document once,
    one row per group key combination (a multi-valued key puts the row in each of its
    groups). Counts the event matches in the period, the duplicates dropped (also in each
    file's report), their ``source.bytes`` values that are not a long (in each file's
    report) and the public ones. The rows are written once to the scratch directory, and
    read from there by every later step."""
    candidates = spill.scan(candidate_schema())
    dropped = duplicates(spill, in_period)
    for number, count in dropped.group_by(FILE).len().rows():
        files[number].duplicates += count
    counts.duplicates = dropped.height
    windowed = candidates.filter(in_period)
    matched = windowed.select(pl.len(), pl.col(HAS_BYTES).sum()).collect(engine="streaming")
    counts.event_match, counts.event_match_with_bytes = (int(v or 0) for v in matched.row(0))
    if dropped.height:
        counts.event_match -= dropped.height
        counts.event_match_with_bytes -= int(dropped.get_column(HAS_BYTES).sum())

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
    # A few spilled batches at a time, eagerly (the streaming engine would hold every
    # row for the list expression), up to a bound: one at a time cost some ten queries
    # each (a 4 GB sweep's 41 batches: 0.3 s). Held or written to scratch, then read
    # by every later step.
    public_paths: list[Part | Future[Part]] = []
    unread = []
    dropped_why = []
    for whole, held in _gathered(spill, dropped, in_period):
        unread.append(whole.filter(pl.col(UNREAD) > 0).select(FILE, POS, UNREAD))
        marked = whole.with_columns(canon.alias("__canon"))
        dropped_why.append(marked.select(_why_not_public(public_only)))
        part = marked.filter((pl.col("__canon").list.len() == 1) & public_only).drop("__canon")
        if part.height == 0:
            continue
        if held:  # filtered from parts held in memory, it points into their buffers: held
            # as it is, outside the spill's room (its text is theirs; it adds their row
            # structure at most, for rows they hold already)
            public_paths.append(part)
        else:
            name = f"public-{len(public_paths):06d}.arrow"
            public_paths.append(spill.write_later(part, name))
    _note_unread(unread, files)
    if dropped_why:
        why = pl.concat(dropped_why).sum().row(0, named=True)
        for name, count in why.items():
            setattr(counts, name, int(count or 0))
    spill.public = written(public_paths)
    public = scan_parts(spill.public) if spill.public else candidates.clear()
    counts.public_destination = public.select(pl.len()).collect(engine="streaming").item()
    return by_group(public)


def _gathered(spill: Spill, dropped: pl.DataFrame,
              in_period: pl.Expr) -> Iterator[tuple[pl.DataFrame, bool]]:  # fmt: skip
    """The spilled candidate rows in the period, but the ``dropped`` duplicates, in
    frames of consecutive spilled parts of about :data:`~tuning.PUBLIC_BYTES` as read
    (one part may be more), whatever is kept of them: memory holds one such frame at a
    time. Each comes with whether all of it is from parts held in memory: its buffers
    are theirs (parts held together are not copied into one)."""
    frames: list[pl.DataFrame] = []
    size = 0
    in_memory = True
    for number, part in enumerate(spill.files):
        whole = scan_part(part).collect()
        in_memory &= isinstance(part, pl.DataFrame)
        # the part's own size: a frame filtered from it still holds its buffers
        size += int(whole.estimated_size())
        if dropped.height:
            gone = dropped.filter(pl.col(_SPILLED) == number).get_column(_ROW)
            if gone.len():
                whole = whole.with_row_index(_ROW).filter(~pl.col(_ROW).is_in(gone)).drop(_ROW)
        whole = whole.filter(in_period)
        frames.append(whole)
        if size >= tuning.PUBLIC_BYTES:
            yield _joined(frames, in_memory), in_memory
            frames, size, in_memory = [], 0, True
    if frames:
        yield _joined(frames, in_memory), in_memory


def _joined(frames: list[pl.DataFrame], in_memory: bool) -> pl.DataFrame:
    """``frames`` as one: in one chunk when read from disk (later steps are faster on
    one), else in theirs (a copy would be a second buffer for rows held already)."""
    if len(frames) == 1:
        return frames[0]
    return pl.concat(frames, how="vertical_relaxed", rechunk=not in_memory)


def _why_not_public(public_only: pl.Expr) -> list[pl.Expr]:
    """Why the destination step drops an event, counted (see :class:`Counts`)."""
    given, canon = pl.col(f.DEST_IP).list.len(), pl.col("__canon").list.len()
    missing = given == 0
    return [
        missing.sum().alias("destination_missing"),
        (missing & (pl.col(f.DEST_ADDRESS).list.len() > 0)).sum().alias("destination_address_only"),
        ((given > 0) & (canon == 0)).sum().alias("destination_unreadable"),
        (canon > 1).sum().alias("destination_several"),
        ((canon == 1) & ~public_only).sum().alias("destination_excluded"),
    ]


def by_group(public: pl.LazyFrame) -> pl.LazyFrame:
    """One row per group key combination of each public event (a multi-valued key puts
    the event in each of its groups; a missing one is null)."""
    exploded = public
    for name in f.GROUP_FIELDS:
        exploded = exploded.with_columns(
            pl.when(pl.col(name).list.len() == 0)
            .then(pl.lit([None], dtype=f.TEXT_LIST))
            .otherwise(pl.col(name))
            .alias(name)
        ).explode(name)
    return exploded


def _note_unread(parts: list[pl.DataFrame], files: list[FileReport]) -> None:
    """Count in each file's report the ``source.bytes`` values of its event matches that
    are not a long (out of its range, such as a number of 100,000 digits, or no number):
    read as missing, as the cluster reads them, but never without a word."""
    found = pl.concat(parts).sort(FILE, POS) if parts else None
    if found is None or found.height == 0:
        return
    for (number,), rows in found.group_by(FILE, maintain_order=True):
        report = files[int(number)]  # type: ignore[call-overload]
        first = rows.head(tuning.MAX_POSITIONS).select(POS, UNREAD).iter_rows()
        for position, values in first:
            report.note_unreadable(position, _unread_reason(values))
        noted = min(rows.height, tuning.MAX_POSITIONS)
        report.unreadable += int(rows.get_column(UNREAD).sum()) - noted


def _unread_reason(values: int) -> str:
    if values == 1:
        return f"{f.SOURCE_BYTES} is not a long (out of its range, or not a number)"
    return f"{f.SOURCE_BYTES}: {values} values are not longs (out of range, or not numbers)"


_SPILLED = "__spilled"  # the number of a spill file
_ROW = "__row"  # a row's number in it


def duplicates(spill: Spill, in_period: pl.Expr) -> pl.DataFrame:
    """The candidate rows in the period that are the same document as an earlier one
    (the same ``_index`` and ``_id``; rows without an ``_id`` are never duplicates): their
    spill file, row, input file and whether they had bytes. Memory holds a 64-bit hash of
    each candidate's key, and the keys themselves only where two hashes agree (so that a
    crafted id cannot make another document's record vanish: rows are compared whole).

    The rows are numbered in each part once its few columns are read, a part at a time:
    a row index on the scan of a spilled file made Polars read every column of it (2
    million rows of three 4 KiB texts, spilled: 30 s against 2). When no row in the
    period has an ``_id`` (documents exported bare), one streaming query says so."""
    schema = {_SPILLED: pl.UInt32, _ROW: pl.UInt32, FILE: pl.UInt32, HAS_BYTES: pl.Boolean}
    keyed = in_period & pl.col(ID).is_not_null()
    judged = sorted({TS, ID, *in_period.meta.root_names()})
    files = spill.files
    if not files or not _any_row(files, judged, keyed):
        return pl.DataFrame(schema=schema)
    read_columns = sorted({*judged, INDEX, FILE, POS, HAS_BYTES})
    # the first read is the one kept: by file and position, not by when it was spilled
    parts = []
    for number, part in enumerate(files):
        read = scan_part(part).select(read_columns).collect()
        parts.append(
            read.with_row_index(_ROW)
            .filter(keyed)
            .select(
                pl.lit(number, dtype=pl.UInt32).alias(_SPILLED),
                _ROW,
                FILE,
                POS,
                HAS_BYTES,
                pl.struct(INDEX, ID).hash(seed=11).alias("__key"),
            )
        )
    hashed = pl.concat(parts)
    alike = hashed.filter(pl.col("__key").is_duplicated())
    if alike.height == 0:
        return pl.DataFrame(schema=schema)
    found = []
    for (number,), rows in alike.group_by(_SPILLED, maintain_order=True):
        part = files[int(number)]  # type: ignore[call-overload]
        keys = (
            scan_part(part)
            .select(INDEX, ID)
            .collect()
            .with_row_index(_ROW)
            .filter(pl.col(_ROW).is_in(rows.get_column(_ROW).implode()))
        )
        found.append(rows.join(keys, on=_ROW))
    exact = pl.concat(found).sort(FILE, POS)  # the first read is the one kept
    return exact.filter(~pl.struct(INDEX, ID).is_first_distinct()).select(list(schema))


def _any_row(parts: list[Part], columns: list[str], where: pl.Expr) -> bool:
    """Does any row of the spilled ``parts`` hold ``where`` (read from ``columns``)?"""
    rows = scan_parts(parts).select(columns).filter(where).head(1)
    return rows.collect(engine="streaming").height > 0


def aggregate_window(spill: Spill, spec: HuntSpec, cutoff_ms: int | None,
                     counts: Counts, files: list[FileReport]) -> pl.DataFrame:  # fmt: skip
    """The hunt's flagged groups: the public events after ``cutoff_ms`` (every one with
    no window), summed per group, at or above the threshold."""
    if spec.window is None:
        in_window = pl.lit(True)
    elif cutoff_ms is None:  # no anchor for the window: nothing can be in it
        in_window = pl.lit(False)
    else:
        in_window = pl.col(TS) > cutoff_ms
    exploded = public_events(spill, spec.cidrs, in_window, counts, files)
    # the window's records, a document read again among them (dropped at the next step)
    if spec.window is None:  # every valid record
        counts.time_window = counts.valid
    elif cutoff_ms is not None:  # the other records' timestamps, and the event matches
        counts.time_window = (
            spill.count_stamps(after=cutoff_ms) + counts.event_match + counts.duplicates
        )
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
    counts.largest = summed.get_column(TOTAL).max()  # type: ignore[assignment]
    flagged = summed.filter(pl.col(TOTAL) >= spec.threshold).with_columns(
        pl.col(FIRST_SEEN, LAST_SEEN).cast(pl.Datetime("ms", "UTC"))
    )
    return finish(flagged, spill, counts, by=TOTAL, columns=OUTPUT_COLUMNS)


def finish(flagged: pl.DataFrame, spill: Spill, counts: Counts, *,
           by: str, columns: tuple[str, ...]) -> pl.DataFrame:  # fmt: skip
    """The flagged groups as output: their context from ``events``, largest ``by`` first
    then by key, in ``columns``; the optional columns are left out when no row has one."""
    keys = list(f.GROUP_FIELDS)
    flagged = with_context(flagged, spill, keys)
    restored = spill.long_texts.restore(flagged, [*keys, *f.CONTEXT_FIELDS])
    if restored is not flagged:  # tokens are texts again: the context sorted as texts
        restored = restored.with_columns(pl.col(name).list.sort() for name in f.CONTEXT_FIELDS)
    flagged = restored
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


#: Columns of :func:`with_context`: a flagged group's number, a context field's name and
#: one of its values
_FLAGGED, _FIELD, _VALUE = "__flagged", "__field", "__value"


def with_context(flagged: pl.DataFrame, spill: Spill, keys: list[str]) -> pl.DataFrame:
    """Each context field's distinct values per flagged group, from the public events
    (:attr:`Spill.public`), in one streaming pass over them: memory holds the distinct
    values, never every event (rows of one 4 KiB executable held gigabytes). The events
    are numbered by their flagged group (:data:`_FLAGGED`) as soon as they are joined to
    it, and their fields unpivoted to (number, field, value): the keys, which may be
    kilobytes, are not carried further. (One pass a field, each carrying the keys, took
    0.20 s of a 4 GB sweep against 0.07, and 25 s against 8 s and 641 against 377 MiB
    for 2 million events of one flagged group with a 4 KiB executable.)"""
    if flagged.height == 0 or not spill.public:
        return flagged.with_columns(
            pl.lit([], dtype=f.TEXT_LIST).alias(name) for name in f.CONTEXT_FIELDS
        )
    flagged = flagged.with_row_index(_FLAGGED)
    # a superset of the events of the flagged groups, judged before any list is exploded
    # (exploding every public event took most of this step): the events whose first key
    # holds one value, a flagged group's; those with none or several are judged exactly
    first = pl.col(keys[0])
    ids = flagged.get_column(keys[0]).drop_nulls().unique().implode()
    maybe = (first.list.len() != 1) | first.list.first().is_in(ids)
    public = scan_parts(spill.public).filter(maybe).select(*keys, *f.CONTEXT_FIELDS)
    numbered = flagged.lazy().select(_FLAGGED, *keys)
    events = by_group(public).join(numbered, on=keys, how="inner", nulls_equal=True)
    values = (
        events.select(_FLAGGED, *f.CONTEXT_FIELDS)
        .unpivot(on=list(f.CONTEXT_FIELDS), index=_FLAGGED, variable_name=_FIELD, value_name=_VALUE)
        .explode(_VALUE)
        .drop_nulls(_VALUE)
        .unique()
        .collect(engine="streaming")
    )
    value = pl.col(_VALUE)
    lists = values.group_by(_FLAGGED).agg(
        value.filter(pl.col(_FIELD) == name).sort().alias(name) for name in f.CONTEXT_FIELDS
    )
    flagged = flagged.join(lists, on=_FLAGGED, how="left", maintain_order="left")
    return flagged.drop(_FLAGGED).with_columns(
        pl.col(name).fill_null(pl.lit([], dtype=f.TEXT_LIST)) for name in f.CONTEXT_FIELDS
    )
