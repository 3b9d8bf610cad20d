"""Issue 22's targets, measured in one run by one command, as one table.

    pip install '.[bench]'
    python benchmarks/targets.py --data /work/benchdata --sizes 1GB,4GB --repeat 3 \\
        --out benchmarks/targets.md --json benchmarks/targets.json
    python benchmarks/targets.py --tabulate benchmarks/targets.json   # re-render, no rerun
    python benchmarks/targets.py ... --results benchmarks/RESULTS.md  # also put the tables there
    python benchmarks/targets.py --smoke    # tiny data, every contender once, rows checked

Every contender (``benchmarks/contenders.py``) runs as its own process, on every file
(NDJSON, gzip and Parquet of each size), in rounds: each round runs every contender once,
on every file, so that a drift in the machine's speed weighs on all alike and on every
size alike; each round starts at another contender, after reading the file once untimed
(so that none pays alone for a page cache that other jobs emptied). Each contender's best
time, its best CPU time (user and system) and its highest peak anonymous memory (RssAnon,
``peakmem.py``) are kept. The rows of every run are checked: the contenders that answer
the same question (the hunt with a fixed ``--now``, the hunt anchored on the newest
``@timestamp``, the sweep) must write the same rows on every run, in every format of a
size, and must flag something (an empty answer proves nothing). A file missing in
``--data`` is generated there (``generate.py``, seed 7).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from contenders import (
    OUT,
    Contender,
    Row,
    file_contenders,
    pivot_contender,
    read_rows,
    startup_contenders,
    top_entity,
)
from generate import ensure, generate
from peakmem import measure_run
from run import compile_package
from smoke_data import EXPECTED_SWEEP, make_smoke_data
from tabulate_targets import render

HERE = Path(__file__).resolve().parent
FORMATS = ("ndjson", "gz", "parquet")
SWEPT = ("ndjson", "parquet")  # the sweep target's formats
STARTUP_PAIRS = 3  # start-up runs are short: each round runs the pair this many times


@dataclass
class _Ledger:
    """What the runs found: each contender's times and peaks, and the first rows of each
    check (who wrote them, and the rows)."""

    out: Path  # the rows file every contender writes
    timed: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    agreed: dict[tuple[str, str], tuple[str, set[Row]]] = field(default_factory=dict)


class Mismatch(SystemExit):
    """Two contenders (or two runs) wrote different rows: the run stops."""


def prepare(data: Path, sizes: list[str], *, smoke: bool, scratch: Path) -> dict[str, Any]:
    """The files to run on: ``{"files": [(size, fmt, path, now)], "small": {fmt: path},
    "small_now": now}``."""
    files: list[tuple[str, str, Path, str]] = []
    if smoke:
        made, now = make_smoke_data(scratch)
        files += [("smoke", fmt, made[fmt], now) for fmt in FORMATS]
        return {"files": files, "small": {"ndjson": made["ndjson"]}, "small_now": now}
    for size in sizes:
        made, meta = ensure(data, size, set(FORMATS))
        files += [(size, fmt, made[fmt], str(meta["now"])) for fmt in FORMATS]
    small = scratch / "small-s7.ndjson"  # the start-up target's small file: 2 MB
    meta = generate(small, 2_000_000, seed=7)
    return {"files": files, "small": {"ndjson": small}, "small_now": str(meta["now"])}


def run_rounds(plan: dict[str, Any], repeat: int, scratch: Path) -> dict[str, Any]:
    """Run every contender ``repeat`` times, in rounds; check rows as they come."""
    ledger = _Ledger(out=scratch / "rows.csv")
    pivots: dict[Path, Contender] = {}
    loads = []
    for number in range(1, repeat + 1):
        started = time.perf_counter()
        for size, fmt, path, now in plan["files"]:
            _warm(path)
            runs = file_contenders(path, fmt, now, sweep=fmt in SWEPT)
            if path in pivots:
                runs.append(pivots[path])
            # each round starts at another contender: no one always runs first on a file
            shift = (number - 1) % len(runs)
            for contender in runs[shift:] + runs[:shift]:
                _run(contender, ledger, size=size, fmt=fmt, path=path)
                if contender.name == "hunt" and path not in pivots:
                    pivots[path] = pivot_contender(path, top_entity(ledger.out))
                    _run(pivots[path], ledger, size=size, fmt=fmt, path=path)
        small = plan["small"]["ndjson"]
        for _ in range(STARTUP_PAIRS):
            for contender in startup_contenders(small, plan["small_now"]):
                _run(contender, ledger, size="small", fmt="ndjson", path=small)
        loads.append(round(os.getloadavg()[0], 2))
        print(
            f"round {number}/{repeat}: {time.perf_counter() - started:.0f} s, "
            f"load average {loads[-1]}",
            file=sys.stderr,
        )
    checks = {f"{size} {check}": len(rows) for (size, check), (_, rows) in ledger.agreed.items()}
    return {"measurements": list(ledger.timed.values()), "checks": checks,
            "agreed": ledger.agreed, "loads": loads}  # fmt: skip


def _run(contender: Contender, ledger: _Ledger, *, size: str, fmt: str, path: Path) -> None:
    timed, agreed, out = ledger.timed, ledger.agreed, ledger.out
    out.unlink(missing_ok=True)
    argv = [str(out) if part == OUT else part for part in contender.argv]
    run = measure_run(argv)
    if run.code != 0:
        raise SystemExit(f"{contender.name} failed on {path} (exit {run.code}): {' '.join(argv)}")
    entry = timed.setdefault(
        (size, fmt, contender.name),
        {"size": size, "format": fmt, "tool": contender.name, "ours": contender.ours,
         "seconds": [], "cpu_seconds": [], "peak_kib": [], "rows": None},
    )  # fmt: skip
    entry["seconds"].append(round(run.seconds, 4))
    entry["cpu_seconds"].append(round(run.cpu_seconds, 4))
    entry["peak_kib"].append(run.peak_kib)
    if not contender.check:
        return
    if not out.exists():
        raise SystemExit(f"{contender.name} wrote no rows file on {path}")
    rows = read_rows(out, contender)
    entry["rows"] = len(rows)
    where = f"{contender.name} on {path}"
    first = agreed.setdefault((size, contender.check), (where, rows))
    if not rows:
        raise SystemExit(f"{where} flagged nothing: checking its rows would prove nothing")
    if rows != first[1]:
        only_here, only_there = sorted(rows - first[1])[:3], sorted(first[1] - rows)[:3]
        raise Mismatch(
            f"{where} wrote other rows than {first[0]}:\n"
            f"  only in {contender.name}: {only_here}\n  only in the first: {only_there}"
        )


def _warm(path: Path) -> None:
    """Read ``path`` once, untimed, so that every contender finds it in the page cache
    (other jobs on the machine may have pushed it out since the last round)."""
    with path.open("rb") as handle:
        while handle.read(1 << 24):
            pass


def machine() -> dict[str, Any]:
    """Where and on what code the run was made."""
    commit = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    dirty = subprocess.run(
        ["git", "-C", str(HERE), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    try:
        import duckdb  # noqa: PLC0415
    except ImportError:
        raise SystemExit("DuckDB is not installed: pip install '.[bench]'") from None
    import polars  # noqa: PLC0415
    import pyarrow  # noqa: PLC0415

    return {
        "commit": commit + ("+changes" if dirty else ""),
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "polars": polars.__version__,
        "pyarrow": pyarrow.__version__,
        "duckdb": duckdb.__version__,
        "load_before": [round(load, 2) for load in os.getloadavg()],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--sizes", default="1GB,4GB", help="comma-separated, smallest first")
    parser.add_argument("--repeat", type=int, default=3, help="rounds: best time of these")
    parser.add_argument("--out", type=Path, help="also write the tables here (Markdown)")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument("--results", type=Path, metavar="MD",
                        help="also put the tables into this file (benchmarks/RESULTS.md), "
                        f"between its {START} and {END} lines")  # fmt: skip
    parser.add_argument("--tabulate", type=Path, metavar="JSON",
                        help="re-render the tables from a saved --json, running nothing")  # fmt: skip
    parser.add_argument("--smoke", action="store_true",
                        help="tiny data, every contender once, rows checked: for CI")  # fmt: skip
    args = parser.parse_args()
    saved = json.loads(args.tabulate.read_text()) if args.tabulate else measure_all(args)
    text = render(saved)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.results:
        place_tables(args.results, text)
    if args.json and not args.tabulate:
        args.json.write_text(json.dumps(saved, indent=1) + "\n")


START, END = "<!-- targets.py: start -->", "<!-- targets.py: end -->"


def place_tables(results: Path, text: str) -> None:
    """Replace what stands between ``results``' START and END lines with ``text``
    (written to a temporary file beside it, then moved over it)."""
    old = results.read_text()
    if old.count(START) != 1 or old.count(END) != 1 or old.index(START) > old.index(END):
        raise SystemExit(f"{results}: needs one {START} line, then one {END} line")
    head, rest = old.split(START, 1)
    tail = rest.split(END, 1)[1]
    temporary = results.with_name(results.name + ".tmp")
    temporary.write_text(f"{head}{START}\n{text}{END}{tail}")
    temporary.replace(results)


def measure_all(args: argparse.Namespace) -> dict[str, Any]:
    """Run everything; the saved form that ``render`` tabulates."""
    if args.repeat < 1:
        raise SystemExit("--repeat: at least 1")
    sizes = [size for size in args.sizes.split(",") if size]
    info = machine()
    info.update(repeat=1 if args.smoke else args.repeat, sizes=["smoke"] if args.smoke else sizes)
    if not args.smoke:
        compile_package()
    with tempfile.TemporaryDirectory(prefix="egress-targets-") as scratch:
        plan = prepare(args.data, sizes, smoke=args.smoke, scratch=Path(scratch))
        result = run_rounds(plan, info["repeat"], Path(scratch))
    if args.smoke:
        _check_edge_cases(result["agreed"])
    info["load_after"] = [round(load, 2) for load in os.getloadavg()]
    info["load_each_round"] = result["loads"]
    return {"machine": info, "measurements": result["measurements"], "checks": result["checks"]}


def _check_edge_cases(agreed: dict[tuple[str, str], tuple[str, set[Row]]]) -> None:
    """The smoke data's sweep edge cases give exactly the rows they must (so that a fault
    the contenders share still fails)."""
    _, rows = agreed[("smoke", "sweep")]
    edges = {row for row in rows if row[1].startswith("edge-")}
    if edges != EXPECTED_SWEEP:
        raise Mismatch(
            f"the sweep's edge cases: got {sorted(edges)}, expected {sorted(EXPECTED_SWEEP)}"
        )
    print(f"smoke: the sweep's {len(edges)} edge-case rows are the expected ones", file=sys.stderr)


if __name__ == "__main__":
    main()
