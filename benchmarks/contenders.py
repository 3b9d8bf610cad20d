"""The contenders that issue 22's targets compare, and how their rows are read and compared.

Every contender is a command run as its own process (its peak anonymous memory its own)
that writes its rows to a CSV file, or nothing (the floors, the start-up runs). Contenders
that answer the same question share a ``check`` name, and their rows must be equal:

- ``hunt``: ``egress-offline hunt --now TIME`` and run.py's DuckDB hunt;
- ``latest``: ``egress-offline hunt`` with the default anchor (the newest ``@timestamp``)
  and the same DuckDB hunt anchored on ``max("@timestamp")`` of the same file;
- ``sweep``: ``egress-offline sweep`` and DuckDB's ``RANGE`` window query below, whose rows
  are the tool's first six columns: the peak, the group keys, the peak window's first and
  last event (epoch ms).

The floors compute nothing: the stack floor (run.py's: start Python and the stack, read
what any exact hunt must read), the decode floor (NDJSON and gzip: read every line and
decode the fewest any exact hunt must, the lines of the window that may hold a matching
event) and the sweep floor (on Parquet, every column the sweep judges or sums, in every
row group: a sweep skips no row group; on NDJSON, every line, and the lines that may
hold a matching event decoded: a sweep has no window to skip lines by, so it decodes
about a quarter of them where the hunt decodes a few in a hundred).
"""

from __future__ import annotations

import csv
import sys
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import DUCKDB, DUCKDB_PRELUDE, EXE, FLOOR

__all__ = [
    "DUCKDB_LATEST",
    "DUCKDB_SWEEP",
    "HUNT_FLOOR_NDJSON",
    "SWEEP_FLOOR",
    "SWEEP_FLOOR_NDJSON",
    "Contender",
    "file_contenders",
    "read_rows",
    "startup_contenders",
]

# run.py's DuckDB hunt, its window anchored on the newest @timestamp of the same file(s)
# (every record's, as `--now latest` takes it), in the same query.
_FIXED_ANCHOR = "TIMESTAMPTZ '{now}'"
_NEWEST = (
    "(SELECT max(date_trunc('millisecond', try_cast(\"@timestamp\" AS TIMESTAMPTZ))) FROM {source})"
)
if DUCKDB.count(_FIXED_ANCHOR) != 1:  # run.py's query changed: say so, never time another
    raise SystemExit("benchmarks/run.py's DuckDB hunt no longer has one fixed anchor")
DUCKDB_LATEST = DUCKDB.replace(_FIXED_ANCHOR, _NEWEST)

# The sweep as DuckDB's best query: the events kept as the hunt keeps them (every time), the
# CIDR exclusion applied exactly to the distinct addresses as in run.py, then for each event
# the sum of its group's bytes over (t - 8h, t] on integer milliseconds (RANGE, so events of
# the same millisecond are all in each other's windows), the earliest window of the largest
# sum per group, and the threshold.
DUCKDB_SWEEP = DUCKDB_PRELUDE + textwrap.dedent(
    """
    path, fmt, out = sys.argv[1:4]
    source = duckdb_source(path, fmt)
    con = duckdb_connect()
    con.execute(f'''
        CREATE TEMP TABLE ev AS
        SELECT * FROM (
            SELECT process.entity_id AS eid, destination.address AS daddr,
                   process.executable AS exe, destination.ip AS dip,
                   epoch_ms(date_trunc('millisecond', try_cast("@timestamp" AS TIMESTAMPTZ)))
                       AS ts,
                   source.bytes AS bytes
            FROM {source}
            WHERE host.os.family = 'windows' AND len(event.category) = 1
              AND event.category[1] = 'network' AND event.action = 'disconnect_received')
        WHERE ts IS NOT NULL''')
    public = public_addresses(con, "ev")
    con.execute(f'''
        COPY (
            SELECT peak, eid, daddr, exe, first_ms, ts AS last_ms FROM (
                SELECT eid, daddr, exe, ts, sum(bytes) OVER w AS peak, min(ts) OVER w AS first_ms
                FROM ev WHERE list_contains($public, dip)
                WINDOW w AS (PARTITION BY eid, daddr, exe ORDER BY ts
                             RANGE BETWEEN 28799999 PRECEDING AND CURRENT ROW))
            WHERE peak IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY eid, daddr, exe ORDER BY peak DESC, ts) = 1
                AND peak >= 1073741824)
        TO '{out}' (HEADER)''', {"public": public})
    """
)

