"""readers.timefloor: how old a record may be and still be in the window."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from egress_offline.readers import open_inputs
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
