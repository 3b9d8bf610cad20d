"""The flagged groups' bytes over time (``series=True``): exact cumulative sums at every
point, bounded points and groups, buckets anchored where asked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egress_offline import HuntSpec, SweepSpec, run_hunt, run_sweep
from egress_offline import fields as f
from egress_offline.engine import GroupSeries, group_series
from egress_offline.engine.reduce import SUM
from egress_offline.readers import TS
from egress_offline.sweep import PEAK_START
from tests.helpers import GiB, event, ndjson

KEYS = list(f.GROUP_FIELDS)
T0 = 1_714_560_000_000  # 2024-05-01T10:40:00Z, in ms
TEXT_LIST = pl.List(pl.String)


def _public(tmp_path: Path, events: list[tuple[str, int, int]], name: str = "p") -> Path:
    """A public-events scratch file as the engine writes it: (entity id, ms, bytes)."""
    frame = pl.DataFrame(
        {
            f.ENTITY_ID: [[e] for e, _, _ in events],
            f.DEST_ADDRESS: [["8.8.8.8"]] * len(events),
            f.EXECUTABLE: [["C:\\x.exe"]] * len(events),
            TS: [t for _, t, _ in events],
            SUM: pl.Series([b for _, _, b in events], dtype=pl.Int128),
        },
        schema_overrides={
            f.ENTITY_ID: TEXT_LIST,
            f.DEST_ADDRESS: TEXT_LIST,
            f.EXECUTABLE: TEXT_LIST,
            TS: pl.Int64,
        },
    )
    path = tmp_path / f"{name}.arrow"
    frame.write_ipc(path)
    return path


def _flagged(groups: dict[str, list[int]], anchor: dict[str, int] | None = None) -> pl.DataFrame:
    """Output rows of the groups (entity id -> its event times)."""
    return pl.DataFrame(
        {
            f.ENTITY_ID: list(groups),
            f.DEST_ADDRESS: ["8.8.8.8"] * len(groups),
            f.EXECUTABLE: ["C:\\x.exe"] * len(groups),
            "connections": [len(times) for times in groups.values()],
            "first_seen": [min(times) for times in groups.values()],
            "last_seen": [max(times) for times in groups.values()],
            PEAK_START: [(anchor or {}).get(e, min(t)) for e, t in groups.items()],
        }
    ).with_columns(pl.col("first_seen", "last_seen", PEAK_START).cast(pl.Datetime("ms", "UTC")))


def _ms(series: GroupSeries) -> list[tuple[int, int, int, int]]:
    return series.points.select(
        pl.col("time").dt.epoch("ms"), "events", "bytes", "cumulative"
    ).rows()


def test_every_distinct_millisecond_is_a_point_when_few(tmp_path: Path) -> None:
    events = [("A", T0 + 5, 10), ("A", T0, 1), ("A", T0 + 5, 100), ("B", T0 + 1, 7)]
    # split over two files, as the engine's public events are
    paths = [_public(tmp_path, events[:2], "one"), _public(tmp_path, events[2:], "two")]
    found = group_series(_flagged({"A": [T0, T0 + 5], "B": [T0 + 1]}), paths)
    assert [s.key for s in found] == [("A", "8.8.8.8", "C:\\x.exe"), ("B", "8.8.8.8", "C:\\x.exe")]
    assert _ms(found[0]) == [(T0, 1, 1, 1), (T0 + 5, 2, 110, 111)]
    assert _ms(found[1]) == [(T0 + 1, 1, 7, 7)]
    assert found[0].bucket_ms == 1
    assert found[0].events == 3


def test_many_events_are_bucketed_with_the_cumulative_exact_at_each_point(
    tmp_path: Path,
) -> None:
    times = list(range(T0, T0 + 1000))
    events = [("A", t, t - T0) for t in times]
    found = group_series(_flagged({"A": times}), [_public(tmp_path, events)], max_points=10)
    points = _ms(found[0])
    assert found[0].bucket_ms == 100
    assert len(points) == 10
    for moment, _, _, cumulative in points:
        assert cumulative == sum(b for _, t, b in events if t <= moment)
    assert points[-1][0] == T0 + 999  # the last point is the group's last event
    assert sum(p[1] for p in points) == 1000


def test_buckets_start_at_the_anchor(tmp_path: Path) -> None:
    """The sweep anchors them on the peak window's first event: the point before it holds
    the exact cumulative sum before the window."""
    times = list(range(T0, T0 + 1000))
    events = [("A", t, 1) for t in times]
    anchor = T0 + 437
    found = group_series(
        _flagged({"A": times}, {"A": anchor}),
        [_public(tmp_path, events)],
        anchor=PEAK_START,
        max_points=10,
    )
    points = _ms(found[0])
    assert len(points) <= 11
    before = [p for p in points if p[0] < anchor]
    assert before[-1][0] == anchor - 1
    assert before[-1][3] == 437


def test_groups_are_bounded_in_the_rows_order(tmp_path: Path) -> None:
    groups = {name: [T0] for name in "CBA"}
    events = [(name, T0, 1) for name in groups]
    found = group_series(_flagged(groups), [_public(tmp_path, events)], max_groups=2)
    assert [s.key[0] for s in found] == ["C", "B"]


def test_a_group_without_events_has_no_points(tmp_path: Path) -> None:
    found = group_series(_flagged({"A": [T0]}), [])
    assert found[0].points.height == 0
    assert found[0].events == 0


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.sampled_from("AB"), st.integers(0, 5000), st.integers(0, 2**40)),
        min_size=1,
        max_size=200,
    ),
    st.integers(1, 30),
)
def test_the_cumulative_sum_is_exact_at_every_point(
    tmp_path: Path, raw: list[tuple[str, int, int]], max_points: int
) -> None:
    events = [(e, T0 + t, b) for e, t, b in raw]
    groups: dict[str, list[int]] = {}
    for e, t, _ in events:
        groups.setdefault(e, []).append(t)
    found = group_series(_flagged(groups), [_public(tmp_path, events)], max_points=max_points)
    for series in found:
        own = [(t, b) for e, t, b in events if e == series.key[0]]
        points = _ms(series)
        assert len(points) <= max_points + 1
        assert [p[0] for p in points] == sorted({p[0] for p in points})
        for moment, _, _, cumulative in points:
            assert cumulative == sum(b for t, b in own if t <= moment)
        assert points[-1][3] == sum(b for _, b in own)
        assert series.events == len(own)


def test_run_hunt_series_end_at_each_flagged_total(tmp_path: Path) -> None:
    def at(hours: float) -> str:
        moment = datetime(2024, 5, 1, 11, tzinfo=UTC) - timedelta(hours=hours)
        return moment.isoformat().replace("+00:00", "Z")

    path = tmp_path / "export.ndjson"
    path.write_bytes(
        ndjson(
            [
                event(**{"@timestamp": at(9), "source.bytes": GiB}),  # outside the window
                event(**{"@timestamp": at(2), "source.bytes": GiB}),
                event(**{"@timestamp": at(1), "source.bytes": GiB // 2}),
                event(**{"@timestamp": at(0), "source.bytes": 5}),
                event(**{"process.entity_id": "small", "source.bytes": 10}),
            ]
        )
    )
    spec = HuntSpec(now=datetime(2024, 5, 1, 12, tzinfo=UTC))
    assert run_hunt([str(path)], spec).series is None
    result = run_hunt([str(path)], spec, series=True)
    assert result.rows.height == 1
    (series,) = result.series or []
    assert series.key == ("E1", "8.8.8.8", "C:\\evil.exe")
    assert series.points.get_column("cumulative").to_list() == [
        GiB,
        GiB + GiB // 2,
        GiB + GiB // 2 + 5,
    ]
    assert series.points.get_column("cumulative")[-1] == result.rows["total_bytes_out"][0]
    assert result.started_ms is not None


def test_run_sweep_series_cover_the_period(tmp_path: Path) -> None:
    def at(hours: float) -> str:
        moment = datetime(2024, 5, 1, 11, tzinfo=UTC) - timedelta(hours=hours)
        return moment.isoformat().replace("+00:00", "Z")

    path = tmp_path / "export.ndjson"
    path.write_bytes(
        ndjson(
            [
                event(**{"@timestamp": at(30), "source.bytes": 100}),
                event(**{"@timestamp": at(3), "source.bytes": GiB}),
                event(**{"@timestamp": at(1), "source.bytes": 1}),
            ]
        )
    )
    result = run_sweep([str(path)], SweepSpec(), series=True)
    (series,) = result.series or []
    assert series.points.get_column("cumulative").to_list() == [100, 100 + GiB, 101 + GiB]
    assert run_sweep([str(path)], SweepSpec()).series is None
