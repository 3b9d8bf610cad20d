"""CI runs the benchmark script on tiny data: every contender agrees; nothing is timed."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

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


@pytest.mark.slow
def test_targets_smoke_every_contender_agrees_and_the_sweep_edge_cases_hold() -> None:
    """targets.py --smoke: the hunt (fixed --now and latest) and the sweep against DuckDB's
    queries in every format, rows checked equal; the sweep's edge cases (events exactly
    8 h apart, 8 h less 1 ms, in one millisecond, tied peaks, a sliding window, a null
    byte count) give exactly the expected rows."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "targets.py"), "--smoke"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "smoke: the sweep's 5 edge-case rows are the expected ones" in done.stderr
    assert "smoke hunt 3, smoke latest 3, smoke sweep 8." in done.stdout
    for tool in (
        "duckdb hunt",
        "duckdb latest",
        "duckdb sweep",
        "sweep floor",
        "decode floor",
        "pivot",
    ):
        assert f"| {tool} |" in done.stdout


def test_the_decode_floor_decodes_the_events_of_the_window_an_exact_hunt_must(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The NDJSON and gzip decode floor (a timed contender whose output nobody checks)
    decodes, on the benchmark's lines, the events of the window that hold the action and
    the OS family: counted here from each line's JSON. A filter that decoded nothing, or
    every line, would otherwise only look fast or slow."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from contenders import HUNT_FLOOR_NDJSON  # noqa: PLC0415
    from smoke_data import make_smoke_data  # noqa: PLC0415

    made, now = make_smoke_data(tmp_path)
    end = datetime.fromisoformat(now.replace("Z", "+00:00"))
    expected = 0
    for line in made["ndjson"].read_text().splitlines():
        doc = json.loads(line)
        moment = datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))
        expected += (
            doc["event"]["action"] == "disconnect_received"
            and doc["host"]["os"]["family"] == "windows"
            and moment > end - timedelta(hours=8)
        )
    assert expected > 100
    for fmt in ("ndjson", "gz"):
        namespace: dict[str, Any] = {}
        monkeypatch.setattr(sys, "argv", ["floor", str(made[fmt]), now])
        exec(HUNT_FLOOR_NDJSON, namespace)  # the benchmark's own program, as it runs
        assert namespace["decoded"]["lines"].item() == expected, fmt


def _measured(size: str, fmt: str, tool: str, seconds: list[float], peak_mib: int = 100,
              *, ours: bool = False) -> dict[str, object]:  # fmt: skip
    return {"size": size, "format": fmt, "tool": tool, "ours": ours, "seconds": seconds,
            "peak_kib": [peak_mib * 1024], "rows": None}  # fmt: skip


