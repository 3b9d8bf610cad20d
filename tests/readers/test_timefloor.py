"""readers.timefloor: how old a record may be and still be in the window."""

from __future__ import annotations

import gzip
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from egress_offline.readers import open_inputs, tuning
from egress_offline.readers.compression import decompressed
from egress_offline.readers.model import InputFile
from egress_offline.readers.textcheck import TextCheck, TextChecks, check_text
from egress_offline.readers.timefloor import TimeFloor

HOUR = 3_600_000


def test_a_fixed_floor_is_the_cutoff() -> None:
    floor = TimeFloor(window_ms=8 * HOUR, fixed_ms=1_000)
    floor.observe(10**12)
    assert (floor.rising, floor.ms) == (False, 1_000)


def test_a_rising_floor_follows_the_newest_time_seen_and_never_falls() -> None:
    floor = TimeFloor(window_ms=8 * HOUR)
    assert (floor.rising, floor.ms) == (True, None)
    floor.observe(100 * HOUR)
    floor.observe(50 * HOUR)
    floor.observe(None)
    assert floor.ms == 92 * HOUR


def test_without_a_window_nothing_is_old_and_no_stamps_are_counted() -> None:
    floor = TimeFloor(window_ms=None)
    floor.observe(100 * HOUR)
    assert floor.ms is None
    assert floor.stamps(pl.Series("s", [1, 2])) is None


def test_stamps_keep_only_those_that_may_be_in_the_window() -> None:
    floor = TimeFloor(window_ms=HOUR, fixed_ms=10)
    stamps = floor.stamps(pl.Series("s", [5, 10, 11, None], dtype=pl.Int64))
    assert stamps is not None and stamps.ms.to_list() == [11]


def test_stamps_kept_in_a_query_are_kept_again_when_the_floor_rose_since() -> None:
    floor = TimeFloor(window_ms=HOUR)
    floor.observe(HOUR + 10)  # the floor is 10
    low = floor.ms
    counted = floor.may_count(pl.col("s"))
    assert counted is not None
    frame = pl.DataFrame({"s": [5, 11, 30, None]}, schema={"s": pl.Int64})
    kept = frame.select(counted).to_series()
    assert floor.recount(kept, low).ms.to_list() == [11, 30]  # the floor has not moved
    floor.observe(HOUR + 20)  # the batch's own newest time raised it to 20
    assert floor.recount(kept, low).ms.to_list() == [30]
    rising = TimeFloor(window_ms=HOUR)  # no floor yet: only the nulls go
    counted = rising.may_count(pl.col("s"))
    assert counted is not None
    assert frame.select(counted).to_series().to_list() == [5, 11, 30]
    assert TimeFloor(window_ms=None).may_count(pl.col("s")) is None


def test_sampling_takes_a_bound_from_the_ends_of_every_file(tmp_path: Path) -> None:
    def line(hour: int) -> str:
        stamp = f"2024-05-01T{hour:02d}:00:00.0000000Z"
        return json.dumps({"@timestamp": stamp, "x": "y"}, separators=(",", ":"))

    (tmp_path / "a.ndjson").write_text("\n".join(line(h) for h in range(1, 5)) + "\n")
    (tmp_path / "b.ndjson").write_text("\n".join(line(h) for h in range(5, 9)) + "\n")
    told: list[tuple[float, int]] = []
    with open_inputs([str(tmp_path)]) as inputs:
        floor = TimeFloor(window_ms=HOUR)
        floor.sample(inputs.files, tell=lambda fraction, size: told.append((fraction, size)))
        assert floor.latest_ms == 1_714_550_400_000  # 2024-05-01T08:00:00Z
        floor.sample(inputs.files)  # each file once
    assert [fraction for fraction, _ in told] == [0.5, 1.0]
    fixed = TimeFloor(window_ms=HOUR, fixed_ms=0)
    fixed.sample(inputs.files)
    assert fixed.latest_ms is None  # a fixed anchor samples nothing


def _gzip_lines(path: Path, hours: range) -> None:
    def line(hour: int) -> str:
        stamp = f"2024-05-01T{hour:02d}:00:00.0000000Z"
        return json.dumps({"@timestamp": stamp, "x": "y"}, separators=(",", ":"))

    path.write_bytes(gzip.compress(("\n".join(line(h) for h in hours) + "\n").encode()))


def _staggered(folder: Path, count: int) -> None:
    """``count`` gzip files of four hourly lines each, file ``n`` from hour ``n + 1``."""
    for number in range(count):
        _gzip_lines(folder / f"{number}.ndjson.gz", range(number + 1, number + 5))


def test_sampling_checks_compressed_files_ahead_on_threads_with_the_same_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(5):
        _gzip_lines(tmp_path / f"{number}.ndjson.gz", range(number * 4 + 1, number * 4 + 5))
    threads: list[str] = []

    def recorded(file: InputFile, stop: threading.Event | None = None) -> TextCheck:
        threads.append(threading.current_thread().name)
        return check_text(file, stop)

    monkeypatch.setattr("egress_offline.readers.textcheck.check_text", recorded)
    monkeypatch.setattr(tuning, "CHECK_AHEAD_SIZE", 0)  # these files are small
    with open_inputs([str(tmp_path)]) as inputs:
        floor = TimeFloor(window_ms=HOUR)
        floor.sample(inputs.files)
        assert floor.latest_ms == 1_714_593_600_000  # 2024-05-01T20:00:00Z, the last file's end
        # each file checked once, on the checking threads, and kept for the reader
        assert len(threads) == 5
        assert all(name.startswith("egress-offline-check") for name in threads)
        for file in inputs.files:
            assert floor.checks.of(file) == replace(check_text(file), tail=b"")
        assert len(threads) == 5
        assert floor.checks._pool is None and not floor.checks._running


