"""sweep: the sliding-window peak per group, held to a brute-force model."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from egress_offline import fields as f
from egress_offline import sweep
from egress_offline.cli import app
from egress_offline.engine import Spill
from egress_offline.scratch import Scratch
from egress_offline.spec import SweepSpec
from egress_offline.sweep import group_peaks, run_sweep
from tests.helpers import NOW, GiB, event, ndjson

KEYS = list(f.GROUP_FIELDS)
HOUR_MS = 3_600_000
LONG_MAX = 2**63 - 1


def brute_force(rows: list[dict[str, Any]], window: int) -> dict[tuple[Any, ...], Any]:
    """Every event as a window end: the sum over (t - window, t], by hand."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in KEYS), []).append(row)
    out = {}
    for key, events in groups.items():
        best = None
        for end in sorted({e["__ts"] for e in events}):
            inside = [e for e in events if end - window < e["__ts"] <= end]
            values = sum(e["__n"] for e in inside)
            total = sum(e["__sum"] for e in inside)
            if values == 0 or abs(total) > LONG_MAX:
                continue
            if best is None or total > best[0]:
                best = (total, min(e["__ts"] for e in inside), end)
        values = sum(e["__n"] for e in events)
        total = sum(e["__sum"] for e in events)
        out[key] = {
            "peak": best,
            "total": total if values and abs(total) <= LONG_MAX else None,
            "connections": len(events),
            "first": min(e["__ts"] for e in events),
            "last": max(e["__ts"] for e in events),
        }
    return out


event_rows = st.fixed_dictionaries(
    {
        "process.entity_id": st.sampled_from(["A", "B", None]),
        "destination.address": st.sampled_from(["d1", "d2"]),
        "process.executable": st.just("x.exe"),
        "__ts": st.integers(0, 40),
        "__sum": st.one_of(st.integers(0, 100), st.just(2**62)),
        "__n": st.sampled_from([0, 1, 1, 1, 2]),
    }
)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(rows=st.lists(event_rows, max_size=40), window=st.integers(1, 15))
def test_group_peaks_match_the_brute_force_model(rows: list[dict[str, Any]], window: int) -> None:
    frame = pl.DataFrame(
        rows,
        schema={
            **{k: pl.String for k in KEYS},
            "__ts": pl.Int64,
            "__sum": pl.Int128,
            "__n": pl.UInt32,
        },
    )
    got = {tuple(r[k] for k in KEYS): r for r in group_peaks(frame, window).to_dicts()}
    expected = brute_force(rows, window)
    assert set(got) == set(expected)
    for key, want in expected.items():
        row = got[key]
        peak = None
        if row["peak_bytes"] is not None:
            peak = (row["peak_bytes"], row["peak_window_start"], row["peak_window_end"])
        assert peak == want["peak"], key
        assert row["total_bytes_out"] == want["total"]
        assert (row["connections"], row["first_seen"], row["last_seen"]) == (
            want["connections"],
            want["first"],
            want["last"],
        )


