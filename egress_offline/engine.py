"""The engine: compiles a :class:`HuntSpec` into Polars queries and runs it over inputs.

Data flow::

    sources (field batches, stamps) -> normalise -> row filters -> spill -> window
        -> CIDR -> group and sum -> threshold -> HuntResult

Each batch is reduced at once to the narrow *candidate* rows (right OS, category and
action) and the timestamps of the other records. Both are spilled to Arrow files on disk,
so memory holds one batch and the groups, never the input. The window is applied exactly
after the pass, because its anchor (``--now latest``) is the newest timestamp of the whole
input; while reading, a :class:`~egress_offline.sources.TimeFloor` that never passes the
final cutoff lets the readers skip records that are certainly too old. Destination
addresses are classified once per distinct value.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final

import polars as pl

from egress_offline import fields as f
from egress_offline.normalise import (
    exponent_texts,
    exponent_values,
    keyword,
    long_or_null,
    present,
    sum_longs,
    timestamps,
)
from egress_offline.ranges import classify
from egress_offline.sources import (
    RESTART,
    FileReport,
    Gathered,
    Inputs,
    Pending,
    Prefilter,
    Scanned,
    Stamps,
    TimeFloor,
    open_inputs,
    read_batches,
)
from egress_offline.spec import HuntSpec, SweepSpec, iso_ms

__all__ = ["OUTPUT_COLUMNS", "Counts", "HuntResult", "ProgressHook", "run_hunt"]

TOTAL: Final = "total_bytes_out"
CONNECTIONS: Final = "connections"
FIRST_SEEN: Final = "first_seen"
LAST_SEEN: Final = "last_seen"
#: Output columns, in order. The last two are dropped when no flagged row has a value.
OUTPUT_COLUMNS: Final = (
    TOTAL,
    *f.GROUP_FIELDS,
    f.HOST_NAME,
    f.USER_NAME,
    CONNECTIONS,
    FIRST_SEEN,
    LAST_SEEN,
    f.DEST_PORT,
    f.DEST_AS_ORG,
)
_OPTIONAL_COLUMNS: Final = (f.DEST_PORT, f.DEST_AS_ORG)
#: Columns of the candidate rows: event time (epoch ms), exact byte sum, values summed
TS: Final = "__ts"
SUM: Final = "__sum"
N: Final = "__n"
_HAS_BYTES: Final = "__has_bytes"
_STAMP_FLUSH: Final = 1 << 20  # timestamps held before they go to the spill
_SMALL: Final = 1 << 20  # a field batch of fewer bytes is gathered (see read_inputs)...
_GATHER: Final = 8 << 20  # ...with others, up to this many bytes, before it is reduced


@dataclass
class Counts:
    """Records accounted for at each step. ``records = malformed + valid``; each later
    count is what is left after its filter, in the order the steps run."""

    records: int = 0
    malformed: int = 0
    valid: int = 0
    time_window: int = 0
    event_match: int = 0  # host.os.family, event.category and event.action all match
    public_destination: int = 0
    groups: int = 0
    flagged: int = 0
    event_match_with_bytes: int = 0


class DataRange:
    """The data's time range as datetimes, from a result's ``first_ms`` and ``last_ms``."""

    first_ms: int | None
    last_ms: int | None

    @property
    def data_first(self) -> datetime | None:
        return moment_of(self.first_ms)

    @property
    def data_last(self) -> datetime | None:
        return moment_of(self.last_ms)


@dataclass
class HuntResult(DataRange):
    """The flagged rows and everything needed to report how they were found."""

    rows: pl.DataFrame
    spec: HuntSpec
    counts: Counts
    files: list[FileReport]
    skipped: list[str]
    #: the anchor, the window's exclusive start and the data's time range, in epoch ms: a
    #: ``date`` may lie beyond datetime's years 1-9999 (the properties below are None there)
    now_ms: int | None = None
    cutoff_ms: int | None = None
    first_ms: int | None = None
    last_ms: int | None = None
    warnings: list[str] = field(default_factory=list)
    elapsed_seconds: float = 0.0

    @property
    def now(self) -> datetime | None:
        return moment_of(self.now_ms)

    @property
    def cutoff(self) -> datetime | None:
        return moment_of(self.cutoff_ms)


class Spill:
    """Candidate rows and the other records' timestamps, written to uncompressed Arrow IPC
    files in a scratch directory as they come: memory holds neither, and the final pass
    memory-maps the files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: list[Path] = []
        self._stamp_files: list[Path] = []
        self._stamps: list[pl.Series] = []
        self._held = 0  # timestamps in _stamps

    def mark(self) -> tuple[int, int, int]:
        return len(self._files), len(self._stamp_files), self._held

    def rollback(self, mark: tuple[int, int, int]) -> None:
        """Drop what was added since ``mark`` (a file the fast reader gave up on). The
        timestamps held at the mark may have been written since, at the start of the
        first stamp file after it: they are kept, held again."""
        files, stamp_files, held = mark
        earlier: pl.Series | None = None
        if len(self._stamp_files) > stamp_files:
            first = self._stamp_files[stamp_files]
            earlier = pl.scan_ipc(first, glob=False).head(held).collect().to_series()
        elif self._stamps:
            earlier = pl.concat(self._stamps).head(held)
        for path in [*self._files[files:], *self._stamp_files[stamp_files:]]:
            path.unlink()
        del self._files[files:], self._stamp_files[stamp_files:]
        self._stamps = [earlier] if earlier is not None and earlier.len() else []
        self._held = held

    def add(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        path = self.directory / f"spill-{len(self._files):06d}.arrow"
        frame.write_ipc(path, compression="uncompressed")
        self._files.append(path)

    def add_stamps(self, stamps: pl.Series) -> None:
        if stamps.len() == 0:
            return
        self._stamps.append(stamps.alias(TS))
        self._held += stamps.len()
        if self._held >= _STAMP_FLUSH:
            self._flush()

    def _flush(self) -> None:
        path = self.directory / f"stamps-{len(self._stamp_files):06d}.arrow"
        pl.concat(self._stamps).to_frame().write_ipc(path, compression="uncompressed")
        self._stamp_files.append(path)
        self._stamps.clear()
        self._held = 0

    @property
    def files(self) -> list[Path]:
        return list(self._files)

    def scan(self, schema: dict[str, Any]) -> pl.LazyFrame:
        if not self._files:
            return pl.LazyFrame(schema=schema)
        return pl.scan_ipc(self._files, glob=False)

    def count_stamps(self, *, after: int | None = None, before: int | None = None) -> int:
        """How many timestamps are in (``after``, ``before``)."""
        bounds = pl.lit(True)
        if after is not None:
            bounds &= pl.col(TS) > after
        if before is not None:
            bounds &= pl.col(TS) < before
        frames = [s.to_frame() for s in self._stamps]
        held = sum(frame.select(bounds.sum()).item() for frame in frames)
        if not self._stamp_files:
            return int(held)
        stored = pl.scan_ipc(self._stamp_files, glob=False).filter(bounds)
        return int(held) + int(stored.select(pl.len()).collect(engine="streaming").item())


def _candidate_schema() -> dict[str, Any]:
    text_list = f.TEXT_LIST
    return {
        TS: pl.Int64,
        f.DEST_IP: text_list,
        **{name: text_list for name in f.GROUP_FIELDS},
        SUM: pl.Int128,
        N: pl.UInt32,
        _HAS_BYTES: pl.Boolean,
        **{name: text_list for name in f.CONTEXT_FIELDS},
    }


def _reduce_batch(
    batch: pl.DataFrame,
    spec: HuntSpec | SweepSpec,
    spill: Spill,
    extent: list[int],
    floor: TimeFloor,
) -> None:
    """Fold one field batch into the data's time extent and the spill: the candidate rows,
    and the timestamps of the other records. Rows at or below the floor are certainly
    outside the window, and are dropped."""
    single = pl.col("__os").list.len() == 1
    os_ok = (
        pl.lit(True)
        if spec.os_families is None
        else single & pl.col("__os").list.first().is_in(list(spec.os_families))
    )
    category_ok = (pl.col("__cat").list.len() == 1) & (pl.col("__cat").list.first() == "network")
    action_ok = (pl.col("__act").list.len() == 1) & (
        pl.col("__act").list.first() == "disconnect_received"
    )
    flagged = batch.with_columns(
        timestamps(batch).alias(TS),
        keyword(f.OS_FAMILY).alias("__os"),
        keyword(f.CATEGORY).alias("__cat"),
        keyword(f.ACTION).alias("__act"),
    ).with_columns((os_ok & category_ok & action_ok).alias("__match"))
    first, last = flagged.select(pl.col(TS).min().alias("a"), pl.col(TS).max().alias("b")).row(0)
    if first is not None:
        extent[0] = min(extent[0], first)
        extent[1] = max(extent[1], last)
        floor.observe(last)
    low = floor.ms
    if low is not None:
        flagged = flagged.filter(pl.col(TS) > low)
    if spec.window is not None:
        spill.add_stamps(flagged.filter(~pl.col("__match")).get_column(TS).drop_nulls())
    candidates = flagged.filter(pl.col("__match"))
    if candidates.height == 0:
        return
    exponents = exponent_values(candidates.select(exponent_texts()).to_series().to_list())
    total, parsed = sum_longs(f.SOURCE_BYTES, exponents)
    spill.add(
        candidates.select(
            TS,
            keyword(f.DEST_IP),
            *[keyword(name) for name in f.GROUP_FIELDS],
            total.alias(SUM),
            parsed.alias(N),
            (present(pl.col(f.SOURCE_BYTES)).list.len() > 0).alias(_HAS_BYTES),
            *[keyword(name) for name in f.CONTEXT_FIELDS],
        )
    )


def _fixed_now(spec: HuntSpec) -> int | None:
    """The anchor in epoch ms when it is known before reading (``wall`` is the start of
    the run), else None (``latest``)."""
    if spec.now == "latest":
        return None
    if spec.now == "wall":
        return int(time.time() * 1000)
    assert isinstance(spec.now, datetime)
    return int(spec.now.timestamp() * 1000)


def moment_of(ms: int | None) -> datetime | None:
    """A datetime, or None when there is none or it lies outside years 1-9999."""
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def public_events(
    spill: Spill, cidrs: tuple[Any, ...], in_period: pl.Expr, counts: Counts
) -> pl.LazyFrame:
    """The candidate rows in the period whose destination is public, one row per group
    key combination (a multi-valued key puts the row in each of its groups). Counts the
    event matches in the period and the public ones. The rows are written once to the
    scratch directory, and read from there by every later step."""
    candidates = spill.scan(_candidate_schema())
    windowed = candidates.filter(in_period)
    matched = windowed.select(pl.len(), pl.col(_HAS_BYTES).sum()).collect(engine="streaming")
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


def _aggregate(spill: Spill, spec: HuntSpec, cutoff_ms: int | None, counts: Counts) -> pl.DataFrame:
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
        for name in _OPTIONAL_COLUMNS
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


#: Called as reading goes on: (file shown to the user, its number from 1, how many files,
#: fraction of that file read, its size in bytes). Before reading, ``--now latest`` samples
#: the ends of every file: that is told as file number 0, named :data:`SAMPLING`, with the
#: bytes it reads in all. Never called by the library to print.
ProgressHook = Callable[[str, int, int, float, int], None]
SAMPLING: Final = "sampling the ends of the files for --now latest"


def run_hunt(
    paths: Sequence[str],
    spec: HuntSpec | None = None,
    *,
    hash_inputs: bool = False,
    progress: ProgressHook | None = None,
) -> HuntResult:
    """Run the hunt over ``paths`` (files, directories, globs, ``-`` for stdin).

    Raises :class:`~egress_offline.errors.InputError` for an input that cannot be read,
    :class:`~egress_offline.errors.DataError` for a malformed record under ``strict``.
    ``hash_inputs`` adds each file's SHA-256 to its report (it reads every file again).
    ``progress`` is told how far reading has come, for a progress display.
    """
    spec = spec or HuntSpec()
    started = time.perf_counter()
    counts = Counts()
    fixed_now = _fixed_now(spec)
    window_ms = spec.window_ms
    floor = TimeFloor(
        window_ms=window_ms,
        fixed_ms=None if window_ms is None or fixed_now is None else fixed_now - window_ms,
    )
    with (
        tempfile.TemporaryDirectory(prefix="egress-offline-spill-") as scratch,
        open_inputs(paths) as inputs,
    ):
        spill = Spill(Path(scratch))
        reports, first_ms, last_ms = read_inputs(
            inputs, spec, spill, floor, counts, hash_inputs=hash_inputs, progress=progress
        )
        now_ms = last_ms if spec.now == "latest" else fixed_now
        cutoff_ms = None if window_ms is None or now_ms is None else now_ms - window_ms
        rows = _aggregate(spill, spec, cutoff_ms, counts)
        result = HuntResult(
            rows=rows,
            spec=spec,
            counts=counts,
            files=reports,
            skipped=inputs.skipped,
            now_ms=now_ms,
            cutoff_ms=cutoff_ms,
            first_ms=first_ms,
            last_ms=last_ms,
        )
    result.warnings = _warnings(result, inputs)
    result.elapsed_seconds = time.perf_counter() - started
    return result


def read_inputs(
    inputs: Inputs,
    spec: HuntSpec | SweepSpec,
    spill: Spill,
    floor: TimeFloor,
    counts: Counts,
    *,
    hash_inputs: bool,
    progress: ProgressHook | None,
) -> tuple[list[FileReport], int | None, int | None]:
    """Read every input into ``spill``; count records. Returns the file reports and the
    data's first and last @timestamp (epoch ms)."""
    extent = [2**63 - 1, -(2**63)]
    reports: list[FileReport] = []
    sampling = None
    if progress is not None:
        sampling = partial(progress, SAMPLING, 0, len(inputs.files))
    floor.sample(inputs.files, tell=sampling)
    # Small field batches are gathered across files and reduced together: each reduction
    # costs some ten queries and a spill file whatever its size, which a directory of
    # small files paid for each file (1,000 files of 92 KB: 13 ms a file). A large file's
    # batches are reduced as they come (gathering them raised 4 GB Parquet's peak memory
    # from 233 to 301 MiB). Memory holds at most about twice _GATHER bytes of them.
    reduce = partial(_reduce_batch, spec=spec, spill=spill, extent=extent, floor=floor)
    gathered = Gathered(reduce, _GATHER, alone=_SMALL, columns=f.FIELDS)
    # the lines to decode of small files, decoded together; --strict stops at the first
    # malformed record, so it decodes each file's lines before the next file is read
    pending = None if spec.strict else Pending(f.HUNT)
    # small files' lines are scanned together; --strict scans each file alone
    scanned = None if spec.strict else Scanned(inputs.files)
    for number, file in enumerate(inputs.files, start=1):
        report = FileReport(
            name=file.name,
            format=file.format,
            compression=file.compression,
            size=file.size,
            unit="line",
        )
        reports.append(report)
        tell = None
        if progress is not None:
            tell = partial(progress, file.name, number, len(inputs.files))
        _read_file(file, report, spec=spec, spill=spill, extent=extent, floor=floor,
                   gathered=gathered, pending=pending, scanned=scanned, tell=tell)  # fmt: skip
        for decoded in pending.settle(strict=False) if pending is not None else ():
            gathered.add(decoded)
        gathered.settle()
        if hash_inputs:
            report.sha256 = _sha256(file.path)
    for decoded in pending.flush(strict=False) if pending is not None else ():
        gathered.add(decoded)
    gathered.flush()
    counts.records = sum(r.records for r in reports)
    counts.malformed = sum(r.malformed for r in reports)
    counts.valid = counts.records - counts.malformed
    if extent[0] > extent[1]:
        return reports, None, None
    return reports, extent[0], extent[1]


def _read_file(file: Any, report: FileReport, *, spec: HuntSpec | SweepSpec, spill: Spill,
               extent: list[int], floor: TimeFloor, gathered: Gathered,
               pending: Pending | None, scanned: Scanned | None = None,
               tell: Callable[[float, int], None] | None = None) -> None:  # fmt: skip
    mark = spill.mark()
    gathered.begin_file()
    saved = (list(extent), floor.latest_ms)
    # --strict checks every line in full, so it reads without the prefilter
    prefilter = None if spec.strict else Prefilter(families=spec.os_families)
    batches = read_batches(file, report, strict=spec.strict, prefilter=prefilter, floor=floor,
                           pending=pending, scanned=scanned)  # fmt: skip
    for batch in batches:
        if batch is RESTART:
            spill.rollback(mark)
            gathered.drop_file()
            extent[:], floor.latest_ms = list(saved[0]), saved[1]
            continue
        if isinstance(batch, Stamps):
            spill.add_stamps(batch.ms)
        else:
            gathered.add(batch)
        if tell is not None:
            tell(report.progress, file.size)
    if tell is not None:
        tell(1.0, file.size)
    if report.first_ms is not None and report.last_ms is not None:
        # timestamps of the records the prefilter passed over
        extent[0] = min(extent[0], report.first_ms)
        extent[1] = max(extent[1], report.last_ms)


def _warnings(result: HuntResult, inputs: Inputs) -> list[str]:
    counts = result.counts
    spec = result.spec
    notes: list[str] = []
    if counts.valid and result.last_ms is None:
        notes.append(
            "no record has a valid @timestamp, so no window can be placed; "
            "use --all-time to hunt without one"
        )
    elif (
        spec.window is not None
        and result.cutoff_ms is not None
        and result.last_ms is not None
        and result.last_ms <= result.cutoff_ms
    ):
        notes.append(
            f"the window (after {iso_ms(result.cutoff_ms)}) holds no events, but the data has "
            f"events from {iso_ms(result.first_ms)} to {iso_ms(result.last_ms)}; "
            "use --now latest to anchor the window on the newest event, or --all-time"
        )
    if counts.valid and counts.event_match == 0:
        notes.append(
            "the input holds no network disconnect_received events of the chosen OS family, "
            "so this hunt finds nothing here: it reads Elastic Defend network events "
            "(logs-endpoint.events.network-*); Sysmon event 3 and Windows event 5156 are "
            "not such events and do not log bytes"
        )
    elif counts.event_match and counts.event_match_with_bytes == 0:
        notes.append(
            "the input's network events carry no source.bytes at all, so this hunt "
            "cannot run on this data (Sysmon event 3 and Windows event 5156 do not log "
            "bytes; Elastic Defend network events do)"
        )
    return notes
