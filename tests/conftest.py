"""Fixtures shared by the suites: the behaviour suites run through both NDJSON readers,
and on both engines (local and Spark)."""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

#: Suites whose every test runs twice: through the fast NDJSON reader, and through the
#: careful one alone (as if the fast reader gave up on every file at once).
BOTH_READERS = {"test_layouts", "test_semantics", "test_exports", "test_numbers"}
#: Suites whose every test runs on both engines: the local one, and Spark (the inputs read
#: by Spark tasks, in one local[2] session shared by the whole run; marked slow). Tests
#: that patch the local engine's internals (which Spark's Python workers do not see) run
#: on it only: those marked ``local_engine``, and those that take ``monkeypatch``. Without PySpark or Java the Spark runs
#: are skipped, saying why; under ``CI=true`` they fail.
BOTH_ENGINES = BOTH_READERS | {
    "test_sweep",
    "test_time_skipping",
    "test_diagnosis",
    "test_errors",
    "test_properties",
    "test_sample_data",
    "test_html",
    "test_series",
    "test_cli",
    "test_fuzz",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fast_reader: about the fast NDJSON reader itself; not run again carefully"
    )
    config.addinivalue_line(
        "markers", "local_engine: patches the local engine's internals; not run on Spark"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    marked = metafunc.definition.get_closest_marker
    readers = ["fast"]
    if module in BOTH_READERS and not marked("fast_reader"):
        readers.append("careful")
    engines = ["local"]
    patches = "monkeypatch" in inspect.signature(metafunc.function).parameters
    if module in BOTH_ENGINES and not marked("local_engine") and not patches:
        engines.append("spark")
    # the careful reader is forced by a patch in this process: on the local engine only
    runs = [(reader, "local") for reader in readers]
    runs += [pytest.param("fast", "spark", marks=pytest.mark.slow) for _ in engines[1:]]
    if len(runs) > 1:
        metafunc.parametrize(("ndjson_reader", "engine"), runs, indirect=True)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark session for the whole run (skipped, with the reason, without
    PySpark or Java; a failure under ``CI=true``)."""
    from egress_offline.errors import EngineError  # noqa: PLC0415
    from egress_offline.spark import require_spark, spark_session  # noqa: PLC0415

    try:
        require_spark()
    except EngineError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the Spark engine: {exc}")
        pytest.skip(f"the Spark engine cannot run here: {exc}")
    with spark_session(master="local[2]") as session:
        yield session


@pytest.fixture(autouse=True)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``spark``: the hunt and the sweep read their inputs in Spark tasks (only where the
    suite is parametrized so, see :func:`pytest_generate_tests`); else ``local``."""
    chosen = getattr(request, "param", "local")
    if chosen == "spark":
        from egress_offline.spark.run import spark_ingest  # noqa: PLC0415

        ingest = spark_ingest(request.getfixturevalue("spark"))
        for name in ("egress_offline.engine.hunt", "egress_offline.sweep"):
            monkeypatch.setattr(importlib.import_module(name), "read_into", ingest)
        # a Spark job per example: property tests run fewer of them on Spark
        test = request.function
        chosen_settings = getattr(test, "_hypothesis_internal_use_settings", None)
        if chosen_settings is not None:
            fewer = settings(chosen_settings, max_examples=min(chosen_settings.max_examples, 12))
            monkeypatch.setattr(test, "_hypothesis_internal_use_settings", fewer)
    yield chosen


@pytest.fixture(autouse=True)
def _no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables are as wide as the test says: ``COLUMNS`` from the shell that runs the
    suite would change them."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture(autouse=True)
def ndjson_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``careful``: every NDJSON file is read by the careful reader (only where the
    suite is parametrized so, see :func:`pytest_generate_tests`); else ``fast``."""
    chosen = getattr(request, "param", "fast")
    if chosen == "careful":
        from egress_offline.readers import session  # noqa: PLC0415
        from egress_offline.readers.ndjson import FastReaderGaveUp  # noqa: PLC0415

        def gives_up(*_args: Any, **_kwargs: Any) -> Iterator[Any]:
            raise FastReaderGaveUp("told to, to test the careful reader")
            yield  # a generator, as the fast reader is

        monkeypatch.setattr(session, "read_ndjson_fast", gives_up)
    yield chosen
