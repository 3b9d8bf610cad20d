"""The line scan's pieces pulled ahead on a thread (``readers/ahead.py``): every piece in
order, failures raised as themselves after the pieces before them, what waits bounded by
its bytes, and no thread or query left behind when the reader stops early. And a scan
that ends before its file does (as Polars' ``collect_batches`` did on a panic) is never
taken for the whole file."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import polars as pl
import pytest

from egress_offline import HuntSpec, run_hunt
from egress_offline.readers import ndjson as ndjson_reader
from egress_offline.readers import tuning
from egress_offline.readers.ahead import THREAD_NAME, PulledAhead
from tests.helpers import NOW, GiB, event


class _Query:
    """Stands for a LazyFrame: its ``sink_batches`` hands on ``count`` pieces of 1,000
    rows, numbered, then raises ``fail``, if any."""

    def __init__(self, count: int, fail: BaseException | None = None) -> None:
        self.count, self.fail = count, fail
        self.made: list[int] = []
        self.refused = self.ended = False

    def sink_batches(self, function: Any, **_: Any) -> None:
        try:
            for number in range(self.count):
                self.made.append(number)
                if function(pl.DataFrame({"n": [number] * 1_000})):
                    self.refused = True
                    return
            if self.fail is not None:
                raise self.fail
        finally:
            self.ended = True


def _pulled(query: _Query, most: int) -> PulledAhead:
    return PulledAhead(cast(pl.LazyFrame, query), most)


def _no_thread_left() -> bool:
    return not any(thread.name == THREAD_NAME for thread in threading.enumerate())


def test_every_piece_comes_in_the_query_order() -> None:
    query = pl.LazyFrame({"n": range(100_000)})
    with PulledAhead(query, 1, chunk_size=1_000) as pieces:
        taken = pl.concat(list(pieces)).get_column("n").to_list()
    assert taken == list(range(100_000))
    assert _no_thread_left()


class _Panic(BaseException):
    """Like Polars' PanicException: not an Exception."""


@pytest.mark.parametrize("failure", [pl.exceptions.ComputeError("the scan broke"), _Panic("x")])
def test_a_failure_is_raised_as_itself_after_the_pieces_before_it(failure: BaseException) -> None:
    taken: list[int] = []
    with pytest.raises(type(failure)) as raised, _pulled(_Query(3, failure), 1 << 20) as pieces:
        for piece in pieces:
            taken.append(int(piece.item(0, 0)))
    assert raised.value is failure
    assert taken == [0, 1, 2]
    assert _no_thread_left()


def _panicking() -> pl.LazyFrame:
    """A query that panics in Polars 2.1's streaming engine (a reduction of a column
    whose type its batches do not have)."""
    text = pl.LazyFrame({"a": range(200_000)}).map_batches(
        lambda frame: frame.select(pl.col("a").cast(pl.String)),
        validate_output_schema=False,
        streamable=True,
    )
    return text.select(pl.col("a").sum())


def test_a_panic_of_polars_reaches_the_reader() -> None:
    """Under ``collect_batches`` the same panic ends the pieces quietly."""
    try:
        _panicking().collect(engine="streaming")
    except pl.exceptions.PanicException:
        pass
    else:
        pytest.skip("this Polars does not panic on the query")
    with pytest.raises(pl.exceptions.PanicException), PulledAhead(_panicking(), 1) as pieces:
        list(pieces)
    assert _no_thread_left()


def test_the_query_streams_whatever_the_engine_affinity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-memory engine would make the whole result before its first piece (the
    bound then bounds nothing): the first piece comes before the query has read it all."""
    monkeypatch.setenv(tuning.READ_SIZE_VAR, str(64 << 10))  # many reads of the file
    path = tmp_path / "lines.txt"
    path.write_bytes(b"".join(b"%d\n" % number for number in range(400_000)))
    steps: list[str] = []

    def step(frame: pl.DataFrame) -> pl.DataFrame:
        steps.append("read")
        return frame

    query = pl.scan_lines(path).map_batches(step, streamable=True)
    with pl.Config(engine_affinity="in-memory"), PulledAhead(query, 1, chunk_size=1_000) as pieces:
        next(pieces)
        steps.append("piece")
        rest = sum(piece.height for piece in pieces)
    assert rest == 399_000
    assert steps.count("read") > 1
    assert steps.index("piece") < len(steps) - 1


def test_a_read_left_open_is_stopped_when_the_interpreter_exits(tmp_path: Path) -> None:
    """A generator never closed (held in a cycle): Polars' thread waiting to hand on a
    piece took the interpreter back after it was gone, and the process aborted."""
    path = tmp_path / "lines.txt"
    path.write_bytes(b"".join(b"%d\n" % number for number in range(400_000)))
    script = (
        "import polars as pl\n"
        "from egress_offline.readers.ahead import PulledAhead\n"
        "def read():\n"
        f"    with PulledAhead(pl.scan_lines({str(path)!r}), 1, chunk_size=100) as pieces:\n"
        "        yield from pieces\n"
        "reading = read()\n"
        "next(reading)\n"
        "kept = [reading]\n"
        "kept.append(kept)\n"
    )
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr.decode()[-500:]


def test_a_bound_of_nothing_still_passes_every_piece() -> None:
    with _pulled(_Query(5), 0) as pieces:
        assert [int(piece.item(0, 0)) for piece in pieces] == list(range(5))


def test_what_waits_is_bounded_by_its_bytes() -> None:
    query = _Query(200)
    size = pl.DataFrame({"n": [0] * 1_000}).estimated_size()
    with _pulled(query, 3 * size) as pieces:
        next(pieces)
        time.sleep(0.3)  # unbounded, the thread would have made all 200 by now
        # the one taken, three waiting, and one made that waits for room
        assert len(query.made) <= 5
        rest = sum(1 for _ in pieces)
    assert rest == 199


@pytest.mark.parametrize("how", ["break", "error"])
def test_leaving_early_stops_the_query_and_its_thread(how: str) -> None:
    query = _Query(10_000)

    def read() -> None:
        with _pulled(query, 1 << 20) as pieces:
            for _piece in pieces:
                if how == "error":
                    raise KeyError("the reader's own error")
                break

    if how == "error":
        with pytest.raises(KeyError):
            read()
    else:
        read()
    assert query.refused and query.ended  # a piece refused: the query stopped
    assert _no_thread_left()
    assert len(query.made) < 10_000


def _export(path: Path, lines: list[bytes]) -> Path:
    text = b"\n".join(lines) + b"\n"
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
    engine cut ``collect_batches``: the file is read again by the careful reader, and
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