def at(hours: float) -> str:
    moment = NOW - timedelta(days=30) + timedelta(hours=hours)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def test_an_episode_that_straddles_any_bucket_is_found(tmp_path: Path) -> None:
    """0.6 GiB at 3h and 0.6 GiB at 10h: in one 8-hour window (3h, 11h], though fixed
    8-hour buckets (0-8h, 8-16h) would split them. The hunt's last 8 hours see neither."""
    docs = [
        event(**{"@timestamp": at(3), "source.bytes": 6 * GiB // 10}),
        event(**{"@timestamp": at(10), "source.bytes": 6 * GiB // 10}),
        event(**{"@timestamp": at(30), "source.bytes": GiB // 2, "process.entity_id": "E2"}),
    ]
    (tmp_path / "a.ndjson").write_bytes(ndjson(docs[:1]))
    (tmp_path / "b.ndjson.gz").write_bytes(__import__("gzip").compress(ndjson(docs[1:])))
    result = run_sweep([str(tmp_path)], SweepSpec())
    rows = result.rows.to_dicts()
    assert [(r["process.entity_id"], r["peak_bytes"]) for r in rows] == [
        ("E1", 2 * (6 * GiB // 10))
    ]
    assert rows[0]["peak_window_start"].isoformat().startswith(at(3)[:19])
    assert rows[0]["peak_window_end"].isoformat().startswith(at(10)[:19])
    assert rows[0]["total_bytes_out"] == 2 * (6 * GiB // 10)
    assert result.counts.groups == 2


def test_a_window_exactly_w_long_is_open_at_its_start(tmp_path: Path) -> None:
    docs = [
        event(**{"@timestamp": at(0), "source.bytes": GiB // 2}),
        event(**{"@timestamp": at(8), "source.bytes": GiB // 2}),  # exactly 8h later
        event(**{"@timestamp": at(20), "source.bytes": GiB // 2, "process.entity_id": "E2"}),
        event(**{"@timestamp": at(20), "source.bytes": GiB // 2, "process.entity_id": "E2"}),
    ]
    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson(docs))
    result = run_sweep([str(path)], SweepSpec())
    assert [r["process.entity_id"] for r in result.rows.to_dicts()] == ["E2"]  # ties count
    wider = run_sweep([str(path)], SweepSpec(window=timedelta(hours=8, milliseconds=1)))
    assert sorted(r["process.entity_id"] for r in wider.rows.to_dicts()) == ["E1", "E2"]


def test_since_and_until_bound_the_period(tmp_path: Path) -> None:
    docs = [
        event(**{"@timestamp": at(1), "source.bytes": GiB}),
        event(**{"@timestamp": at(50), "source.bytes": GiB, "process.entity_id": "E2"}),
    ]
    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson(docs))
    since = NOW - timedelta(days=30) + timedelta(hours=10)
    result = run_sweep([str(path)], SweepSpec(since=since))
    assert [r["process.entity_id"] for r in result.rows.to_dicts()] == ["E2"]
    assert result.counts.time_window == 1
    result = run_sweep([str(path)], SweepSpec(until=since))
    assert [r["process.entity_id"] for r in result.rows.to_dicts()] == ["E1"]


def test_sweep_command(tmp_path: Path) -> None:
    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson([event(**{"@timestamp": at(1), "source.bytes": GiB})]))
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["sweep", str(path), "-o", str(out), "--window", "1h"])
    assert result.exit_code == 0, result.stderr
    header, row = out.read_text().splitlines()
    assert header.startswith(
        "peak_bytes,process.entity_id,destination.address,process.executable,"
        "peak_window_start,peak_window_end,total_bytes_out"
    )
    assert row.startswith("1073741824,E1,8.8.8.8,")
    assert "flagged (>= 1073741824 bytes in any 1h)" in result.stderr
    bad = CliRunner().invoke(
        app, ["sweep", str(path), "--since", "2024-05-02", "--until", "2024-05-01"]
    )
    assert bad.exit_code == 2
    assert bad.stderr == "Error: since: must be before until\n"


def test_the_partitioned_path_gives_the_rows_of_one_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Groups split over many partitions (a few events each) flag the same rows, with the
    same peaks, windows, totals and counts, as all in one."""
    docs = [
        event(**{"@timestamp": at(hour), "source.bytes": GiB // 8 * (hour % 7 + 1),
                 "process.entity_id": f"E{hour % 3}", "destination.address": f"d{hour // 20}"})
        for hour in range(60)
    ] + [event(**{"@timestamp": at(7), "source.bytes": GiB, "process.entity_id": None})]  # fmt: skip
    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson(docs))
    whole = run_sweep([str(path)], SweepSpec(threshold=7 * GiB // 4))
    monkeypatch.setattr(sweep, "_PARTITION_ROWS", 3)
    parted = run_sweep([str(path)], SweepSpec(threshold=7 * GiB // 4))
    assert (whole.partitions, parted.partitions) == (1, 21)
    assert whole.rows.height == 8  # of 10 groups, 8 reach 1.75 GiB in 8 hours
    assert whole.counts.groups == 10
    assert parted.rows.equals(whole.rows)
    assert parted.counts == whole.counts


def test_group_peaks_at_the_ends_of_time() -> None:
    """Timestamps near the least and the greatest long: no window bound overflows."""
    low, high = -(2**63), 2**63 - 1
    rows = [
        {"process.entity_id": "A", "destination.address": "d", "process.executable": "x",
         "__ts": ts, "__sum": size, "__n": 1}
        for ts, size in ((low, 5), (low + 1, 7), (low + 10, 1), (high - 1, 3), (high, 4))
    ]  # fmt: skip
    schema = {**{k: pl.String for k in KEYS}, "__ts": pl.Int64, "__sum": pl.Int128,
              "__n": pl.UInt32}  # fmt: skip
    for window in (1, 2, 10, 11, 2**62):
        got = group_peaks(pl.DataFrame(rows, schema=schema), window).to_dicts()
        want = brute_force(rows, window)[("A", "d", "x")]
        assert len(got) == 1, window
        peak = (got[0]["peak_bytes"], got[0]["peak_window_start"], got[0]["peak_window_end"])
        assert peak == want["peak"], window


def test_timestamps_counted_as_they_come_equal_those_stored(tmp_path: Path) -> None:
    """The sweep counts the other records' timestamps in its period as they come; the
    count is the one the stored timestamps give, at the period's edges too."""
    stamps = [pl.Series([5, 10, 11, 19, 20, 21]), pl.Series([-(2**63) + 1, 2**63 - 1])]
    with Scratch(None) as scratch:
        for after, before in ((-(2**63), None), (10, 20), (None, 11), (4, None)):
            counted, stored = Spill(scratch, stamp_bounds=(after, before)), Spill(scratch)
            for batch in stamps:
                counted.add_stamps(batch)
                stored.add_stamps(batch)
            want = stored.count_stamps(after=after, before=before)
            assert counted.count_stamps(after=after, before=before) == want
        assert want == 7
        with pytest.raises(ValueError, match="counted in"):
            counted.count_stamps(after=3, before=None)
