"""egress-offline against DuckDB, plain Polars and the raw floor, on the same files, in one run.

    pip install '.[bench]'
    python benchmarks/run.py --sizes 250MB,500MB,1GB,4GB --formats ndjson,gz,parquet
    python benchmarks/run.py --smoke      # tiny data, every contender once, rows checked, no timing
    python benchmarks/run.py --sizes 4GB --sweep --pivot   # also time sweep, and pivot
    python benchmarks/run.py --sizes 1GB --files 200,1000  # also on the file cut in pieces
    python benchmarks/run.py --sizes 1GB,4GB --baseline /old/venv/bin/egress-offline
                                            # against another build of egress-offline

Every contender runs as its own process (so that its peak anonymous memory, RssAnon, is its
own) and writes its flagged rows; the script checks that every run flags the same rows. The
runs go in rounds, each contender once a round, so that the machine's drifts in speed weigh
on all alike; the best time and the highest peak memory of each are reported. One contender
is the hunt as run in a terminal window (on a pseudo-terminal: its progress bar and summary
shown), to show what they cost.
Data comes from the seeded generator in ``benchmarks/generate.py`` and is reused across runs.
"""

from __future__ import annotations

import argparse
import compileall
import csv
import gzip
import json
import os
import platform
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import ensure
from peakmem import measure

HERE = Path(__file__).resolve().parent
EXE = shutil.which("egress-offline", path=str(Path(sys.executable).parent)) or "egress-offline"

# The Polars contender ends so: the CIDR exclusion applied exactly to the distinct
# destination addresses (``pre`` is grouped by the keys and the ip), then the threshold.
FINISH = textwrap.dedent(
    """
    blocks = tuple(parse_cidr(c) for c in SEED_CIDRS)
    table = classify(pre["dip"].drop_nulls().unique().to_list(), blocks)
    public = table.filter(pl.col("ip_canon").is_not_null() & ~pl.col("ip_excluded"))["ip_text"]
    rows = (pre.filter(pl.col("dip").is_in(public.implode()))
               .group_by("eid", "daddr", "exe").agg(pl.col("total").sum())
               .filter(pl.col("total") >= 1073741824))
    rows.select("total", "eid", "daddr", "exe").write_csv(out)
    """
)

# The hunt as DuckDB's best query: explicit columns, then the CIDR exclusion applied exactly
# to the distinct destination addresses with egress-offline's own range matcher (plain
# Python: the script imports no Polars, whose start-up would count against DuckDB), and
# the threshold in DuckDB.
# What every DuckDB contender's script starts with (here and in contenders.py): the source
# read with explicit columns (NDJSON) or as it is (Parquet), a 2-thread connection, and the
# 26 ranges applied exactly to a table's distinct addresses with egress-offline's matcher.
DUCKDB_PRELUDE = textwrap.dedent(
    """
    import sys, duckdb
    from egress_offline.ranges import SEED_CIDRS, parse_cidr, parse_ip

    def duckdb_source(path, fmt):
        if fmt == "parquet":
            return f"read_parquet('{path}')"
        columns = {"@timestamp": "VARCHAR", "host": "STRUCT(os STRUCT(family VARCHAR))",
                   "event": "STRUCT(category VARCHAR[], action VARCHAR)",
                   "destination": "STRUCT(ip VARCHAR, address VARCHAR)",
                   "process": "STRUCT(entity_id VARCHAR, executable VARCHAR)",
                   "source": "STRUCT(bytes BIGINT)"}
        return f"read_ndjson('{path}', columns={columns!r}, format='newline_delimited')"

    def duckdb_connect():
        con = duckdb.connect()
        con.execute("SET threads TO 2")
        con.execute("SET enable_progress_bar = false")
        return con

    def public_addresses(con, table):
        blocks = [parse_cidr(c) for c in SEED_CIDRS]
        public = []
        query = f"SELECT DISTINCT dip FROM {table} WHERE dip IS NOT NULL"
        for (text,) in con.execute(query).fetchall():
            value = parse_ip(text)
            if value is not None and not any(block.contains(value) for block in blocks):
                public.append(text)
        return public
    """
)
DUCKDB = DUCKDB_PRELUDE + textwrap.dedent(
    """
    path, fmt, now, out = sys.argv[1:5]
    source = duckdb_source(path, fmt)
    con = duckdb_connect()
    con.execute(f'''
        CREATE TEMP TABLE pre AS
        SELECT process.entity_id AS eid, destination.address AS daddr,
               process.executable AS exe, destination.ip AS dip, sum(source.bytes) AS total
        FROM {source}
        WHERE date_trunc('millisecond', try_cast("@timestamp" AS TIMESTAMPTZ))
                > TIMESTAMPTZ '{now}' - INTERVAL 8 HOUR
          AND host.os.family = 'windows' AND len(event.category) = 1
          AND event.category[1] = 'network' AND event.action = 'disconnect_received'
        GROUP BY ALL''')
    public = public_addresses(con, "pre")
    con.execute(f'''
        COPY (SELECT sum(total) AS total, eid, daddr, exe FROM pre
              WHERE list_contains($public, dip)
              GROUP BY eid, daddr, exe HAVING sum(total) >= 1073741824)
        TO '{out}' (HEADER)''', {"public": public})
    """
)

