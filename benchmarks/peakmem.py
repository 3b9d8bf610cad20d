"""Run a command and report its wall time and peak anonymous memory (RssAnon).

RssAnon, not RSS: RSS also counts the page cache of memory-mapped files, which the kernel
can drop at will, so it overstates what a program really holds.

    python benchmarks/peakmem.py -- egress-offline hunt big.ndjson -q -o out.csv
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
import time
from dataclasses import dataclass


def rss_anon_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass(frozen=True)
class Measured:
    """One run: wall seconds, peak RssAnon in KiB, exit code, and the CPU seconds (user and
    system) of the command and the children it waited for: less moved by other jobs on the
    machine than the wall time."""

    seconds: float
    peak_kib: int
    code: int
    cpu_seconds: float


def measure(command: list[str], *, terminal: bool = False) -> tuple[float, int, int]:
    """(seconds, peak RssAnon in KiB, exit code) of ``command``. With ``terminal``, its
    standard output and error are a pseudo-terminal of 120 columns (what it writes there is
    read and dropped), as when a user runs it in a terminal window."""
    run = measure_run(command, terminal=terminal)
    return run.seconds, run.peak_kib, run.code


def measure_run(command: list[str], *, terminal: bool = False) -> Measured:
    """:func:`measure`, with the CPU time too."""
    if terminal:
        controller, tty = pty.openpty()
        fcntl.ioctl(tty, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        drain = threading.Thread(target=_drain, args=(controller,), daemon=True)
        drain.start()
    started = time.perf_counter()
    if terminal:
        process = subprocess.Popen(command, stdout=tty, stderr=tty)
        os.close(tty)
    else:
        process = subprocess.Popen(command)
    peak = 0
    while True:  # wait4, not poll: it gives the finished command's resource usage
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, rss_anon_kib(process.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if terminal:
        drain.join(timeout=5)
        os.close(controller)
    return Measured(seconds, peak, process.returncode, usage.ru_utime + usage.ru_stime)


def _drain(controller: int) -> None:
    """Read what the command writes to its terminal until it closes it."""
    while True:
        try:
            if not os.read(controller, 65536):
                return
        except OSError:  # EIO: the command's side of the terminal is closed
            return


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    seconds, peak, code = measure(args)
    print(f"wall {seconds:.2f} s  peak RssAnon {peak / 1024:.0f} MiB  exit {code}", file=sys.stderr)
    sys.exit(code)
