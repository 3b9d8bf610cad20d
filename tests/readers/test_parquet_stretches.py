"""Consecutive small row groups read as one stretch (``parquet_batches.stretches``): the
same rows, counts and time range as the file written in one row group, every row
group still read and counted on its own."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from egress_offline import HuntSpec, run_hunt
from egress_offline.cli import app
from egress_offline.readers import parquet_spans, tuning
from egress_offline.readers.parquet_batches import stretches
from egress_offline.sweep import run_sweep
from tests.helpers import EVERY_READING_COMMAND, NOW, GiB, event, ndjson


def _metadata(rows: list[int]) -> Any:
    groups = [SimpleNamespace(num_rows=count) for count in rows]
    return SimpleNamespace(num_row_groups=len(groups), row_group=groups.__getitem__)


@pytest.mark.parametrize(
    ("rows", "most", "expected"),
    [
        ([100] * 5, 250, [(0, 1), (2, 3), (4,)]),
        ([100, 300, 100, 100], 250, [(0,), (1,), (2, 3)]),  # a large one alone
        ([0, 0, 250, 0], 250, [(0, 1, 2, 3)]),  # empty row groups go with their neighbours
        ([], 250, []),
        ([1] * 3, 1, [(0,), (1,), (2,)]),
    ],
)
def test_stretches_gather_consecutive_row_groups_up_to_the_rows_allowed(
    monkeypatch: pytest.MonkeyPatch, rows: list[int], most: int, expected: list[tuple[int, ...]]
) -> None:
    monkeypatch.setattr(tuning, "STRETCH_ROWS", most)
    assert stretches(_metadata(rows)) == expected


def _docs(count: int) -> list[dict[str, Any]]:
    """Events every 5 minutes back from NOW, a few of them heavy, some old."""
    docs = []
    for i in range(count):
        docs.append(
            event(
                **{
                    "@timestamp": (NOW - timedelta(minutes=5 * i)).strftime(
                        "%Y-%m-%dT%H:%M:%S.%fZ"
                    ),
                    "process.entity_id": f"E{i % 3}",
                    "source.bytes": GiB // 2 if i % 7 == 0 else 1000,
                    **({"event.action": "connection_attempted"} if i % 5 == 0 else {}),
                }
            )
        )
    return docs


def _parquet(tmp_path: Path, docs: list[dict[str, Any]], name: str, group_rows: int) -> Path:
    source = tmp_path / "docs.ndjson"
    source.write_bytes(ndjson(docs))
    path = tmp_path / name
    pl.read_ndjson(source).write_parquet(path, row_group_size=group_rows)
    return path


@pytest.mark.parametrize("latest", [False, True], ids=["fixed", "latest"])
@pytest.mark.parametrize("ascending", [False, True], ids=["newest-first", "oldest-first"])
def test_small_row_groups_give_what_one_row_group_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, latest: bool, ascending: bool
) -> None:
    """400 events (33 hours) in row groups of 7 rows: the hunt's rows, counts and time
    range, --strict's, and the sweep's peaks, equal those of the file in one row group;
    the 58 row groups are spanned as 2 stretches (each was spanned alone)."""
    docs = _docs(400)
    if ascending:
        docs.reverse()
    whole = _parquet(tmp_path, docs, "whole.parquet", 1_000)
    small = _parquet(tmp_path, docs, "small.parquet", 7)
    assert pq.ParquetFile(small).metadata.num_row_groups == 58
    monkeypatch.setattr(tuning, "STRETCH_ROWS", 210)  # 30 row groups a stretch
    spanned: list[tuple[int, ...]] = []
    real = parquet_spans.stretch_span
    monkeypatch.setattr(parquet_spans, "stretch_span",
                        lambda parquet, stretch, timed: spanned.append(stretch) or real(parquet, stretch, timed))  # fmt: skip
    for strict in (False, True):
        spec = HuntSpec(strict=strict, **({} if latest else {"now": NOW}))
        expected, found = run_hunt([str(whole)], spec), run_hunt([str(small)], spec)
        assert found.rows.to_dicts() == expected.rows.to_dicts()
        assert asdict(found.counts) == asdict(expected.counts)
        assert (found.now, found.data_first, found.data_last) == (
            expected.now, expected.data_first, expected.data_last,
        )  # fmt: skip
        assert found.rows.height > 0
        if not strict:  # spans found of stretches only ((0,): the whole file's)
            assert set(spanned) - {(0,)} <= {tuple(range(30)), tuple(range(30, 58))}
            assert set(spanned) - {(0,)}
    sweep_whole, sweep_small = run_sweep([str(whole)]), run_sweep([str(small)])
    assert sweep_small.rows.to_dicts() == sweep_whole.rows.to_dicts()
    assert sweep_small.rows.height > 0


def _misaligning(path: Path) -> Path:
    """Three row groups of 5 matching events; the second's ``process.executable`` chunk
    is one data page that says it holds 0 values (its values are there): pyarrow reads
    that column of that row group as 0 rows, unsaid."""
    count = 15
    table = pa.table({
        "@timestamp": ["2024-05-01T11:00:00.000Z"] * count,
        "event.action": ["disconnect_received"] * count,
        "event.category": ["network"] * count,
        "host.os.family": ["windows"] * count,
        "destination.ip": ["8.8.8.8"] * count,
        "destination.address": ["8.8.8.8"] * count,
        "process.entity_id": [f"E{i}" for i in range(count)],
        "source.bytes": [GiB] * count,
        "process.executable": [f"C:\\x{i}.exe" for i in range(count)],
    })  # fmt: skip
    pq.write_table(table, path, row_group_size=5, use_dictionary=False,
                   write_statistics=False, compression="none")  # fmt: skip
    metadata = pq.ParquetFile(path).metadata
    names = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
    chunk = metadata.row_group(1).column(names.index("process.executable"))
    data = bytearray(path.read_bytes())
    # the page header's data page header (field 5, a struct), its values (field 1): 5
    at = data.index(b"\x2c\x15\x0a", chunk.data_page_offset)
    assert at < chunk.data_page_offset + 16
    data[at + 2] = 0
    path.write_bytes(bytes(data))
    return path


@EVERY_READING_COMMAND
def test_a_short_row_group_in_a_stretch_is_damage_not_misread(
    tmp_path: Path, command: list[str]
) -> None:
    """pyarrow asked for several row groups at once reads each column on into the next
    row group where one stops short: the rows after it pair one row's process with
    another's executable, unsaid. A stretch's row groups are read one by one, each
    counted against its footer: the file's Error: line names the row group."""
    path = _misaligning(tmp_path / "short.parquet")
    columns = ["process.entity_id", "process.executable"]
    reader = pq.ParquetFile(path)
    paired = [
        pair
        for batch in reader.iter_batches(batch_size=5, row_groups=[0, 1, 2], columns=columns)
        for pair in zip(*(batch.column(i).to_pylist() for i in range(2)), strict=True)
    ]
    assert ("E5", "C:\\x10.exe") in paired  # what pyarrow does read across row groups
    output = [] if command[0] == "pivot" else ["-o", str(tmp_path / "out.csv")]
    result = CliRunner().invoke(app, [*command, str(path), *output])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "short.parquet: Parquet data cannot be read (row group 1: its columns" in result.output
    assert "hold 0 rows, not the 5 it says); the copy may be damaged" in result.output