# The floor of egress-offline's stack: start Python, Polars and typer (and pyarrow, for
# Parquet), and read what any exact hunt must read, computing nothing: every line's text,
# or the three Parquet columns that every row is judged by (its time, action and OS
# family). No program on the design's stack can run the hunt faster than this.
FLOOR = textwrap.dedent(
    """
    import sys, polars as pl, typer
    path, fmt = sys.argv[1:3]
    if fmt == "parquet":
        import pyarrow.parquet as pq
        from egress_offline.fields import ACTION, FieldSet, OS_FAMILY, TIMESTAMP
        from egress_offline.readers import parquet_columns
        parquet = pq.ParquetFile(path)
        leaves = [parquet.schema.column(i).path for i in range(len(parquet.schema))]
        judged = parquet_columns(leaves, FieldSet((TIMESTAMP, ACTION, OS_FAMILY)))
        for batch in parquet.iter_batches(batch_size=262_144, columns=judged):
            pass
    else:
        (pl.scan_lines(path).select(pl.col("line").str.len_bytes().sum())
           .collect(engine="streaming"))
    """
)

# The plain Polars query a capable user would write: scan_ndjson with a subset schema.
POLARS = (
    textwrap.dedent(
        """
    import sys, polars as pl
    from datetime import datetime, timedelta
    from egress_offline.ranges import classify, SEED_CIDRS, parse_cidr
    path, fmt, now, out = sys.argv[1:5]
    S, L = pl.String, pl.List(pl.String)
    schema = {"@timestamp": S, "host": pl.Struct({"os": pl.Struct({"family": S})}),
              "event": pl.Struct({"category": L, "action": S}),
              "destination": pl.Struct({"ip": S, "address": S}),
              "process": pl.Struct({"entity_id": S, "executable": S}),
              "source": pl.Struct({"bytes": pl.Int64})}
    lf = pl.scan_parquet(path) if fmt == "parquet" else pl.scan_ndjson(path, schema=schema)
    cutoff = datetime.fromisoformat(now.replace("Z", "+00:00")) - timedelta(hours=8)
    ts = pl.col("@timestamp").str.to_datetime(time_zone="UTC", strict=False).dt.truncate("1ms")
    pre = (lf.filter((ts > cutoff)
                     & (pl.col("host").struct.field("os").struct.field("family") == "windows")
                     & (pl.col("event").struct.field("category") == ["network"])
                     & (pl.col("event").struct.field("action") == "disconnect_received"))
             .group_by(eid=pl.col("process").struct.field("entity_id"),
                       daddr=pl.col("destination").struct.field("address"),
                       exe=pl.col("process").struct.field("executable"),
                       dip=pl.col("destination").struct.field("ip"))
             .agg(total=pl.col("source").struct.field("bytes").sum())
             .collect(engine="streaming"))
    """
    )
    + FINISH
)


