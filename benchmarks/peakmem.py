"""Run a command and report its wall time and peak anonymous memory (RssAnon).

RssAnon, not RSS: RSS also counts the page cache of memory-mapped files, which the kernel
can drop at will, so it overstates what a program really holds.

    python benchmarks/peakmem.py -- egress-offline hunt big.ndjson -q -o out.csv
"""

from __future__ import annotations

import subprocess
import sys
import time


def rss_anon_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(command: list[str]) -> tuple[float, int, int]:
    """(seconds, peak RssAnon in KiB, exit code) of ``command``."""
    started = time.perf_counter()
    process = subprocess.Popen(command)
    peak = 0
    while process.poll() is None:
        peak = max(peak, rss_anon_kib(process.pid))
        time.sleep(0.02)
    return time.perf_counter() - started, peak, process.returncode


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    seconds, peak, code = measure(args)
    print(f"wall {seconds:.2f} s  peak RssAnon {peak / 1024:.0f} MiB  exit {code}", file=sys.stderr)
    sys.exit(code)
