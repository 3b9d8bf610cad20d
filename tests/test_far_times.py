"""Times a ``date`` field holds that Python and Polars' formatter cannot: epoch milliseconds
of the year 318857 (``"@timestamp": 9999999999999999``) and before the year 1. Each is
kept, counted and written as ISO-8601 with a signed year; no writer panics on one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from egress_offline.cli import app
from egress_offline.timetext import times_as_text, within_python
from tests.helpers import GiB, event, ndjson

FAR = 9_999_999_999_999_999  # +318857-05-20T17:46:39.999Z
FAR_TEXT = "+318857-05-20T17:46:39.999Z"
BEFORE = -99_999_999_999_999_999  # -3166904-02-24T14:13:20.001Z
BEFORE_TEXT = "-3166904-02-24T14:13:20.001Z"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_times_as_text_writes_every_year() -> None:
    frame = pl.DataFrame({"t": [FAR, 0, None, BEFORE], "n": [1, 2, 3, 4]}).with_columns(
        pl.col("t").cast(pl.Datetime("ms", "UTC"))
    )
    assert not within_python(frame)
    assert within_python(frame.slice(1, 2))
    assert times_as_text(frame).get_column("t").to_list() == [
        FAR_TEXT,
        "1970-01-01T00:00:00.000Z",
        None,
        BEFORE_TEXT,
    ]
    assert times_as_text(frame, "%Y-%m-%d %H:%M:%S").get_column("t").to_list()[1] == (
        "1970-01-01 00:00:00"
    )


@pytest.fixture
def far(tmp_path: Path) -> Path:
    path = tmp_path / "far.ndjson"
    path.write_bytes(
        ndjson(
            [
                event(**{"@timestamp": FAR}),
                event(**{"@timestamp": str(BEFORE)}),
                event(**{"@timestamp": "2024-05-01T11:00:00Z", "process.entity_id": "E2"}),
            ]
        )
    )
    return path


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson", "table", "parquet"])
@pytest.mark.parametrize("command", ["hunt", "sweep"])
def test_every_writer_and_the_page_take_far_times(
    far: Path, tmp_path: Path, fmt: str, command: str
) -> None:
    rows, page = tmp_path / f"rows.{fmt}", tmp_path / "page.html"
    window = ["--all-time"] if command == "hunt" else []
    result = invoke(command, str(far), *window, "--format", fmt, "-o", str(rows),
                    "--html", str(page))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "panicked" not in result.output
    assert "Not charted: its times lie outside the years 1-9999." in page.read_text()
    if fmt == "parquet":
        read = pl.read_parquet(rows).filter(pl.col("process.entity_id") == "E1")
        assert read.get_column("first_seen").dt.epoch("ms").to_list() == [BEFORE]
        assert read.get_column("last_seen").dt.epoch("ms").to_list() == [FAR]
    elif fmt == "table":
        assert FAR_TEXT in rows.read_text()
    else:
        written = rows.read_text()
        assert FAR_TEXT in written and BEFORE_TEXT in written
        if fmt == "json":
            first = json.loads(written)[0]
            assert (first["first_seen"], first["last_seen"]) == (BEFORE_TEXT, FAR_TEXT)


def test_the_latest_time_may_be_far(far: Path, tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    result = invoke("hunt", str(far), "-o", str(rows))
    assert result.exit_code == 0, result.output
    assert f"now {FAR_TEXT} [latest]" in result.output
    lines = rows.read_text().splitlines()
    assert len(lines) == 2 and f",1,{FAR_TEXT},{FAR_TEXT}," in lines[1]


def _typed(tmp_path: Path, column: Any) -> Path:
    doc = event()
    path = tmp_path / "typed.parquet"
    n = len(column)
    pq.write_table(
        pa.table(
            {
                "@timestamp": column,
                "event.action": ["disconnect_received"] * n,
                "event.category": [["network"]] * n,
                "host.os.family": ["windows"] * n,
                "destination.ip": ["8.8.8.8"] * n,
                "destination.address": ["8.8.8.8"] * n,
                "source.bytes": [GiB] * n,
                "process.entity_id": ["E1"] * n,
                "process.executable": [doc["process"]["executable"]] * n,
            }
        ),
        path,
    )
    return path


@pytest.mark.parametrize(
    ("column", "first", "last"),
    [
        (pa.array([FAR, 1_714_561_200_000, BEFORE], pa.timestamp("ms", tz="UTC")), BEFORE_TEXT,
         FAR_TEXT),
        # past 2262: through nanoseconds its epoch overflowed, and the row was dropped
        (pa.array([300_000_000_000_000_000, 0], pa.timestamp("us")), "1970-01-01T00:00:00.000Z",
         "+11476-08-15T05:20:00.000Z"),
        (pa.array([2**31 - 1, 0, -(2**31)], pa.date32()), "-5877641-06-23T00:00:00.000Z",
         "+5881580-07-11T00:00:00.000Z"),
    ],
)  # fmt: skip
def test_typed_parquet_times_past_any_formatter(
    tmp_path: Path, column: Any, first: str, last: str
) -> None:
    path = _typed(tmp_path, column)
    rows = tmp_path / "rows.csv"
    # all time: each row's time is written as text for the general rule
    result = invoke("hunt", str(path), "--all-time", "-o", str(rows))
    assert result.exit_code == 0, result.output
    assert rows.read_text().splitlines()[1].endswith(f",{first},{last}")
    # the latest: the far row anchors the window, as the cluster's max(@timestamp) would
    result = invoke("hunt", str(path), "-o", str(rows))
    assert result.exit_code == 0, result.output
    assert f"now {last} [latest]" in result.output
