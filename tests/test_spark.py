"""The Spark engine's own behaviour: the options, the errors when it cannot run, URIs, the
session it may not stop, and the README's commands (the parity with the local engine is
the behaviour suites', run on both engines by tests/conftest.py)."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from egress_offline import HuntSpec, SweepSpec
from egress_offline.cli import app
from egress_offline.errors import EngineError, InputError, UsageError
from egress_offline.spark import require_spark
from tests.helpers import GiB, event, ndjson

NOW = "2024-05-01T12:00:00Z"
NOW_TIME = datetime(2024, 5, 1, 12, tzinfo=UTC)


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_spark_master_without_the_spark_engine_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "a.ndjson"
    path.write_bytes(ndjson([event()]))
    result = _invoke("hunt", str(path), "--spark-master", "local[2]")
    assert result.exit_code == 2
    assert "--spark-master: only with --engine spark" in result.stderr


def test_an_unknown_engine_is_a_usage_error(tmp_path: Path) -> None:
    result = _invoke("hunt", str(tmp_path), "--engine", "duckdb")
    assert result.exit_code == 2
    assert "'local', 'spark'" in result.stderr or "local" in result.stderr


def test_without_pyspark_the_spark_engine_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)  # import fails
    path = tmp_path / "a.ndjson"
    path.write_bytes(ndjson([event()]))
    for command in ("hunt", "sweep"):
        result = _invoke(command, str(path), "--engine", "spark")
        assert result.exit_code == 3, result.stderr
        assert "needs PySpark, which is not installed" in result.stderr
        assert "pip install 'egress-offline[spark]'" in result.stderr
        assert "Traceback" not in result.stderr


def test_without_java_the_spark_engine_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyspark")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(EngineError, match=r"needs Java .* openjdk-17-jre-headless") as caught:
        require_spark()
    assert caught.value.exit_code == 3


def _exports(directory: Path) -> Path:
    """A directory of a gzip NDJSON export and a Parquet one, a group flagged in each."""
    directory.mkdir()
    first = [
        event(**{"source.bytes": 3 * GiB}),
        event(**{"process.entity_id": "small", "source.bytes": 10}),
    ]
    (directory / "a.ndjson.gz").write_bytes(gzip.compress(ndjson(first)))
    second = [event(**{"process.entity_id": "E9", "source.bytes": 2 * GiB})]
    source = directory / "b.ndjson"
    source.write_bytes(ndjson(second))
    pl.read_ndjson(source).write_parquet(directory / "b.parquet")
    source.unlink()
    return directory


@pytest.mark.slow
@pytest.mark.parametrize("command", ["hunt", "sweep"])
def test_the_readme_commands_give_the_local_engine_s_rows_and_report(
    spark: Any, tmp_path: Path, command: str
) -> None:
    exports = _exports(tmp_path / "exports")
    outputs = {}
    for engine in ("local", "spark"):
        rows, report = tmp_path / f"{engine}.csv", tmp_path / f"{engine}.json"
        when = ["--now", NOW] if command == "hunt" else []
        result = _invoke(command, str(exports), *when, "--engine", engine, "-q",
                         "-o", str(rows), "--report", str(report))  # fmt: skip
        assert result.exit_code == 0, result.stderr
        data = json.loads(report.read_text())
        for volatile in ("started", "elapsed_seconds", "outputs"):
            data.pop(volatile)
        outputs[engine] = (rows.read_text(), data)
    assert outputs["spark"] == outputs["local"]
    assert outputs["spark"][0].count("\n") == 3  # the header and two flagged groups
    assert spark.range(3).count() == 3  # the session passed in is still running


@pytest.mark.slow
def test_the_library_takes_a_session_and_never_stops_it(spark: Any, tmp_path: Path) -> None:
    from egress_offline.spark import run_hunt, run_sweep  # noqa: PLC0415

    exports = _exports(tmp_path / "exports")
    hunt = run_hunt([f"file://{exports}"], HuntSpec(now="latest"), spark=spark)
    assert hunt.counts.flagged == 2
    sweep = run_sweep([str(exports)], SweepSpec(), spark=spark)
    assert sweep.counts.flagged == 2
    assert spark.range(2).count() == 2


@pytest.mark.slow
def test_an_unreadable_file_is_the_local_engine_s_input_error(spark: Any, tmp_path: Path) -> None:
    from egress_offline.spark import run_hunt  # noqa: PLC0415

    exports = _exports(tmp_path / "exports")
    shutil.copy(exports / "b.parquet", exports / "c.parquet")
    data = (exports / "c.parquet").read_bytes()
    (exports / "c.parquet").write_bytes(data[:8] + b"\0" * (len(data) - 16) + data[-8:])
    with pytest.raises(InputError, match=r"c\.parquet"):
        run_hunt([str(exports)], HuntSpec(now="latest"), spark=spark)


@pytest.mark.slow
def test_a_session_that_cannot_start_is_an_engine_error_saying_why(tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    path = tmp_path / "a.ndjson"
    path.write_bytes(ndjson([event()]))
    exe = Path(sys.executable).with_name("egress-offline")
    done = subprocess.run(
        [str(exe), "hunt", str(path), "--engine", "spark", "--spark-master", "nowhere://x"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("Error: --engine spark: the Spark session could not start (")
    assert "Master must either be yarn or start with spark, k8s, or local" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_strict_raises_the_first_file_s_malformed_record_as_the_local_engine_does(
    spark: Any, tmp_path: Path
) -> None:
    from egress_offline import run_hunt as local_hunt  # noqa: PLC0415
    from egress_offline.errors import DataError  # noqa: PLC0415
    from egress_offline.spark import run_hunt  # noqa: PLC0415

    for name in ("a", "b", "c"):  # each damaged at a line of its own
        lines = [event()] * (3 + ord(name) - ord("a"))
        (tmp_path / f"{name}.ndjson").write_bytes(ndjson(lines) + b"{not json\n")
    messages = []
    for hunt in (local_hunt, partial(run_hunt, spark=spark)):
        with pytest.raises(DataError) as caught:
            hunt([str(tmp_path)], HuntSpec(now="latest", strict=True))
        messages.append((str(caught.value), caught.value.file, caught.value.position))
    assert messages[0] == messages[1]
    assert messages[0][1] is not None and messages[0][1].endswith("a.ndjson")


@pytest.mark.slow
def test_every_task_runs_at_once_not_a_partition_after_another(spark: Any, tmp_path: Path) -> None:
    from egress_offline.spark import run_hunt  # noqa: PLC0415

    exports = tmp_path / "exports"
    exports.mkdir()
    for number in range(6):
        flagged = event(**{"process.entity_id": f"E{number}", "source.bytes": 2 * GiB})
        (exports / f"{number}.ndjson").write_bytes(ndjson([flagged]))
    context = spark.sparkContext
    context.setJobGroup("parallel-test", "the hunt's jobs")
    try:
        result = run_hunt([str(exports)], HuntSpec(now=NOW_TIME), spark=spark)
    finally:
        context.setJobGroup("", "")
    assert result.counts.flagged == 6
    tracker = context.statusTracker()
    stages = [
        tracker.getStageInfo(stage)
        for job in tracker.getJobIdsForGroup("parallel-test")
        for stage in tracker.getJobInfo(job).stageIds
    ]
    # one stage ran a task per file (local[2]: 2 cores x 4 tasks a core >= 6 files), where
    # toLocalIterator alone runs a job of one task per partition
    assert max(stage.numTasks for stage in stages if stage is not None) == 6


def test_standard_input_on_a_cluster_is_refused_before_any_job(tmp_path: Path) -> None:
    from egress_offline.engine.results import Counts  # noqa: PLC0415
    from egress_offline.readers import InputFile, Inputs  # noqa: PLC0415
    from egress_offline.scratch import Scratch  # noqa: PLC0415
    from egress_offline.spark.run import spark_ingest  # noqa: PLC0415

    class Cluster:  # a session on a cluster, as far as the check looks
        class sparkContext:
            master = "spark://cluster:7077"

    spool = InputFile(tmp_path / "stdin", "<stdin>", 10, "ndjson", "none")
    with pytest.raises(UsageError, match=r"^-: standard input .* \(spark://cluster:7077\)"):
        spark_ingest(Cluster())(  # type: ignore[arg-type]
            Inputs([spool], []), HuntSpec(), None, Counts(), window_ms=None, floor_ms=None,
            count_stamps=False, hash_inputs=False, progress=None, scratch=Scratch(),
        )  # fmt: skip