def contenders(
    path: Path, fmt: str, now: str, out: Path, *, sweep: bool = False, baseline: str = ""
) -> dict[str, list[str]]:
    """The commands to time on ``path``: a file, or a directory of pieces of one (see
    :func:`split_files`), which egress-offline is given as it is and the others as a
    pattern of its files. ``baseline``, another egress-offline executable (an earlier
    commit's install), is timed beside this one on the same hunts."""
    python = sys.executable
    pattern = str(path / ("*.ndjson.gz" if fmt == "gz" else "*.ndjson")) if path.is_dir() else ""
    shell = f"{path}/*" if pattern else f"'{path}'"  # the files, for sh
    runs = {
        "egress-offline": [EXE, "hunt", str(path), "--now", now, "-q", "-o", str(out)],
        # the default anchor, the newest @timestamp (a few ms before the fixed one): timed,
        # its rows not compared
        "egress-offline latest": [EXE, "hunt", str(path), "-q", "-o", str(out)],
        # as a user runs it in a terminal window: the progress bar (after two seconds) and
        # the summary, on a pseudo-terminal; the same rows as with -q
        "egress-offline on a terminal": [EXE, "hunt", str(path), "--now", now, "-o", str(out)],
        "duckdb": [python, "-c", DUCKDB, pattern or str(path), fmt, now, str(out)],
        "polars scan": [python, "-c", POLARS, pattern or str(path), fmt, now, str(out)],
        "stack floor": [python, "-c", FLOOR, pattern or str(path), fmt],
    }
    if fmt == "ndjson":
        runs["cat > /dev/null"] = ["sh", "-c", f"cat {shell} > /dev/null"]
        # through cat: GNU grep writing to /dev/null stops at the first match
        runs["grep -c -F"] = [
            "sh",
            "-c",
            f"cat {shell} | grep -c -F disconnect_received | cat > /dev/null",
        ]
    if fmt == "gz":
        runs["zcat > /dev/null"] = ["sh", "-c", f"gzip -dc {shell} > /dev/null"]
        del runs["polars scan"]  # scan_ndjson reads .gz too, but it is the same query
    if sweep:  # the whole dump in sliding windows: timed, its rows not compared
        runs["egress-offline sweep"] = [EXE, "sweep", str(path), "-q", "-o", str(out)]
    if baseline:  # the same hunts by another build: the fixed --now one's rows compared
        runs["baseline"] = [baseline, "hunt", str(path), "--now", now, "-q", "-o", str(out)]
        runs["baseline latest"] = [baseline, "hunt", str(path), "-q", "-o", str(out)]
        if sweep:
            runs["baseline sweep"] = [baseline, "sweep", str(path), "-q", "-o", str(out)]
    return runs


def split_files(source: Path, fmt: str, parts: int) -> Path:
    """The NDJSON file ``source`` cut into ``parts`` files of whole lines, in time order,
    plain or gzip (``fmt``): a directory of rotated logs, or an export in pieces, as batch
    jobs read them. Made once, next to ``source``."""
    directory = source.with_name(f"{source.name.split('.')[0]}-{parts}files-{fmt}")
    done = directory / ".complete"
    if done.exists():
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    share = source.stat().st_size // parts
    with source.open("rb") as handle:
        for number in range(parts):
            text = handle.read() if number == parts - 1 else handle.read(share)
            text += handle.readline()  # on to the end of the line
            name = directory / f"part-{number:05d}.ndjson"
            if fmt == "gz":
                name.with_name(name.name + ".gz").write_bytes(gzip.compress(text, mtime=0))
            else:
                name.write_bytes(text)
    done.touch()
    return directory


def rows_of(out: Path, tool: str) -> set[tuple[str, ...]]:
    with out.open() as handle:
        reader = csv.reader(handle)
        next(reader, None)
        if tool == "egress-offline":
            return {(r[0], r[1], r[2], r[3]) for r in reader}
        return {tuple(r[:4]) for r in reader}