# The sweep's floor on Parquet: start the stack and read every column the sweep judges,
# groups or sums, in every row group (a sweep has no window to skip row groups by).
SWEEP_FLOOR = textwrap.dedent(
    """
    import sys, polars as pl, typer
    import pyarrow.parquet as pq
    from egress_offline import fields as f
    from egress_offline.fields import FieldSet
    from egress_offline.readers import parquet_columns
    path = sys.argv[1]
    parquet = pq.ParquetFile(path)
    leaves = [parquet.schema.column(i).path for i in range(len(parquet.schema))]
    wanted = FieldSet((f.TIMESTAMP, f.OS_FAMILY, f.CATEGORY, f.ACTION, f.DEST_IP,
                       *f.GROUP_FIELDS, f.SOURCE_BYTES))
    for batch in parquet.iter_batches(batch_size=262_144, columns=parquet_columns(leaves, wanted)):
        pass
    """
)


# What the NDJSON floors share: the lines given decoded with Polars' JSON decoder to the
# fields the hunt judges, groups or sums, each to its plain type (less work than an exact
# reader's, which keeps every value of a field as written), computing nothing with them
# but their sizes (so that no decoding is left out) and how many (``decoded``, tested).
_DECODED = textwrap.dedent(
    """
    text = pl.String
    plain = pl.Struct({
        "@timestamp": text,
        "destination": pl.Struct({"address": text, "ip": text}),
        "event": pl.Struct({"action": text, "category": pl.List(text)}),
        "host": pl.Struct({"os": pl.Struct({"family": text})}),
        "process": pl.Struct({"entity_id": text, "executable": text}),
        "source": pl.Struct({"bytes": pl.Int64}),
    })
    leaves = ("@timestamp", "address", "ip", "action", "family", "entity_id", "executable")
    decoded = (lines.select(line.str.json_decode(plain).alias("doc"))
        .unnest("doc").unnest("destination", "event", "host", "process", "source").unnest("os")
        .select(pl.len().alias("lines"), *(pl.col(leaf).str.len_bytes().sum() for leaf in leaves),
                pl.col("category").list.len().sum(), pl.col("bytes").sum())
        .collect(engine="streaming"))
    """
)

# The sweep's floor on NDJSON: start the stack, read every line, and decode (as above) the
# lines that hold the action and the OS family literally (the fewest any exact sweep must
# decode: such a line may be a matching event, and only its JSON says).
SWEEP_FLOOR_NDJSON = (
    textwrap.dedent(
        """
        import sys, polars as pl, typer
        path = sys.argv[1]
        line = pl.col("line")
        lines = pl.scan_lines(path, name="line").filter(
            line.str.contains("disconnect_received") & line.str.contains("windows"))
        """
    )
    + _DECODED
)

# The hunt's decoding floor on NDJSON and gzip: start the stack, read every line, and
# decode (as above) only the lines that may be a matching event of the window: those
# whose first "@timestamp" text (read where it lies: the benchmark's are all of one
# fixed-width UTC form, whose text order is time order, one key a line) is after the
# window's start second, and that hold the action and the OS family literally. On the
# benchmark's lines an exact hunt decodes at least these (only their JSON says whether
# they match); this one counts no record, checks no line's shape and reads no escaped or
# other text, as an exact one must. We know of no exact hunt on this stack that does
# less. (The order of its tests is the fastest found, stop 48: the action first, then
# the time, then the family.)
HUNT_FLOOR_NDJSON = (
    textwrap.dedent(
        """
        import sys, polars as pl, typer
        from datetime import UTC, datetime, timedelta
        path, now = sys.argv[1:3]
        start = datetime.fromisoformat(now.replace("Z", "+00:00")).astimezone(UTC)
        start -= timedelta(hours=8)
        line, key = pl.col("line"), '"@timestamp":"'
        stamp = line.str.slice(line.str.find(key, literal=True) + len(key), 19)
        lines = (pl.scan_lines(path, name="line")
            .filter(line.str.contains("disconnect_received"))
            .filter(stamp > start.strftime("%Y-%m-%dT%H:%M:%S"))
            .filter(line.str.contains("windows")))
        """
    )
    + _DECODED
)


