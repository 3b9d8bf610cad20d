"""The Spark engine (issue 21) against the local engine, on the same files, in one process.

    pip install '.[bench,spark]'
    python benchmarks/spark_bench.py --size 1GB --pieces 4 --masters 'local[1],local[2]'

The benchmark's NDJSON file (``benchmarks/generate.py``, seed 7) is cut into ``--pieces``
line-aligned files in a temporary directory (the Spark engine's parallelism is the
files': one file is one task). For each master a session is started (its start is timed
and reported apart), one hunt runs to start the Python workers (reported apart too), then
``--repeat`` rounds each run the local engine's hunt and the Spark engine's, in turn, in
this process: the best of each is reported, and the rows are checked to be the same.
Both hunts use ``--now`` the data's export time, as ``run.py`` does; neither pays for
starting Python or importing the stack.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import ensure

from egress_offline import HuntSpec, run_hunt
from egress_offline.spark import run_hunt as spark_hunt
from egress_offline.spark import spark_session


def cut(source: Path, pieces: int, directory: Path) -> list[Path]:
    """``source`` cut into ``pieces`` files at line ends, about equal in size."""
    size = source.stat().st_size
    paths = []
    with source.open("rb") as handle:
        for number in range(pieces):
            path = directory / f"piece-{number:03d}.ndjson"
            end = size if number == pieces - 1 else (number + 1) * size // pieces
            with path.open("wb") as out:
                while handle.tell() < end:
                    out.write(handle.readline())
            paths.append(path)
    return paths


def timed(run: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1GB")
    parser.add_argument("--pieces", type=int, default=4)
    parser.add_argument("--masters", default="local[1],local[2]")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).parent / "data", help="generated data"
    )
    args = parser.parse_args()
    found, meta = ensure(args.data, args.size, {"ndjson"})
    data = found["ndjson"]
    spec = HuntSpec(now=datetime.fromisoformat(meta["now"].replace("Z", "+00:00")))
    rows: list[dict[str, Any]] = []
    directory = Path(tempfile.mkdtemp(prefix="spark-bench-"))
    try:
        paths = [str(p) for p in cut(Path(data), args.pieces, directory)]
        for master in args.masters.split(","):
            started = time.perf_counter()
            with spark_session(master=master) as session:
                start_s = time.perf_counter() - started
                first_s, _ = timed(lambda s=session: spark_hunt(paths, spec, spark=s))
                local, spark = [], []
                for _ in range(args.repeat):
                    seconds, here = timed(lambda: run_hunt(paths, spec))
                    local.append(seconds)
                    seconds, there = timed(lambda s=session: spark_hunt(paths, spec, spark=s))
                    spark.append(seconds)
                    if not here.rows.equals(there.rows) or here.counts != there.counts:
                        raise SystemExit(f"{master}: the engines' rows or counts differ")
            row = {
                "master": master,
                "files": args.pieces,
                "session_start_s": round(start_s, 2),
                "first_hunt_s": round(first_s, 2),
                "local_best_s": round(min(local), 2),
                "spark_best_s": round(min(spark), 2),
                "ratio": round(min(spark) / min(local), 2),
                "flagged": there.counts.flagged,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print("\n| master | files | session start | first hunt | local engine | Spark engine | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['master']} | {r['files']} | {r['session_start_s']} s | {r['first_hunt_s']} s"
            f" | {r['local_best_s']} s | {r['spark_best_s']} s | {r['ratio']}x |"
        )


if __name__ == "__main__":
    main()