def test_targets_tabulate_judges_every_target_from_saved_measurements(tmp_path: Path) -> None:
    """--tabulate re-renders the table from saved measurements: best times, ratios, the
    Parquet difference, the start-up gap, the highest peak, and met or not."""
    m = [
        {**_measured("1GB", "ndjson", "hunt", [2.0, 1.0], ours=True), "cpu_seconds": [1.5, 1.2]},
        {**_measured("1GB", "ndjson", "duckdb hunt", [2.5]), "cpu_seconds": [3.0]},
        _measured("1GB", "ndjson", "stack floor", [0.5]),
        _measured("1GB", "ndjson", "decode floor", [1.0]),
        _measured("4GB", "ndjson", "hunt", [4.0], ours=True),
        _measured("4GB", "ndjson", "duckdb hunt", [10.0]),
        _measured("4GB", "ndjson", "stack floor", [2.0]),
        _measured("4GB", "ndjson", "decode floor", [3.0]),
        _measured("1GB", "gz", "hunt", [2.0], ours=True),
        _measured("1GB", "gz", "duckdb hunt", [2.5]),
        _measured("1GB", "gz", "decode floor", [1.5]),
        _measured("1GB", "parquet", "hunt", [1.0], ours=True),
        _measured("4GB", "parquet", "hunt", [1.5], 478, ours=True),  # 501 MB
        _measured("1GB", "parquet", "duckdb hunt", [0.5]),
        _measured("4GB", "parquet", "duckdb hunt", [1.0]),
        _measured("1GB", "parquet", "stack floor", [0.6]),
        _measured("4GB", "parquet", "stack floor", [0.8]),
        _measured("4GB", "ndjson", "hunt latest", [4.4], ours=True),
        _measured("small", "ndjson", "startup hunt", [0.45, 0.40]),
        _measured("small", "ndjson", "startup imports", [0.35]),
    ]
    saved = {
        "machine": {"sizes": ["1GB", "4GB"], "commit": "abc", "started": "now", "cores": 2,
                    "platform": "Linux", "python": "3.11", "polars": "1", "pyarrow": "2",
                    "duckdb": "3", "repeat": 2, "load_before": [1.0], "load_after": [2.0]},
        "measurements": m,
        "checks": {"1GB hunt": 3},
    }  # fmt: skip
    saved_path = tmp_path / "saved.json"
    saved_path.write_text(json.dumps(saved))
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "targets.py"), "--tabulate", str(saved_path),
         "--out", str(tmp_path / "table.md")],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[2] == (
        "| NDJSON, 1GB and 4GB | time / DuckDB time, fixed `--now` | at most 0.5 "
        "| 1GB 0.40, 4GB 0.40 | read: 1GB 0.20, 4GB 0.20; decode: 1GB 0.40, 4GB 0.30 | yes |"
    )
    # a target under the decode floor (the least an exact hunt must compute) is said so
    assert lines[3] == (
        "| gzip, 1GB and 4GB | same | at most 0.5 | 1GB 0.80 | decode: 1GB 0.60 "
        "| **no** (1GB: below the decode floor) |"
    )
    assert lines[4].endswith("| at most 1.15 | 4GB ndjson 1.10 |  | **no** |")  # 5 unmeasured
    assert lines[5] == (
        "| Parquet throughput | (time at large - time at small) / DuckDB's same | at most 0.8 "
        "| 1.00 (0.50 s / 0.50 s, 1GB to 4GB) | 0.40 (0.20 s) | **no** |"
    )
    assert lines[6].endswith("| at most 0.1 s | +0.05 s (0.40 s - 0.35 s) |  | yes |")
    assert lines[7].endswith("| at most 1.0 | not measured |  | not measured |")
    assert lines[8].endswith(
        "| at most 500 MB | 478 MiB = 501 MB (hunt, 4GB parquet) |  | **no** |"
    )
    assert (
        "Rows checked equal in every run, every format of a size (rows flagged): 1GB hunt 3."
        in (done.stdout)
    )
    assert "| hunt / DuckDB hunt | 1GB ndjson 0.40 |" in done.stdout  # CPU seconds
    assert "| 1GB | ndjson | hunt | 1.00 | 2.00, 1.00 | 1.20 | 100 |  |" in done.stdout
    assert "| 4GB | ndjson | hunt | 4.00 | 4.00 |  | 100 |  |" in done.stdout
    assert (tmp_path / "table.md").read_text() == done.stdout.removesuffix("\n")


def test_a_sweep_target_below_the_sweep_floor_is_said_so() -> None:
    """Where reading what the sweep must read (the sweep floor) already takes longer than
    DuckDB's whole window query, the sweep's met column says the target is below that
    floor, for that size and format only; a floor near the limit shows three places."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from tabulate_targets import target_rows  # noqa: PLC0415

    measured = [
        _measured("1GB", "parquet", "sweep", [2.4], ours=True),
        _measured("1GB", "parquet", "duckdb sweep", [1.0]),
        _measured("1GB", "parquet", "sweep floor", [1.07]),
        _measured("4GB", "parquet", "sweep", [2.9], ours=True),
        _measured("4GB", "parquet", "duckdb sweep", [1.0]),
        _measured("4GB", "parquet", "sweep floor", [0.998]),
        _measured("1GB", "ndjson", "sweep", [1.6], ours=True),
        _measured("1GB", "ndjson", "duckdb sweep", [1.0]),
        _measured("1GB", "ndjson", "sweep floor", [0.8]),
    ]
    saved = {"machine": {"sizes": ["1GB", "4GB"]}, "measurements": measured}
    (sweep,) = [row for row in target_rows(saved) if row[0].startswith("`sweep`")]
    assert sweep[3:] == (
        "1GB ndjson 1.60, 1GB parquet 2.40, 4GB parquet 2.90",
        "1GB ndjson 0.80, 1GB parquet 1.07, 4GB parquet 0.998",
        "**no** (1GB parquet: below the sweep floor)",
    )


def test_targets_are_also_shown_on_median_times_when_there_are_three_rounds() -> None:
    """One lucky round moves a best-time ratio: the medians' table shows the same targets
    on each contender's median (the targets stay judged on the best); with fewer than
    three rounds there is no such table."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from tabulate_targets import render  # noqa: PLC0415

    machine = {"sizes": ["1GB"], "commit": "abc", "started": "now", "cores": 2,
               "platform": "Linux", "python": "3.11", "polars": "1", "pyarrow": "2",
               "duckdb": "3", "repeat": 3, "load_before": [1.0]}  # fmt: skip
    measured = [
        _measured("1GB", "ndjson", "hunt", [1.0, 3.0, 3.0], ours=True),
        _measured("1GB", "ndjson", "duckdb hunt", [2.5, 2.5, 2.6]),
    ]
    text = render({"machine": machine, "measurements": measured, "checks": {}})
    assert "| NDJSON, 1GB | time / DuckDB time, fixed `--now` | at most 0.5 | 1GB 0.40 |" in text
    assert "| NDJSON, 1GB | 1GB 1.20 |  | **no** |" in text
    measured[0]["seconds"] = [1.0, 3.0]
    assert "median" not in render({"machine": machine, "measurements": measured, "checks": {}})


