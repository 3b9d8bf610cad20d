"""CI runs the benchmark script on tiny data: every contender agrees; nothing is timed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_smoke_all_contenders_flag_the_same_rows() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for fmt in ("ndjson", "gz", "parquet"):
        assert f"smoke 2MB {fmt}: all contenders flag the same 3 rows" in done.stderr
    assert " s " not in done.stderr  # no timings in smoke mode