def test_checks_ahead_end_cleanly_when_the_caller_stops_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tuning, "CHECK_AHEAD_SIZE", 0)  # these files are small
    _staggered(tmp_path, 4)
    checks = TextChecks()
    with open_inputs([str(tmp_path)]) as inputs:
        files = sorted(inputs.files, key=lambda f: str(f.path))
        (tmp_path / "3.ndjson.gz").unlink()  # gone after discovery: its check fails
        with pytest.raises(RuntimeError, match="stop"), checks.ahead(files):
            assert checks.of(files[0]).fast  # made ahead, on a thread
            raise RuntimeError("stop")
        assert checks._pool is None and not checks._running
        assert checks.of(files[1]).fast  # not asked for then: checked now, here
        with checks.ahead(files), pytest.raises(FileNotFoundError):
            checks.of(files[3])  # a check's error reaches the caller as it is


def test_small_files_are_checked_when_asked_not_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _staggered(tmp_path, 3)
    threads: list[str] = []

    def recorded(file: InputFile, stop: threading.Event | None = None) -> TextCheck:
        threads.append(threading.current_thread().name)
        return check_text(file, stop)

    monkeypatch.setattr("egress_offline.readers.textcheck.check_text", recorded)
    with open_inputs([str(tmp_path)]) as inputs:
        floor = TimeFloor(window_ms=HOUR)
        floor.sample(inputs.files)
    assert threads == ["MainThread"] * 3  # a thread costs a small file more than its check


def test_a_stopped_check_ends_after_its_piece_in_hand(tmp_path: Path) -> None:
    path = tmp_path / "x.ndjson.gz"
    _gzip_lines(path, range(1, 5))
    stop = threading.Event()
    stop.set()
    with open_inputs([str(path)]) as inputs:
        (file,) = inputs.files
        assert check_text(file, stop).damage == "the check was stopped"
        assert check_text(file).fast


def _big_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuning, "CHECK_AHEAD_SIZE", 0)


def test_without_a_thread_to_be_had_files_are_checked_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _big_enough(monkeypatch)
    _staggered(tmp_path, 3)

    def no_thread(*_: object, **__: object) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(ThreadPoolExecutor, "submit", no_thread)
    with open_inputs([str(tmp_path)]) as inputs:
        floor = TimeFloor(window_ms=HOUR)
        floor.sample(inputs.files)
        assert floor.latest_ms == 1_714_543_200_000  # 2024-05-01T06:00:00Z
        assert all(floor.checks.of(file).fast for file in inputs.files)


def test_an_ahead_inside_another_adds_nothing_and_each_file_is_checked_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _big_enough(monkeypatch)
    _staggered(tmp_path, 3)
    made: list[str] = []

    def recorded(file: InputFile, stop: threading.Event | None = None) -> TextCheck:
        made.append(file.path.name)
        return check_text(file, stop)

    monkeypatch.setattr("egress_offline.readers.textcheck.check_text", recorded)
    checks = TextChecks()
    with open_inputs([str(tmp_path)]) as inputs:
        files = sorted(inputs.files, key=lambda f: str(f.path))
        with checks.ahead(files, depth=1):
            for file in files:
                with checks.ahead([file]), checks.ahead([]):
                    assert checks.of(file).fast
    assert sorted(made) == ["0.ndjson.gz", "1.ndjson.gz", "2.ndjson.gz"]


def test_a_file_changed_after_its_check_began_is_checked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _big_enough(monkeypatch)
    monkeypatch.setattr(tuning, "FAST_LINE", 4096)
    _staggered(tmp_path, 2)
    checks = TextChecks()
    with open_inputs([str(tmp_path)]) as inputs:
        first, second = sorted(inputs.files, key=lambda f: str(f.path))
        with checks.ahead([first, second]):
            checks._running[second][0].result()  # its check is done: the file fine
            second.path.write_bytes(gzip.compress(b"A" * 10_000 + b"\n"))  # then it grows
            assert checks.of(first).fast
            assert checks.of(second).long_line


def test_a_fixed_anchor_keeps_no_tails(tmp_path: Path) -> None:
    path = tmp_path / "x.ndjson.gz"
    _gzip_lines(path, range(1, 5))
    floor = TimeFloor(window_ms=HOUR, fixed_ms=0)
    assert not floor.checks.keep_tails and TimeFloor(window_ms=HOUR).checks.keep_tails
    with open_inputs([str(path)]) as inputs:
        (file,) = inputs.files
        assert floor.checks.of(file).text_size > 0
        assert floor.checks.tail(file) == b""  # none was kept


def test_a_stopped_text_ends_at_once_even_where_it_gives_no_piece(tmp_path: Path) -> None:
    empty_members = gzip.compress(b"") * 5_000  # no text at all: no piece to stop at
    path = tmp_path / "x.gz"
    path.write_bytes(empty_members + gzip.compress(b"late\n"))
    stop = threading.Event()
    with path.open("rb") as handle:
        assert b"".join(decompressed(handle, "gzip", print)) == b"late\n"
    stop.set()
    with path.open("rb") as handle:
        assert list(decompressed(handle, "gzip", print, stop=stop)) == []