def duckdb_available() -> bool:
    try:
        import duckdb  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def bench(
    sizes: list[str], formats: list[str], repeat: int, smoke: bool, data: Path, *,
    sweep: bool = False, pivot: bool = False, parts: list[int] | None = None,
    sparse: int = 0, baseline: str = "",
) -> list[dict[str, Any]]:  # fmt: skip
    """Time every contender ``repeat`` times on each file, in rounds (each round runs
    every contender once, in turn), so that a drift in the machine's speed weighs on all
    of them alike. Reports each one's best time and its highest peak memory. With
    ``parts``, also on each NDJSON and gzip file cut into that many files."""
    results = []
    for size in sizes:
        files, meta = ensure(data, size, set(formats), sparse=sparse)
        inputs = [(fmt, files[fmt], fmt) for fmt in formats]
        inputs += [
            (fmt, split_files(files["ndjson"], fmt, count), f"{fmt} in {count} files")
            for count in parts or ()
            for fmt in formats
            if fmt in ("ndjson", "gz")
        ]
        for fmt, path, label in inputs:
            mb = files["ndjson"].stat().st_size / 1e6
            runs = contenders(path, fmt, meta["now"], Path("x"), sweep=sweep, baseline=baseline)
            if not duckdb_available():
                print("  duckdb: not installed (pip install '.[bench]'), skipped", file=sys.stderr)
                runs.pop("duckdb")
            hunted: dict[str, str] = {}  # the hunt's top entity id, for pivot
            agreed: set[tuple[str, ...]] | None = None
            timed: dict[str, list[tuple[float, int]]] = {}
            with tempfile.TemporaryDirectory() as scratch:
                out = Path(scratch) / "rows.csv"
                for _ in range(1 if smoke else repeat):
                    for tool, command in _with_pivot(runs, path, hunted if pivot else None):
                        out.unlink(missing_ok=True)
                        argv = [str(out) if part == "x" else part for part in command]
                        seconds, peak, code = measure(argv, terminal=tool in TERMINAL_TOOLS)
                        if code != 0:
                            raise SystemExit(f"{tool} failed on {path} (exit {code})")
                        timed.setdefault(tool, []).append((seconds, peak))
                        if tool == "egress-offline" and out.exists():
                            hunted["id"] = _top_entity(out)
                        if out.exists() and tool not in EXTRA_TOOLS:
                            rows = rows_of(out, tool)
                            if agreed is None:
                                agreed = rows
                            elif rows != agreed:
                                raise SystemExit(
                                    f"{tool} flags other rows than the first contender on {path}"
                                )
            for tool, measured in timed.items():
                best = min(seconds for seconds, _ in measured)
                peak = max(peak for _, peak in measured)
                results.append(
                    {
                        "size": size,
                        "format": label,
                        "tool": tool,
                        "seconds": best,
                        "runs_seconds": [round(seconds, 3) for seconds, _ in measured],
                        "mb_per_s": mb / best,
                        "peak_rss_anon_mib": peak / 1024,
                        "flagged": None if agreed is None else len(agreed),
                    }
                )
                if not smoke:
                    print(
                        f"{size:>6} {label:8} {tool:28} {best:7.2f} s {mb / best:8.0f} MB/s "
                        f"{peak / 1024:6.0f} MiB  (runs: "
                        f"{', '.join(f'{seconds:.2f}' for seconds, _ in measured)})",
                        file=sys.stderr,
                    )
            if smoke:
                print(
                    f"smoke {size} {label}: all contenders flag the same {len(agreed or ())} rows",
                    file=sys.stderr,
                )
    return results


EXTRA_TOOLS = (
    "egress-offline latest",
    "egress-offline sweep",
    "egress-offline pivot",
    "baseline latest",
    "baseline sweep",
)
# run with a terminal as standard output and error: the progress bar and the summary show
TERMINAL_TOOLS = ("egress-offline on a terminal",)


def _with_pivot(
    runs: dict[str, list[str]], path: Path, hunted: dict[str, str] | None
) -> Iterator[tuple[str, list[str]]]:
    """The contenders, then (given ``hunted``) ``egress-offline pivot`` on the entity id
    the hunt flagged first in this file: known only once the hunt has run, so the command
    is built lazily."""
    yield from runs.items()
    if hunted is not None:
        if "id" not in hunted:
            raise SystemExit(f"the hunt flagged nothing in {path}: nothing to pivot on")
        command = [EXE, "pivot", hunted["id"], str(path), "-q", "--format", "json", "-o", "x"]
        yield "egress-offline pivot", command


def _top_entity(out: Path) -> str:
    with out.open() as handle:
        reader = csv.reader(handle)
        next(reader, None)
        return next(reader)[1]