def test_a_stretch_s_batch_holds_its_row_groups_dictionaries_within_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each row group's dictionary is its own, held whole by a read whatever its rows use
    of it: 40 row groups of one row, each with a dictionary of 1,000 texts of 1 KiB, are
    batched a few row groups at a time, within PARQUET_BYTES. Counted by the rows' values
    alone, they were one batch (2,000 such row groups held 2.2 GB; now 215 MB)."""
    from egress_offline.readers.parquet_batches import batches, text_reader  # noqa: PLC0415

    values = pa.array([f"{i:06d}" * 170 for i in range(1_000)])
    kind = pa.dictionary(pa.int32(), pa.string())
    path = tmp_path / "dictionaries.parquet"
    with pq.ParquetWriter(path, pa.schema([("process.executable", kind)])) as writer:
        for group in range(40):
            indices = pa.array([group], pa.int32())
            writer.write_table(pa.table({"process.executable": pa.DictionaryArray.from_arrays(
                indices, values)}))  # fmt: skip
    monkeypatch.setattr(tuning, "PARQUET_BYTES", 4 << 20)
    with pa.OSFile(str(path)) as source:
        reader = text_reader(source, pq.ParquetFile(source).metadata, ["process.executable"])
        read = list(batches(reader, tuple(range(40)), ["process.executable"], 65_536))
    assert [table.num_rows for table in read] == [4] * 10
    texts = [text for table in read for text in table.column(0).to_pylist()]
    assert texts == [f"{i:06d}" * 170 for i in range(40)]


@pytest.mark.parametrize("dictionary", [False, True], ids=["plain", "dictionary"])
def test_a_stretch_of_one_row_groups_is_batched_a_bounded_number_at_a_time(
    tmp_path: Path, dictionary: bool
) -> None:
    """Each read of a row group holds buffers and objects whatever its rows: 65,536
    one-row row groups gathered into one batch took 200 to 500 MB, and its 65,536
    chunks made every query on it 25 times slower. A batch gathers at most 2,048 reads,
    and is one chunk, plain or dictionary encoded (an attacker's pass, stop 42)."""
    from egress_offline.readers.parquet_batches import batches, text_reader  # noqa: PLC0415

    path = tmp_path / "ones.parquet"
    schema = pa.schema([("@timestamp", pa.string()), ("event.action", pa.string())])
    with pq.ParquetWriter(path, schema, use_dictionary=dictionary) as writer:
        for group in range(3_000):
            writer.write_table(pa.table({"@timestamp": [f"T{group}"],
                                         "event.action": ["disconnect_received"]}, schema))  # fmt: skip
    columns = ["@timestamp", "event.action"]
    with pa.OSFile(str(path)) as source:
        reader = text_reader(source, pq.ParquetFile(source).metadata, columns)
        (stretch,) = stretches(reader.metadata)
        read = list(batches(reader, stretch, columns, 65_536))
    assert len(read) == 2
    assert all(table.num_rows <= 2_048 for table in read)
    assert all(table.column(i).num_chunks == 1 for table in read for i in range(2))
    texts = [text for table in read for text in table.column(0).to_pylist()]
    assert texts == [f"T{group}" for group in range(3_000)]


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


@pytest.mark.parametrize("said", [0, 50])
@EVERY_READING_COMMAND
def test_a_row_group_that_says_fewer_rows_than_it_holds_is_damage(
    tmp_path: Path, command: list[str], said: int
) -> None:
    """pyarrow reads as many rows as a row group's footer says: a footer patched to say
    0 or 50 rows of a row group of 100 read 300 or 350 rows of 400, exit 0 (an
    attacker's pass, stop 42). A column of one value a row whose pages or footer hold
    more values than its row group's rows is the file's Error: line."""
    table = pa.table({"@timestamp": ["2024-05-01T11:00:00.000Z"] * 400,
                      "event.action": ["disconnect_received"] * 400,
                      "process.entity_id": ["E1"] * 400})  # fmt: skip
    path = tmp_path / "said.parquet"
    pq.write_table(table, path, row_group_size=100)
    data = bytearray(path.read_bytes())
    metadata = pq.ParquetFile(path).metadata
    # RowGroup: total_byte_size (field 2), then num_rows (field 3), both zigzag varints
    total = metadata.row_group(0).total_byte_size
    pattern = b"\x16" + _varint(total << 1) + b"\x16" + _varint(100 << 1)
    at = data.index(pattern) + len(pattern) - 2
    data[at : at + 2] = bytes([0x80 | (said << 1), 0x00])  # the same length, not shortest
    path.write_bytes(bytes(data))
    assert pq.ParquetFile(path).metadata.row_group(0).num_rows == said
    assert pq.read_table(path).num_rows == 300 + said  # pyarrow's reading, unsaid
    output = [] if command[0] == "pivot" else ["-o", str(tmp_path / "out.csv")]
    result = CliRunner().invoke(app, [*command, str(path), *output])
    assert result.exit_code == 1, result.output
    assert (
        f"said.parquet: Parquet data cannot be read (row group 0, column @timestamp: it "
        f"holds 100 values, one a row, but its row group says {said} rows: only those "
        "would be read); the copy may be damaged"
    ) in " ".join(result.output.split())