@dataclass(frozen=True)
class Contender:
    """One command to time. ``argv``'s ``"OUT"`` is replaced by the rows file; ``check``
    names the contenders whose rows must be equal (empty: no rows); ``ours``: an
    egress-offline run, whose peak memory the memory target bounds."""

    name: str
    argv: tuple[str, ...]
    check: str = ""
    ours: bool = False


OUT = "OUT"


def file_contenders(path: Path, fmt: str, now: str, *, sweep: bool) -> list[Contender]:
    """The contenders on one file: the hunt with a fixed ``now`` and with the default
    anchor, each against DuckDB's, the stack floor and (NDJSON and gzip) the decode
    floor; with ``sweep``, the sweep against DuckDB's window query, and the sweep floor.
    (pivot is added by the caller, once the hunt has named an entity.)"""
    python, file = sys.executable, str(path)
    runs = [
        Contender("hunt", (EXE, "hunt", file, "--now", now, "-q", "-o", OUT), "hunt", True),
        Contender("duckdb hunt", (python, "-c", DUCKDB, file, fmt, now, OUT), "hunt"),
        Contender("hunt latest", (EXE, "hunt", file, "-q", "-o", OUT), "latest", True),
        Contender("duckdb latest", (python, "-c", DUCKDB_LATEST, file, fmt, "", OUT), "latest"),
        Contender("stack floor", (python, "-c", FLOOR, file, fmt)),
    ]
    if fmt != "parquet":
        runs.append(Contender("decode floor", (python, "-c", HUNT_FLOOR_NDJSON, file, now)))
    if sweep:
        runs += [
            Contender("sweep", (EXE, "sweep", file, "-q", "-o", OUT), "sweep", True),
            Contender("duckdb sweep", (python, "-c", DUCKDB_SWEEP, file, fmt, OUT), "sweep"),
        ]
        floor = SWEEP_FLOOR if fmt == "parquet" else SWEEP_FLOOR_NDJSON
        runs.append(Contender("sweep floor", (python, "-c", floor, file)))
    return runs


def pivot_contender(path: Path, entity: str) -> Contender:
    """``egress-offline pivot`` on ``entity`` (the hunt's top row): timed for its memory."""
    argv = (EXE, "pivot", entity, str(path), "-q", "--format", "json", "-o", OUT)
    return Contender("pivot", argv, ours=True)


def startup_contenders(small: Path, now: str) -> list[Contender]:
    """The start-up target's two runs: the hunt on a small file, and the imports alone."""
    return [
        Contender("startup hunt", (EXE, "hunt", str(small), "--now", now, "-q", "-o", OUT)),
        Contender("startup imports", (sys.executable, "-c", "import polars, pyarrow.parquet")),
    ]


Row = tuple[str, ...]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def read_rows(out: Path, contender: Contender) -> set[Row]:
    """The rows ``contender`` wrote, in the form its ``check`` compares: the hunt's total
    and keys; the sweep's peak, keys, and peak window's first and last event in epoch ms
    (egress-offline writes ISO-8601 times, DuckDB's query epoch ms)."""
    with out.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        if contender.check != "sweep":
            return {tuple(row[:4]) for row in reader}
        if contender.name.startswith("duckdb"):
            return {tuple(row[:6]) for row in reader}
        return {(*row[:4], _epoch_ms(row[4]), _epoch_ms(row[5])) for row in reader}


def top_entity(out: Path) -> str:
    """The entity id of the first row the hunt wrote (its largest total)."""
    with out.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        return next(reader)[1]


def _epoch_ms(text: str) -> str:
    if not text:
        return ""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return str((moment - _EPOCH) // timedelta(milliseconds=1))