def ratios(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    by = {(r["size"], r["format"], r["tool"]): r for r in results}
    for (size, fmt, tool), r in by.items():
        if tool != "egress-offline":
            continue
        duck = by.get((size, fmt, "duckdb"))
        floor = by.get((size, fmt, "stack floor"))
        latest = by.get((size, fmt, "egress-offline latest"))
        if duck and floor and latest:
            lines.append(
                f"| {size} | {fmt} | {r['seconds']:.2f} | {duck['seconds']:.2f} | "
                f"{r['seconds'] / duck['seconds']:.2f} | {floor['seconds']:.2f} | "
                f"{floor['seconds'] / duck['seconds']:.2f} | {latest['seconds']:.2f} | "
                f"{r['peak_rss_anon_mib']:.0f} | {duck['peak_rss_anon_mib']:.0f} |"
            )
    return lines


def against_baseline(results: list[dict[str, Any]]) -> list[str]:
    """This build against the baseline build, each hunt: time ratio and peak memory."""
    by = {(r["size"], r["format"], r["tool"]): r for r in results}
    lines = []
    pairs = (
        ("hunt, fixed --now", "egress-offline", "baseline"),
        ("hunt, --now latest", "egress-offline latest", "baseline latest"),
        ("sweep", "egress-offline sweep", "baseline sweep"),
    )
    for size, fmt, tool in list(by):
        if tool != "egress-offline":
            continue
        for label, ours, theirs in pairs:
            new, old = by.get((size, fmt, ours)), by.get((size, fmt, theirs))
            if new and old:
                lines.append(
                    f"| {size} | {fmt} | {label} | {new['seconds']:.2f} | {old['seconds']:.2f} "
                    f"| {new['seconds'] / old['seconds']:.2f} | {new['peak_rss_anon_mib']:.0f} "
                    f"| {old['peak_rss_anon_mib']:.0f} |"
                )
    return lines


def terminal_costs(results: list[dict[str, Any]]) -> list[str]:
    """What the progress bar and the summary cost: the hunt on a terminal against -q."""
    by = {(r["size"], r["format"], r["tool"]): r for r in results}
    lines = []
    for (size, fmt, tool), r in by.items():
        shown = by.get((size, fmt, TERMINAL_TOOLS[0]))
        if tool == "egress-offline" and shown:
            lines.append(
                f"| {size} | {fmt} | {r['seconds']:.2f} | {shown['seconds']:.2f} | "
                f"{shown['seconds'] / r['seconds']:.2f} |"
            )
    return lines


def compile_package() -> None:
    """Write the package's bytecode, as ``pip install`` does, so that every timed run starts
    as an installed tool does. An editable install under ``PYTHONDONTWRITEBYTECODE`` would
    otherwise compile the tool's own modules on every run (about 0.05 s)."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.find_spec("egress_offline")
    if spec and spec.origin:
        compileall.compile_dir(Path(spec.origin).parent, quiet=1, force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="250MB,500MB,1GB,4GB")
    parser.add_argument("--formats", default="ndjson,gz,parquet")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds: every contender runs once a round"
    )
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--smoke", action="store_true", help="tiny data, no timing: for CI")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument(
        "--sweep", action="store_true", help="also time `egress-offline sweep` on each file"
    )
    parser.add_argument(
        "--files",
        default="",
        help="also cut each NDJSON and gzip file into this many files (comma-separated "
        "counts), and time every contender on the directory of them",
    )
    parser.add_argument(
        "--pivot",
        action="store_true",
        help="also time `egress-offline pivot` on each file, on the hunt's top entity id",
    )
    parser.add_argument(
        "--sparse",
        type=int,
        default=0,
        metavar="N",
        help="on exports where only one in N of the disconnect_received events is one "
        "(the planted ones aside): the hunt keeps a few rows of each batch",
    )
    parser.add_argument(
        "--baseline",
        default="",
        metavar="EXE",
        help="another egress-offline executable (say, an earlier commit installed in its "
        "own venv), timed beside this one on the same hunts (and sweeps, with --sweep)",
    )
    args = parser.parse_args()
    sizes = ["2MB"] if args.smoke else args.sizes.split(",")
    data = Path(tempfile.mkdtemp(prefix="egress-bench-")) if args.smoke else args.data
    sweep = args.sweep or args.smoke
    pivot = args.pivot or args.smoke
    if not args.smoke:
        compile_package()
    parts = [3] if args.smoke else [int(count) for count in args.files.split(",") if count]
    results = bench(
        sizes, args.formats.split(","), args.repeat, args.smoke, data,
        sweep=sweep, pivot=pivot, parts=parts, sparse=args.sparse, baseline=args.baseline,
    )  # fmt: skip
    if args.smoke:
        shutil.rmtree(data, ignore_errors=True)
        return
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        "| size | format | egress-offline s | duckdb s | ratio | stack floor s | floor ratio "
        "| default --now s | egress-offline MiB | duckdb MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(ratios(results)))
    if args.baseline:
        print()
        print("| size | format | run | this s | baseline s | ratio | this MiB | baseline MiB |")
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(against_baseline(results)))
    print()
    print("| size | format | egress-offline -q s | on a terminal s | ratio |")
    print("|---|---|---|---|---|")
    print("\n".join(terminal_costs(results)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
