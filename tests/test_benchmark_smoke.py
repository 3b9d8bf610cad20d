"""CI runs the benchmark script on tiny data: every contender agrees; nothing is timed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_smoke_all_contenders_flag_the_same_rows() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for fmt in ("ndjson", "gz", "parquet"):
        assert f"smoke 2MB {fmt}: all contenders flag the same 3 rows" in done.stderr
    assert " s " not in done.stderr  # no timings in smoke mode


def test_the_generator_writes_sparse_exports_on_request(tmp_path: Path) -> None:
    """--sparse N: one in N of the disconnect_received events stays one (about 45% of
    the events otherwise), the planted exfiltration aside."""
    for sparse in (0, 100):
        done = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "generate.py"), "--size", "2MB",
             "--formats", "ndjson", "--sparse", str(sparse), "--out", str(tmp_path)],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    dense = (tmp_path / "endpoint-2mb-s7.ndjson").read_text().splitlines()
    sparse_lines = (tmp_path / "endpoint-2mb-s7-sparse100.ndjson").read_text().splitlines()
    planted = ('"ip":"185.220.101.7"', '"ip":"::ffff:45.77.12.9"', '"ip":"2a05:d014:e00::17"')
    share = []
    for lines in (dense, sparse_lines):
        others = [line for line in lines if not any(ip in line for ip in planted)]
        share.append(sum('"action":"disconnect_received"' in line for line in others) / len(others))
    assert 0.40 < share[0] < 0.50
    assert share[1] < 0.02
