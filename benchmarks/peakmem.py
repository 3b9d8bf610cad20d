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


def rss_anon_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(command: list[str], *, terminal: bool = False) -> tuple[float, int, int]:
    """(seconds, peak RssAnon in KiB, exit code) of ``command``. With ``terminal``, its
    standard output and error are a pseudo-terminal of 120 columns (what it writes there is
    read and dropped), as when a user runs it in a terminal window."""
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
    while process.poll() is None:
        peak = max(peak, rss_anon_kib(process.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    if terminal:
        drain.join(timeout=5)
        os.close(controller)
    return seconds, peak, process.returncode


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
