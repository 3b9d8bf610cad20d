"""The ``egress-offline`` command (typer): ``app`` holds the commands, ``run`` is the
console script's entry point.

Before Polars, pyarrow and NumPy are loaded, the process's native libraries are set up
(a value the user has set is kept):

- Polars' allocator (jemalloc) keeps freed memory for ten seconds by default, so a run
  that decodes much at once (a file whose every line matches: 10 GB of events in 1 MB of
  zstd) held 130 MiB it had freed, and peaked at 560 MiB. Returned after 100 ms, the peak
  is under 500 MiB and the benchmark hunt no slower (0 ms: twice as slow).
- NumPy's OpenBLAS (loaded with pyarrow and Polars; the tool does no linear algebra)
  starts a thread per core whose idle loop spins: 4% of a 4 GB Parquet hunt's CPU
  samples, on a core the readers need. One thread, none spinning.
- pyarrow's default allocator (mimalloc) hands freed pages back at once, and the kernel
  zeroes them again at the next read: 15% of the same hunt's CPU samples. Its jemalloc
  (in the Linux wheels) keeps them a while: peak memory 370 to 280 MiB, CPU 5 to 20%
  less (measured under noise). Linux only: another platform's wheel may lack it, and
  Arrow would print a warning.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:100,muzzy_decay_ms:0")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
if sys.platform.startswith("linux"):
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

from egress_offline.cli.commands import app, run
from egress_offline.cli.progress import ProgressDisplay, shortened

__all__ = ["ProgressDisplay", "app", "run", "shortened"]
