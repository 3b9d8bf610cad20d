"""The ``egress-offline`` command (typer): ``app`` holds the commands, ``run`` is the
console script's entry point.

Before Polars is loaded: its allocator (jemalloc) keeps freed memory for ten seconds by
default, so a run that decodes much at once (a file whose every line matches: 10 GB of
events in 1 MB of zstd) held 130 MiB it had freed, and peaked at 560 MiB. Returned after
100 ms, the peak is under 500 MiB and the benchmark hunt no slower (0 ms: twice as slow).
A value the user has set is kept."""

from __future__ import annotations

import os

os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:100,muzzy_decay_ms:0")

from egress_offline.cli.commands import app, run
from egress_offline.cli.progress import ProgressDisplay, shortened

__all__ = ["ProgressDisplay", "app", "run", "shortened"]
