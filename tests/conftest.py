"""Fixtures shared by the suites: the behaviour suites run through both NDJSON readers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

#: Suites whose every test runs twice: through the fast NDJSON reader, and through the
#: careful one alone (as if the fast reader gave up on every file at once).
BOTH_READERS = {"test_layouts", "test_semantics", "test_exports", "test_numbers"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fast_reader: about the fast NDJSON reader itself; not run again carefully"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if module in BOTH_READERS and not metafunc.definition.get_closest_marker("fast_reader"):
        metafunc.parametrize("ndjson_reader", ["fast", "careful"], indirect=True)


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
