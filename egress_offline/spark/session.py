"""The Spark session the engine runs in: the caller's own (a notebook's), the active one,
or one made here for the run and stopped after it. A session this module did not make is
never stopped. Without PySpark or Java, an :class:`~egress_offline.errors.EngineError`
says what to install."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from egress_offline.errors import EngineError

if TYPE_CHECKING:  # pyspark is an optional dependency
    from pyspark.sql import SparkSession

__all__ = ["DEFAULT_MASTER", "INSTALL_HINT", "require_spark", "spark_session"]

DEFAULT_MASTER: Final = "local[*]"
INSTALL_HINT: Final = (
    "install the extra: pip install 'egress-offline[spark]' (PySpark 4 and Java 17 or "
    "later; on Debian: apt-get install openjdk-17-jre-headless)"
)

#: Settings of a session made here (a session passed in is used as it is configured).
_SETTINGS: Final = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # a Python worker per core, reused by every task: the package is imported once
    "spark.python.worker.reuse": "true",
    # the driver takes the candidate rows partition by partition (toLocalIterator)
    "spark.driver.maxResultSize": "0",
}


def require_spark() -> None:
    """Raise :class:`EngineError` unless PySpark can be imported and Java found."""
    try:
        importlib.import_module("pyspark.sql")
    except ImportError as exc:
        raise EngineError(
            f"--engine spark needs PySpark, which is not installed; {INSTALL_HINT}"
        ) from exc
    if not _java():
        raise EngineError(
            "--engine spark needs Java (17 or later), and none was found (no java on PATH, "
            f"no JAVA_HOME); {INSTALL_HINT}"
        )


def _java() -> bool:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return True
    return shutil.which("java") is not None


@contextmanager
def _jvm_stderr() -> Iterator[list[str]]:
    """While a session starts, the standard error the JVM inherits is a file of its own:
    what the JVM says at start (the JDK's note on incubator modules, Spark's on its log
    level) is kept from the user's terminal, and is given in the list when it cannot
    start. The file is unlinked at once; the JVM keeps it (and writes only errors to it,
    at the log level set)."""
    said: list[str] = []
    with tempfile.TemporaryFile() as kept:
        saved = os.dup(2)
        os.dup2(kept.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            kept.seek(0)
            said += kept.read(1 << 16).decode("utf-8", "replace").splitlines()


@contextmanager
def spark_session(spark: SparkSession | None = None, master: str | None = None
                  ) -> Iterator[SparkSession]:  # fmt: skip
    """``spark`` when given; else the process's active session (a process has one at
    most: ``master`` is then not asked for); else a new one on ``master`` (default
    :data:`DEFAULT_MASTER`), stopped on exit. Only a session made here is stopped."""
    if spark is not None:
        yield spark
        return
    require_spark()
    SparkSession = importlib.import_module("pyspark.sql").SparkSession
    active = SparkSession.getActiveSession()
    if active is not None:  # this process's session (one a caller made): used, not stopped
        yield active
        return
    # the executors' Python is this one, where this package is installed (on a cluster,
    # set spark.pyspark.python, or ship a packed environment: see the README)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder: Any = SparkSession.builder.master(master or DEFAULT_MASTER).appName("egress-offline")
    for key, value in _SETTINGS.items():
        builder = builder.config(key, value)
    # the driver's JVM is started with these, before any setting of the builder applies
    quiet = resources.files("egress_offline.spark") / "log4j2.properties"
    os.environ.setdefault(
        "PYSPARK_SUBMIT_ARGS",
        f'--driver-java-options "-Dlog4j.configurationFile=file:{quiet}" pyspark-shell',
    )
    try:
        with _jvm_stderr() as said:
            session = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start: no Java, a bad master URL
        lines = [*said, *str(exc).strip().splitlines()] or [type(exc).__name__]
        first = next((line for line in lines if "ERROR" in line or "Exception" in line), lines[0])
        raise EngineError(
            f"--engine spark: the Spark session could not start ({first.strip()[:300]}); check "
            f"--spark-master and Java, or {INSTALL_HINT}"
        ) from exc
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()
