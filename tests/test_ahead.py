"""The line scan's pieces pulled ahead on a thread (``readers/ahead.py``): every piece in
order, failures raised as themselves after the pieces before them, what waits bounded by
its bytes, and no thread or query left behind when the reader stops early. And a scan
that ends before its file does (Polars' ``collect_batches`` ends quietly on a panic) is
never taken for the whole file."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from egress_offline import HuntSpec, run_hunt
from egress_offline.readers import ndjson as ndjson_reader
from egress_offline.readers import tuning
from egress_offline.readers.ahead import PulledAhead
from tests.helpers import NOW, GiB, event

_THREAD = "egress-offline-scan-ahead"


def _pieces(count: int, pulled: list[int], closed: threading.Event,
            fail: BaseException | None = None) -> Iterator[pl.DataFrame]:  # fmt: skip
    try:
        for number in range(count):
            pulled.append(number)
            yield pl.DataFrame({"n": [number] * 1_000})
        if fail is not None:
            raise fail
    finally:
        closed.set()


def _no_thread_left() -> bool:
    return not any(thread.name == _THREAD for thread in threading.enumerate())


def test_every_piece_comes_in_the_query_order() -> None:
    pulled: list[int] = []
    closed = threading.Event()
    with PulledAhead(_pieces(50, pulled, closed), 1) as pieces:
        taken = [int(piece.item(0, 0)) for piece in pieces]
    assert taken == list(range(50))
    assert closed.is_set() and _no_thread_left()


class _Panic(BaseException):
    """Like Polars' PanicException: not an Exception."""


@pytest.mark.parametrize("failure", [pl.exceptions.ComputeError("the scan broke"), _Panic("x")])
def test_a_failure_is_raised_as_itself_after_the_pieces_before_it(failure: BaseException) -> None:
    pulled: list[int] = []
    taken: list[int] = []
    ahead = PulledAhead(_pieces(3, pulled, threading.Event(), failure), 1 << 20)
    with pytest.raises(type(failure)) as raised, ahead as pieces:
        for piece in pieces:
            taken.append(int(piece.item(0, 0)))
    assert raised.value is failure
    assert taken == [0, 1, 2]
    assert _no_thread_left()


def test_a_bound_of_nothing_still_passes_every_piece() -> None:
    pulled: list[int] = []
    with PulledAhead(_pieces(5, pulled, threading.Event()), 0) as pieces:
        assert [int(piece.item(0, 0)) for piece in pieces] == list(range(5))


def test_what_waits_is_bounded_by_its_bytes() -> None:
    pulled: list[int] = []
    size = pl.DataFrame({"n": [0] * 1_000}).estimated_size()
    with PulledAhead(_pieces(200, pulled, threading.Event()), 3 * size) as pieces:
        next(pieces)
        time.sleep(0.3)  # unbounded, the thread would have taken all 200 by now
        # the one taken, three waiting, and at most one being made
        assert len(pulled) <= 5
        rest = sum(1 for _ in pieces)
    assert rest == 199


@pytest.mark.parametrize("how", ["break", "error"])
def test_leaving_early_stops_the_thread_and_drops_the_query(how: str) -> None:
    pulled: list[int] = []
    closed = threading.Event()

    def read() -> None:
        with PulledAhead(_pieces(10_000, pulled, closed), 1 << 20) as pieces:
            for _piece in pieces:
                if how == "error":
                    raise KeyError("the reader's own error")
                break

    if how == "error":
        with pytest.raises(KeyError):
            read()
    else:
        read()
    assert closed.is_set()  # the query's generator was closed on its thread
    assert _no_thread_left()
    assert len(pulled) < 10_000


def _export(path: Path, lines: list[bytes], end: bytes = b"\n") -> Path:
    text = end.join(lines) + end
    path.write_bytes(gzip.compress(text) if path.suffix == ".gz" else text)
    return path


def _docs(count: int) -> list[bytes]:
    return [json.dumps(event(**{"process.entity_id": f"E{i % 3}"})).encode() for i in range(count)]


def _hunt(path: Path) -> Any:
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    totals = sorted((r["process.entity_id"], r["total_bytes_out"]) for r in result.rows.to_dicts())
    return [f.reader for f in result.files], result.counts.records, totals


@pytest.mark.parametrize("name", ["x.ndjson", "x.ndjson.gz"])
def test_a_scan_that_ends_before_its_file_is_read_again_carefully(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The scan is cut short after 100 of 1,000 lines, as a panic in Polars' streaming
    engine cuts ``collect_batches``: the file is read again by the careful reader, and
    every line counts."""
    monkeypatch.setattr(tuning, "SMALL_TEXT", 0)  # the file's own scan
    scan = ndjson_reader.line_scan
    monkeypatch.setattr(ndjson_reader, "line_scan", lambda *args: scan(*args).head(100))
    path = _export(tmp_path / name, _docs(1_000))
    assert _hunt(path) == (["careful"], 1_000, [("E0", 334 * GiB), ("E1", 333 * GiB),
                                                 ("E2", 333 * GiB)])  # fmt: skip


def test_a_panic_of_polars_in_the_fast_reader_has_the_file_read_carefully(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A panic is not an ``Exception``: it once went past the fallback to a traceback."""
    monkeypatch.setattr(tuning, "SMALL_TEXT", 0)
    real = ndjson_reader._batches

    def panicking(*args: Any) -> Iterator[Any]:
        batches = real(*args)
        yield next(batches)
        raise pl.exceptions.PanicException("index out of bounds")

    monkeypatch.setattr(tuning, "BATCH_TEXT", 4096)
    monkeypatch.setattr(ndjson_reader, "_batches", panicking)
    path = _export(tmp_path / "x.ndjson", _docs(300))
    assert _hunt(path) == (["careful"], 300, [("E0", 100 * GiB), ("E1", 100 * GiB),
                                               ("E2", 100 * GiB)])  # fmt: skip


@pytest.mark.parametrize(
    ("end", "last_end", "blank"),
    [(b"\n", True, False), (b"\r\n", True, True), (b"\n", False, True), (b"\r\n", False, False)],
)
def test_a_whole_scan_is_taken_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, end: bytes, last_end: bool, blank: bool
) -> None:
    """Line ends of ``\\r\\n`` (the scan drops the ``\\r``), blank lines, a byte order
    mark and a last line without an end: the scan's lines cover the file, no second read."""
    monkeypatch.setattr(tuning, "SMALL_TEXT", 0)
    lines = _docs(300)
    lines[0] = "\ufeff".encode() + lines[0]
    if blank:
        lines[10:10] = [b"", b"  "]
    text = end.join(lines) + (end if last_end else b"")
    path = tmp_path / "x.ndjson"
    path.write_bytes(text)
    readers, _records, totals = _hunt(path)
    assert readers == ["fast"]
    assert totals == [("E0", 100 * GiB), ("E1", 100 * GiB), ("E2", 100 * GiB)]
