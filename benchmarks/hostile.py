"""Hostile inputs at full size: peak memory, peak scratch disk and what is left behind.

    python benchmarks/hostile.py [--small] [--out benchmarks/data/hostile] [--only NAME]

Each case is an export an attacker could plant (generated, seeded, by
``tests/hostile_inputs.py``; the suite runs the same generators at small sizes). Each run
gets a fresh empty ``TMPDIR``, whose size is sampled while the command runs; the table
gives the exit code, the last line of standard error, the wall time, peak anonymous memory
(RssAnon) and peak scratch, and whether anything was left in ``TMPDIR``. Paste it into
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.peakmem import rss_anon_kib  # noqa: E402
from tests import hostile_inputs as hostile  # noqa: E402

MiB = 1 << 20
GB = 1 << 30


@dataclass(frozen=True)
class Case:
    name: str
    file: str
    make: Callable[[Path, int], Path]
    large: int
    small: int
    args: tuple[str, ...] = ("--now", "2024-05-01T12:00:00Z")
    stdin: str | None = None  # a shell command whose output is the input


CASES = [
    Case("invalid UTF-8, then 32 KB lines (gzip)", "utf8.ndjson.gz",
         hostile.invalid_utf8_then_lines, 600 * MiB, 20 * MiB),
    Case("a line that never ends (gzip)", "endless.ndjson.gz",
         lambda p, n: hostile.endless_line(p, n, "gzip"), 600 * MiB, 20 * MiB),
    Case("a line that never ends (zstd)", "endless.ndjson.zst",
         lambda p, n: hostile.endless_line(p, n, "zstd"), 10 * GB, 20 * MiB),
    Case("a JSON array (zstd)", "array.json.zst",
         hostile.json_array, 1 * GB, 20 * MiB),
    Case("one Parquet row group", "rowgroup.parquet",
         hostile.parquet_rows, 50_000_000, 500_000),
    Case("rows sharing one 4 KiB string (Parquet)", "shared.parquet",
         lambda p, n: hostile.parquet_rows(p, n, row_group=1_000_000,
                                           executable="C:\\" + "x" * 4093),
         5_000_000, 100_000),
    Case("flagged rows with 4 KiB keys and context (Parquet)", "context.parquet",
         lambda p, n: hostile.parquet_rows(p, n, row_group=250_000,
                                           executable="C:\\" + "x" * 4093,
                                           context="h" * 4096),
         2_000_000, 20_000, args=("--now", "2024-05-01T12:00:00Z", "--threshold", "1")),
    Case("4 KiB keys after 1,024 short rows (Parquet, one row group)", "narrowfirst.parquet",
         lambda p, n: hostile.parquet_rows(p, n, executable="C:\\" + "x" * 4093,
                                           short_first=1_024, dictionary=False),
         300_000, 20_000, args=("--now", "2024-05-01T12:00:00Z", "--threshold", "1")),
    Case("4 KiB keys after 1,024 short rows (Parquet, dictionary)", "narrowfirst-dict.parquet",
         lambda p, n: hostile.parquet_rows(p, n, row_group=1_000_000,
                                           executable="C:\\" + "x" * 4093, short_first=1_024),
         2_000_000, 20_000, args=("--now", "2024-05-01T12:00:00Z", "--threshold", "1")),
    Case("rows of one 1 MiB value (Parquet, dictionary, no pyarrow schema)", "wide-dict.parquet",
         lambda p, n: hostile.parquet_rows(p, n, executable="C:\\" + "x" * (MiB - 3),
                                           arrow_schema=False),
         8_192, 64, args=("--now", "2024-05-01T12:00:00Z", "--threshold", "1")),
    Case("rows of one 1 MiB value (Parquet, plain, no pyarrow schema)", "wide-plain.parquet",
         lambda p, n: hostile.parquet_rows(p, n, executable="C:\\" + "x" * (MiB - 3),
                                           dictionary=False, arrow_schema=False),
         1_900, 64, args=("--now", "2024-05-01T12:00:00Z", "--threshold", "1")),
    Case("rows of one 1 MiB value (Parquet, shared prefixes)", "wide-prefixed.parquet",
         lambda p, n: hostile.parquet_rows(p, n, executable="C:\\" + "x" * (MiB - 3),
                                           dictionary=False, prefixed=True),
         1_900, 64, args=("--now", "2024-05-01T12:00:00Z", "--threshold", "1")),
    Case("a dictionary page of 5.5 M texts of 7 bytes (Parquet, 3 rows)", "entries.parquet",
         hostile.dictionary_entries, 5_500_000, 100_000,
         args=("--now", "2024-05-01T12:00:00Z", "--threshold", "1")),
    Case("64 values of 16 MiB in plain pages among 20,000 rows (Parquet)", "long-plain.parquet",
         hostile.long_plain_values, 64, 2),
    Case("one list row of 40 MiB values, a page each (Parquet)", "list-row.parquet",
         hostile.one_list_row, 40, 3),
    Case("17 events, each its own 40 MiB executable (zstd)", "long-keys.ndjson.zst",
         hostile.long_keys, 17, 2),
    Case("one event whose executable is 95 MiB (zstd)", "long-key.ndjson.zst",
         lambda p, n: hostile.long_keys(p, 1, size=n), 95 * MiB, 1 * MiB),
    Case("events of 2,001-element lists (zstd)", "lists.ndjson.zst",
         hostile.long_lists, 480 * MiB, 4 * MiB,
         args=("--now", "2024-05-01T12:00:00Z", "--threshold", "1")),
    Case("valid events, 1 MB of zstd (bomb)", "bomb.ndjson.zst",
         hostile.valid_events_bomb, 10 * GB, 50 * MiB),
    Case("standard input of zeros", "", lambda p, n: p, 10 * GB, 50 * MiB,
         stdin="head -c {size} /dev/zero"),
]  # fmt: skip


def tree_bytes(root: Path) -> int:
    total = 0
    for base, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(base, name)).st_blocks * 512
    return total


def run_case(case: Case, path: Path, size: int, work: Path) -> dict[str, object]:
    scratch = work / "tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    command = [sys.executable, "-m", "egress_offline", "hunt", *case.args, "-q", "-o",
               str(work / "out.csv")]  # fmt: skip
    environment = {**os.environ, "TMPDIR": str(scratch)}
    if case.stdin is not None:
        feeder = subprocess.Popen(case.stdin.format(size=size), shell=True,
                                  stdout=subprocess.PIPE)  # fmt: skip
        stdin = feeder.stdout
        command.append("-")
    else:
        feeder, stdin = None, None
        command.append(str(path))
    started = time.perf_counter()
    process = subprocess.Popen(command, stdin=stdin, stderr=subprocess.PIPE, env=environment)
    if feeder is not None and feeder.stdout is not None:
        feeder.stdout.close()
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()))  # type: ignore[union-attr]
    reader.start()
    peak, disk, samples = 0, 0, 0
    while process.poll() is None:
        # memory every 5 ms (every 50 ms missed short peaks: the case of 17 events of 40
        # MiB read 586 to 587 MiB, against 657 to 659 at 5 ms), the scratch every 50 ms
        peak = max(peak, rss_anon_kib(process.pid))
        if samples % 10 == 0:
            disk = max(disk, tree_bytes(scratch))
        samples += 1
        time.sleep(0.005)
    seconds = time.perf_counter() - started
    reader.join()
    if feeder is not None:
        feeder.kill()
        feeder.wait()
    left = [str(p.relative_to(scratch)) for p in scratch.rglob("*")]
    lines = b"".join(errors).decode("utf-8", "replace").strip().splitlines()
    out = work / "out.csv"
    rows = len(out.read_bytes().splitlines()) - 1 if out.exists() else "-"
    out.unlink(missing_ok=True)
    return {
        "case": case.name,
        "input": f"{path.stat().st_size / MiB:.1f} MiB" if case.stdin is None else "stdin",
        "exit": process.returncode,
        "rows": rows,
        "said": (lines[-1] if lines else "")[:110],
        "seconds": round(seconds, 1),
        "peak MiB": round(peak / 1024),
        "scratch MiB": round(disk / MiB),
        "left": ", ".join(left) or "nothing",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the suite's sizes")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data" / "hostile")
    parser.add_argument("--only", help="run the cases whose name contains this")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    results = []
    for case in CASES:
        if options.only and options.only not in case.name:
            continue
        size = case.small if options.small else case.large
        path = options.out / (f"{size}-{case.file}" if case.file else "stdin")
        if case.file and not path.exists():
            case.make(path, size)
        results.append(run_case(case, path, size, options.out / "run"))
        print(results[-1], file=sys.stderr, flush=True)
    keys = list(results[0]) if results else []
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in results:
        print("| " + " | ".join(str(row[k]).replace("|", "\\|") for k in keys) + " |")


if __name__ == "__main__":
    main()