def _writer(name: str, check: str, text: str) -> object:
    """A contender that writes ``text`` as its rows file."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from contenders import Contender  # noqa: PLC0415

    script = "import sys; open(sys.argv[1], 'w').write(sys.argv[2])"
    return Contender(name, (sys.executable, "-c", script, "OUT", text), check)


def test_targets_stop_when_two_contenders_write_other_rows(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from targets import Mismatch, _Ledger, _run  # noqa: PLC0415

    ledger = _Ledger(out=tmp_path / "rows.csv")
    header = "total,eid,daddr,exe\n"
    where = {"size": "1GB", "fmt": "ndjson", "path": tmp_path / "x.ndjson"}
    _run(_writer("hunt", "hunt", header + "5,a,b,c\n"), ledger, **where)
    _run(_writer("duckdb hunt", "hunt", header + "5,a,b,c\n"), ledger, **where)
    with pytest.raises(Mismatch) as stopped:
        _run(_writer("duckdb hunt", "hunt", header + "6,a,b,c\n"), ledger, **where)
    assert str(stopped.value) == (
        f"duckdb hunt on {tmp_path / 'x.ndjson'} wrote other rows than hunt on "
        f"{tmp_path / 'x.ndjson'}:\n  only in duckdb hunt: [('6', 'a', 'b', 'c')]\n"
        "  only in the first: [('5', 'a', 'b', 'c')]"
    )
    assert ledger.timed[("1GB", "ndjson", "duckdb hunt")]["rows"] == 1


def test_targets_stop_when_a_check_flags_nothing(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from targets import _Ledger, _run  # noqa: PLC0415

    ledger = _Ledger(out=tmp_path / "rows.csv")
    with pytest.raises(SystemExit) as stopped:
        _run(_writer("sweep", "sweep", "peak_bytes\n"), ledger, size="1GB", fmt="parquet",
             path=tmp_path / "x.parquet")  # fmt: skip
    assert str(stopped.value) == (
        f"sweep on {tmp_path / 'x.parquet'} flagged nothing: checking its rows would prove nothing"
    )


def test_targets_put_the_tables_between_the_markers_of_results(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from targets import END, START, place_tables  # noqa: PLC0415

    results = tmp_path / "RESULTS.md"
    results.write_text(f"# R\n\nbefore\n{START}\nold table\n{END}\nafter\n")
    place_tables(results, "| new |\n")
    assert results.read_text() == f"# R\n\nbefore\n{START}\n| new |\n{END}\nafter\n"
    place_tables(results, "| newer |\n")  # again: the same place
    assert results.read_text() == f"# R\n\nbefore\n{START}\n| newer |\n{END}\nafter\n"
    results.write_text(f"# R\n{END}\n{START}\n")
    with pytest.raises(SystemExit) as stopped:
        place_tables(results, "| new |\n")
    assert str(stopped.value) == f"{results}: needs one {START} line, then one {END} line"
    assert results.read_text() == f"# R\n{END}\n{START}\n"  # untouched
