"""The hunt and the sweep on Spark: the inputs are read by Spark tasks (each runs this
package's readers and row predicate, :mod:`.tasks`), and the driver runs the same steps
after reading as the local engine (:func:`egress_offline.engine.run_hunt`,
:func:`egress_offline.sweep.run_sweep`: the window, the CIDR step, the groups, the
threshold, the diagnosis), so both engines return the same rows, counts and reports.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from egress_offline.engine import HuntResult
from egress_offline.engine import run_hunt as local_hunt
from egress_offline.engine.ingest import Ingest, Ingested
from egress_offline.engine.results import Counts
from egress_offline.engine.spill import Spill
from egress_offline.errors import EgressError, EngineError, UsageError
from egress_offline.readers import SAMPLING, FileReport, Inputs, ProgressHook
from egress_offline.readers.remote import S3A_SETTINGS, Store
from egress_offline.readers.timefloor import TimeFloor
from egress_offline.scratch import Scratch
from egress_offline.spark.session import spark_session
from egress_offline.spark.tasks import OUTPUT_SCHEMA, ReadJob, frame_of, read_partition
from egress_offline.spec import HuntSpec, RowFilters, SweepSpec
from egress_offline.sweep import SweepResult
from egress_offline.sweep import run_sweep as local_sweep

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row, SparkSession

__all__ = ["run_hunt", "run_sweep", "spark_ingest", "store_of"]

#: Files read by one task, at most: few files get a task each (the parallelism is the
#: files'), many small ones are read together (a task costs milliseconds to start).
_TASKS_PER_CORE = 4


def run_hunt(
    paths: Sequence[str],
    spec: HuntSpec | None = None,
    *,
    spark: SparkSession | None = None,
    master: str | None = None,
    hash_inputs: bool = False,
    progress: ProgressHook | None = None,
    scratch_limit: int | None = None,
    series: bool = False,
) -> HuntResult:
    """:func:`egress_offline.run_hunt` with the inputs read by Spark tasks. ``spark``: a
    session to run in (a notebook's; never stopped here); else the active one, or one
    made on ``master`` (default ``local[*]``) and stopped at the end."""
    return _in_session(
        local_hunt, paths, spec, spark, master, hash_inputs=hash_inputs, progress=progress,
        scratch_limit=scratch_limit, series=series,
    )  # fmt: skip


def run_sweep(
    paths: Sequence[str],
    spec: SweepSpec | None = None,
    *,
    spark: SparkSession | None = None,
    master: str | None = None,
    hash_inputs: bool = False,
    progress: ProgressHook | None = None,
    scratch_limit: int | None = None,
    series: bool = False,
) -> SweepResult:
    """:func:`egress_offline.run_sweep` with the inputs read by Spark tasks (``spark``
    and ``master`` as :func:`run_hunt` takes them)."""
    return _in_session(
        local_sweep, paths, spec, spark, master, hash_inputs=hash_inputs, progress=progress,
        scratch_limit=scratch_limit, series=series,
    )  # fmt: skip


def _in_session(run: Callable[..., Any], paths: Sequence[str], spec: Any,
                spark: SparkSession | None, master: str | None, **options: Any) -> Any:  # fmt: skip
    """``run`` (the local engine's hunt or sweep) with its inputs read in Spark tasks;
    URIs among ``paths`` read as the session's S3 settings say (:func:`store_of`)."""
    with spark_session(spark, master) as session:
        store = store_of(session)
        return run(list(paths), spec, ingest=spark_ingest(session), store=store, **options)


def store_of(session: SparkSession) -> Store:
    """How the session reaches S3: its Hadoop configuration's ``fs.s3a.*`` settings
    (``spark.hadoop.fs.s3a.*`` given to the session, or set on its Hadoop configuration
    in a notebook), for URIs to be read as the session would read them."""
    conf: dict[str, str] = {}
    try:
        hadoop = session.sparkContext._jsc.hadoopConfiguration()
        for name in S3A_SETTINGS:
            value = hadoop.get(f"fs.s3a.{name}")
            if value is not None:
                conf[f"fs.s3a.{name}"] = str(value)
    except Exception:  # a session without a JVM of its own here (Spark Connect)
        given = session.sparkContext.getConf().getAll()
        conf = {
            k.removeprefix("spark.hadoop."): v for k, v in given if k.startswith("spark.hadoop.")
        }
    return Store.from_hadoop(conf)


def spark_ingest(session: SparkSession) -> Ingest:
    """A :data:`~egress_offline.engine.ingest.Ingest` that reads in ``session``."""
    return partial(_ingest, session)


def _ingest(session: SparkSession, inputs: Inputs,
            spec: RowFilters, spill: Spill, counts: Counts, *, window_ms: int | None,
            floor_ms: int | None, count_stamps: bool, hash_inputs: bool,
            progress: ProgressHook | None, scratch: Scratch) -> Ingested:  # fmt: skip
    """Read ``inputs`` into ``spill`` in Spark tasks, as :func:`read_into` does locally."""
    files = inputs.files
    master = str(session.sparkContext.master)
    if not master.startswith("local") and any(file.name == "<stdin>" for file in files):
        raise UsageError(
            f"-: standard input is copied to the driver's disk, which executors of a "
            f"cluster ({master}) cannot read; save it to a file they can read (shared "
            "storage, or an s3a:// URI) and name that, or use a local master"
        )
    floor = TimeFloor(window_ms=window_ms, fixed_ms=floor_ms)
    # --now latest: the bound one local session starts from, told as the session tells it
    floor.sample(
        files, tell=None if progress is None else partial(progress, SAMPLING, 0, len(files))
    )
    job = ReadJob(
        files=tuple(files), spec=spec, window_ms=window_ms, floor_ms=floor_ms,
        count_stamps=count_stamps, hash_inputs=hash_inputs, seed_ms=floor.latest_ms,
        scratch_limit=scratch.limit,
    )  # fmt: skip
    cores = max(1, int(session.sparkContext.defaultParallelism))
    parts = max(1, min(len(files), cores * _TASKS_PER_CORE))
    task: Callable[[Any], Any] = partial(read_partition, job)
    read = session.range(0, len(files), 1, numPartitions=parts).mapInArrow(task, OUTPUT_SCHEMA)
    reports: dict[int, FileReport] = {}
    first: int | None = None
    last: int | None = None
    try:
        for number, kind, payload in _in_parallel(read):
            if kind == "rows":
                spill.add(frame_of(payload))
            elif kind == "stamps":
                spill.add_stamps(frame_of(payload).to_series())
            elif kind == "error":
                raise pickle.loads(payload)
            else:
                report, low, high = pickle.loads(payload)
                reports[number] = report
                first = low if first is None or (low is not None and low < first) else first
                last = high if last is None or (high is not None and high > last) else last
                if progress is not None:
                    progress(report.name, number + 1, len(files), 1.0, report.size)
    except EgressError:
        raise
    except Exception as exc:  # a task that failed for a reason that is not the input's
        raise EngineError(
            f"--engine spark: a Spark job failed ({_first_line(exc)}); check that the "
            "executors have egress-offline installed (see the README's Spark section) and "
            "can read the inputs"
        ) from exc
    ordered = [reports[n] for n in sorted(reports)]
    counts.records = sum(report.records for report in ordered)
    counts.malformed = sum(report.malformed for report in ordered)
    counts.valid = counts.records - counts.malformed
    return Ingested(ordered, first, last)


def _in_parallel(read: DataFrame) -> Iterator[Row]:
    """The rows of ``read``, every partition computed at once on the executors (as many
    tasks as there are cores), then brought to the driver one partition at a time: the
    driver holds one partition's output, never all of it. (``toLocalIterator`` alone runs
    a job per partition, one after the other: two cores busy, whatever the cluster.) The
    tasks' output waits on the executors' disks, and is dropped at the end."""
    from pyspark import StorageLevel  # noqa: PLC0415 - the extra is imported when used

    kept = read.persist(StorageLevel.DISK_ONLY)
    try:
        kept.count()  # one job: every task runs, in parallel
        yield from kept.toLocalIterator(prefetchPartitions=True)
    finally:
        kept.unpersist()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        if line.strip() and not line.startswith(("Traceback", "  ")):
            return line.strip()[:300]
    return type(exc).__name__
