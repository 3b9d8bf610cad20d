"""Bounded whatever the input (issue 19): decompression, long lines, JSON documents and
Parquet row groups read a bounded piece at a time; the scratch space budgeted, compact,
and removed however the run ends. The limits are lowered here to reach each path at
sizes that keep the suite fast; ``benchmarks/hostile.py`` runs the full sizes."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from egress_offline import HuntSpec, InputError, ScratchError, SweepSpec, run_hunt, run_sweep
from egress_offline.cli import app
from egress_offline.engine.spill import Spill
from egress_offline.readers import tuning
from egress_offline.readers.compression import decompressed
from egress_offline.readers.discover import open_inputs
from egress_offline.readers.textcheck import check_text
from egress_offline.scratch import MARKER, Scratch, remove_stale
from tests import hostile_inputs as hostile
from tests.helpers import NOW, event, ndjson, zstd_compress

NOW_TEXT = "2024-05-01T12:00:00Z"
PACK = {"none": lambda b: b, "gzip": lambda b: gzip.compress(b, 1), "zstd": zstd_compress}
SUFFIX = {"none": "", "gzip": ".gz", "zstd": ".zst"}


def entities(result: object) -> list[str]:
    return sorted(r["process.entity_id"] for r in result.rows.to_dicts())  # type: ignore[attr-defined]


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuning, "FAST_LINE", 4_096)
    monkeypatch.setattr(tuning, "LINE_LIMIT", 16_384)
    monkeypatch.setattr(tuning, "INFLATE_CAP", 8_192)


# ---------------------------------------------------------------- decompression


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_every_decompression_call_gives_at_most_the_cap(
    compression: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small file that expands a thousandfold is read a capped piece at a time."""
    monkeypatch.setattr(tuning, "INFLATE_CAP", 65_536)
    text = b"A" * (20 << 20)
    packed = PACK[compression](text)
    assert len(packed) < len(text) // 200
    import io  # noqa: PLC0415

    sizes = [len(piece) for piece in decompressed(io.BytesIO(packed), compression, print)]  # type: ignore[arg-type]
    assert sum(sizes) == len(text)
    assert max(sizes) <= 65_536


# -------------------------------------------------------------------- long lines


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
@pytest.mark.parametrize("ended", [True, False])
def test_a_line_over_the_limit_is_one_malformed_record_skipped_unread(
    tmp_path: Path, small_limits: None, compression: str, ended: bool
) -> None:
    huge = b'{"message":"' + b"A" * 50_000 + b'"}'
    body = ndjson([event(**{"process.entity_id": "BEFORE"})]) + huge
    body += b"\n" + ndjson([event(**{"process.entity_id": "AFTER"})]) if ended else b""
    path = tmp_path / f"x.ndjson{SUFFIX[compression]}"
    path.write_bytes(PACK[compression](body))
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert entities(result) == (["AFTER", "BEFORE"] if ended else ["BEFORE"])
    report = result.files[0]
    assert (report.records, report.malformed, report.reader) == (2 + ended, 1, "careful")
    length = len(huge)
    assert report.positions == [
        f"line 2: line longer than 16,384 bytes ({length:,} bytes, skipped unread)"
    ]


def test_a_line_not_utf8_beside_one_over_the_limit_in_a_block_is_counted(
    tmp_path: Path, small_limits: None
) -> None:
    """Found by an attacker's pass (stop 51): where a block of text held a whole line over
    the limit (the limit set below a piece's size), the lines of it that were not UTF-8
    were dropped unseen, neither records nor malformed."""
    huge = b'{"message":"' + b"A" * 50_000 + b'"}'
    body = (
        ndjson([event(**{"process.entity_id": "BEFORE"})]) + b"\xff\n" + huge + b"\n"
        + ndjson([event(**{"process.entity_id": "AFTER"})])
    )  # fmt: skip
    path = tmp_path / "x.ndjson"
    path.write_bytes(body)
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert entities(result) == ["AFTER", "BEFORE"]
    report = result.files[0]
    assert (report.records, report.malformed) == (4, 2)
    assert report.positions == [
        "line 2: bytes that are not UTF-8",
        f"line 3: line longer than 16,384 bytes ({len(huge):,} bytes, skipped unread)",
    ]


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_a_line_over_the_fast_limit_but_under_the_limit_is_read(
    tmp_path: Path, small_limits: None, compression: str
) -> None:
    """Between the two limits: Polars would hold it several times; the careful reader
    reads it, whole."""
    long = event(**{"process.entity_id": "LONG"})
    long["message"] = "A" * 8_000
    body = ndjson([event(), long, event(**{"process.entity_id": "E2"})])
    path = tmp_path / f"x.ndjson{SUFFIX[compression]}"
    path.write_bytes(PACK[compression](body))
    # an uncompressed file is checked where it lies only when larger than half the limit
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert entities(result) == ["E1", "E2", "LONG"]
    assert result.counts.malformed == 0
    assert result.files[0].reader == "careful"


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_a_batch_of_lines_holds_its_text_s_worth_whatever_the_first_lines_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compression: str
) -> None:
    """Short lines first, long ones after, each a candidate whose text leaves the scan: a
    batch holds about ``BATCH_TEXT`` of them (or one of Polars' reads), not as many lines
    as that would be of the first lines' length (800 lines of 1 MiB in 37 KB of zstd
    took over 3 GB, each batch 16,384 lines)."""
    from egress_offline.readers import ndjson as fast_reader  # noqa: PLC0415

    monkeypatch.setenv(tuning.READ_SIZE_VAR, str(64 << 10))  # Polars' reads: 64 KiB
    monkeypatch.setattr(tuning, "BATCH_TEXT", 256 << 10)
    short = [event(**{"process.entity_id": f"S{i}"}) for i in range(200)]
    long = [event(**{"process.entity_id": f"L{i}", "process.executable": "x" * 20_000})
            for i in range(300)]  # fmt: skip
    path = tmp_path / f"x.ndjson{SUFFIX[compression]}"
    path.write_bytes(PACK[compression](ndjson(short + long)))
    held: list[int] = []
    real = fast_reader._account_batch

    def account(batch: pl.DataFrame, *args: Any, **kwargs: Any) -> Any:
        held.append(int(batch.get_column("line").str.len_bytes().sum()))
        return real(batch, *args, **kwargs)

    monkeypatch.setattr(fast_reader, "_account_batch", account)
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert result.files[0].reader == "fast"
    assert len(entities(result)) == 500
    assert sum(held) > 6_000_000
    assert max(held) <= (256 + 64 + 21) << 10  # the batch's text, a read and a line


def test_the_text_check_finds_what_the_fast_reader_cannot_read(
    tmp_path: Path, small_limits: None
) -> None:
    """A compressed file is checked in one bounded pass: its long lines, its damage, its
    bytes that are not UTF-8, its exact text size and its last bytes."""
    good = ndjson([event()] * 3)
    cases = {
        "fine": gzip.compress(good),
        "long": gzip.compress(good + b"A" * 10_000 + b"\n" + good),
        "cut": gzip.compress(good * 50)[:-30],
        "latin": gzip.compress(good + b'{"x":"caf\xe9"}\n' + good),
    }
    found = {}
    for name, data in cases.items():
        (tmp_path / f"{name}.ndjson.gz").write_bytes(data)
    with open_inputs([str(tmp_path)]) as inputs:
        for file in inputs.files:
            found[Path(file.path).name.split(".")[0]] = check_text(file)
    assert found["fine"].fast
    assert (found["fine"].text_size, found["fine"].tail) == (len(good), good)
    assert found["long"].why_not == "a line longer than 4,096 bytes"
    assert found["cut"].why_not.startswith("gzip data ends early")
    assert found["latin"].why_not == "bytes that are not UTF-8"


def test_invalid_utf8_in_a_gzip_goes_to_the_careful_reader_without_polars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The text check finds the byte first: Polars' scan (which held the text before it,
    3.5 GB for 600 MB) is never started."""
    path = hostile.invalid_utf8_then_lines(tmp_path / "x.ndjson.gz", 2 << 20)

    def no_scan(*_: object, **__: object) -> None:
        raise AssertionError("the line scan should not run")

    monkeypatch.setattr("egress_offline.readers.ndjson.line_scan", no_scan)
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert entities(result) == ["E0", "E1", "E2"]
    assert result.files[0].reader == "careful"
    assert result.counts.malformed == 1


# --------------------------------------------------------------- JSON documents


def test_a_json_array_is_read_value_by_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values are found a bounded piece of text at a time and decoded some at a time:
    the array's total is far over the value limit, each element under it."""
    monkeypatch.setattr(tuning, "LINE_LIMIT", 4_096)
    monkeypatch.setattr(tuning, "DECODE_BYTES", 2_048)
    monkeypatch.setattr(tuning, "INFLATE_CAP", 1_000)
    docs = [event(**{"process.entity_id": f"E{i % 4}"}) for i in range(200)]
    docs[7] = {"not": "a record of the hunt"}
    path = tmp_path / "x.json.zst"
    path.write_bytes(zstd_compress(json.dumps(docs, indent=2).encode()))
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert entities(result) == ["E0", "E1", "E2", "E3"]
    assert result.counts.records == 200


def test_a_search_response_s_hits_are_streamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tuning, "LINE_LIMIT", 4_096)
    hits = [
        {"_index": "i", "_id": f"d{i}", "_source": event(**{"process.entity_id": f"E{i % 2}"})}
        for i in range(100)
    ]
    response = {"took": 3, "timed_out": False, "hits": {"total": {"value": 100}, "hits": hits}}
    async_response = {"is_partial": True, "is_running": False, "response": response}
    for name, value in (("search", response), ("async", async_response)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(value))
        result = run_hunt([str(path)], HuntSpec(now=NOW))
        assert entities(result) == ["E0", "E1"]
        assert result.counts.records == 100
        notes = result.files[0].notes
        assert any("marked partial" in note for note in notes) is (name == "async")


def test_a_json_value_over_the_limit_is_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tuning, "LINE_LIMIT", 4_096)
    big = event()
    big["message"] = "A" * 10_000
    path = tmp_path / "x.json"
    path.write_text(json.dumps([event(), big]))
    with pytest.raises(InputError) as caught:
        run_hunt([str(path)], HuntSpec(now=NOW))
    assert str(caught.value) == (
        f"{path}: a JSON value at line 1 is longer than 4,096 characters, which no "
        "Elasticsearch export holds; it was not read"
    )


# ------------------------------------------------------------------------ Parquet


def test_one_parquet_row_group_is_read_a_batch_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row group of 30,000 rows, read in batches of 1,000 and 4,000: no batch larger,
    and the same rows as --strict, which reads every row."""
    monkeypatch.setattr(tuning, "PARQUET_ROWS", 1_000)
    monkeypatch.setattr(tuning, "SCREEN_ROWS", 4_000)
    path = hostile.parquet_rows(tmp_path / "x.parquet", 30_000)
    import pyarrow.parquet as pq  # noqa: PLC0415

    assert pq.ParquetFile(path).metadata.num_row_groups == 1
    largest = []
    real = pq.ParquetFile.iter_batches

    def spied(self: object, *args: object, **options: object) -> object:
        for batch in real(self, *args, **options):  # type: ignore[arg-type]
            largest.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spied)
    spec = HuntSpec(now=NOW, threshold=1)
    fast = run_hunt([str(path)], spec)
    strict = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1, strict=True))
    assert max(largest) <= 4_000
    assert fast.rows.equals(strict.rows)
    assert fast.rows.get_column("total_bytes_out").to_list() == [10_000] * 3


@pytest.mark.parametrize("dictionary", [True, False], ids=["dictionary", "plain"])
def test_wide_rows_after_narrow_ones_are_read_in_batches_of_their_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dictionary: bool
) -> None:
    """A row group whose first 1,024 rows are short and the rest 4 KiB: each batch read
    holds about PARQUET_BYTES (here 1 MiB) decoded, however its first rows looked. A
    batch size guessed from the first rows took all 20,000 (80 MB; at 300,000 rows,
    6.6 GB from a 13 KB file). In the hunt, the sweep and --strict, each to the exact
    totals."""
    from egress_offline.readers import (  # noqa: PLC0415
        parquet,
        parquet_batches,
        parquet_screen,
        parquet_spans,
    )

    monkeypatch.setattr(tuning, "PARQUET_BYTES", 1 << 20)
    long = "C:\\" + "x" * 4093
    path = hostile.parquet_rows(tmp_path / "x.parquet", 20_000, executable=long,
                                short_first=1_024, dictionary=dictionary)  # fmt: skip
    sizes: list[int] = []
    real = parquet_batches.batches

    def spied(*args: Any) -> Any:
        for table in real(*args):
            sizes.append(sum(_text_bytes(column) for column in table.columns))
            yield table

    for module in (parquet, parquet_screen, parquet_spans):
        monkeypatch.setattr(module, "batches", spied)
    # rows 0 to 1,023 short (E0 342 of them, E1 and E2 341), the 18,976 after them long
    expected = [(6326, "E1", long), (6325, "E0", long), (6325, "E2", long),
                (342, "E0", "C:\\a.exe"), (341, "E1", "C:\\a.exe"), (341, "E2", "C:\\a.exe")]  # fmt: skip
    for run in (
        lambda: run_hunt([str(path)], HuntSpec(now=NOW, threshold=1)),
        lambda: run_hunt([str(path)], HuntSpec(now=NOW, threshold=1, strict=True)),
        lambda: run_sweep([str(path)], SweepSpec(threshold=1)),
    ):
        sizes.clear()
        rows = run().rows
        assert sizes
        assert max(sizes) <= (1 << 20) + 4096
        keys = ("total_bytes_out", "process.entity_id", "process.executable")
        assert list(rows.select(keys).iter_rows()) == expected


@pytest.mark.parametrize("dictionary", [True, False], ids=["dictionary", "plain"])
def test_rows_of_a_wide_value_are_never_read_4096_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dictionary: bool
) -> None:
    """1,000 rows whose executable is 64 KiB, in a file without pyarrow's schema (as
    other writers make them): pyarrow decoded 4,096 rows a read, 64 MB here (a 2.4 KB
    file of 8,192 rows of one 1 MiB value took 7.5 GB). A dictionary column is read as
    a dictionary, decoded once the batch is sized; plain texts are read as few rows at a
    time as the footer's sizes say fit PARQUET_BYTES (here 1 MiB). The exact totals."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    monkeypatch.setattr(tuning, "PARQUET_BYTES", 1 << 20)
    long = "C:\\" + "x" * 65_533
    path = hostile.parquet_rows(tmp_path / "x.parquet", 1_000, executable=long,
                                dictionary=dictionary, arrow_schema=False)  # fmt: skip
    reads: list[int] = []
    real = pq.ParquetFile.iter_batches

    def spied(self: object, *args: object, **options: object) -> object:
        for read in real(self, *args, **options):  # type: ignore[arg-type]
            reads.append(read.nbytes)  # what pyarrow made: a dictionary counted once
            yield read

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spied)
    for spec in (HuntSpec(now=NOW, threshold=1), HuntSpec(now=NOW, threshold=1, strict=True)):
        reads.clear()
        rows = run_hunt([str(path)], spec).rows
        assert reads
        assert max(reads) <= (1 << 20) + 65_536
        keys = ("total_bytes_out", "process.entity_id", "process.executable")
        assert list(rows.select(keys).iter_rows()) == [
            (334, "E0", long),
            (333, "E1", long),
            (333, "E2", long),
        ]


def test_a_part_of_a_read_of_long_lists_is_decoded_alone(tmp_path: Path) -> None:
    """20 rows whose event.action is 100,000 copies of one dictionary value (a few KB of
    file): a part of a read is decoded alone (a cast of a one-row slice decoded every
    row's list: 2 million values), and the totals are exact in the hunt and --strict."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    from egress_offline.readers.parquet_arrow import as_text as _as_text  # noqa: PLC0415

    rows, each = 20, 100_000
    action = pa.ListArray.from_arrays(
        pa.array(range(0, rows * each + 1, each), pa.int32()),
        pa.DictionaryArray.from_arrays(pa.array([0] * (rows * each), pa.int32()),
                                       pa.array(["disconnect_received"])),
    )  # fmt: skip
    one = _as_text(pa.Table.from_batches([pa.record_batch({"a": action}).slice(3, 1)]))
    assert len(one.column("a").chunk(0).values) == each
    base = pq.read_table(hostile.parquet_rows(tmp_path / "base.parquet", rows))
    table = base.set_column(base.schema.get_field_index("event.action"), "event.action", action)
    path = tmp_path / "x.parquet"
    pq.write_table(table, path, store_schema=False)
    assert path.stat().st_size < 100_000
    for spec in (HuntSpec(now=NOW, threshold=1), HuntSpec(now=NOW, threshold=1, strict=True)):
        result = run_hunt([str(path)], spec).rows
        assert result.get_column("total_bytes_out").to_list() == [7, 7, 6]


def test_a_map_of_dictionaries_is_read_as_pyarrow_reads_it(tmp_path: Path) -> None:
    """A column that is a map of dictionary texts (no export has one): read, not a
    traceback (``ArrowNotImplementedError`` from sizing it before); a map is no text, so
    no row has event.action, and the summary says so."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    base = pq.read_table(hostile.parquet_rows(tmp_path / "base.parquet", 30))
    words = pa.array(["disconnect_received"] * 30).dictionary_encode()
    action = pa.MapArray.from_arrays(pa.array(range(31), pa.int32()), words, words)
    table = base.set_column(base.schema.get_field_index("event.action"), "event.action", action)
    path = tmp_path / "x.parquet"
    pq.write_table(table, path)
    result = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1))
    assert result.rows.height == 0


def test_any_pyarrow_error_while_reading_names_the_file() -> None:
    """pyarrow's errors that are not ValueErrors (ArrowNotImplementedError, say) become
    the file's InputError, the cause kept, never a traceback."""
    import pyarrow as pa  # noqa: PLC0415

    from egress_offline.readers.boundary import translated  # noqa: PLC0415
    from egress_offline.readers.model import InputFile  # noqa: PLC0415

    file = InputFile.__new__(InputFile)
    object.__setattr__(file, "name", "x.parquet")
    object.__setattr__(file, "format", "parquet")
    with pytest.raises(InputError) as caught, translated(file):
        raise pa.ArrowNotImplementedError("Function 'list_flatten' has no kernel")
    assert str(caught.value) == (
        "x.parquet: Parquet data cannot be read (Function 'list_flatten' has no kernel); "
        "the copy may be damaged, export it again"
    )
    assert isinstance(caught.value.__cause__, pa.ArrowNotImplementedError)
    with pytest.raises(TypeError), translated(file):  # not pyarrow's: left as it is
        raise TypeError("a bug of ours")
    # pyarrow's decompression errors are plain OSErrors, without an errno: the data's
    with pytest.raises(InputError) as caught, translated(file):
        raise OSError("Corrupt Lz4 compressed data.")
    assert str(caught.value) == (
        "x.parquet: Parquet data cannot be read (Corrupt Lz4 compressed data.); "
        "the copy may be damaged, export it again"
    )
    with pytest.raises(InputError, match="check the file and its permissions"), translated(file):
        raise PermissionError(13, "Permission denied")


def _text_bytes(column: Any) -> int:
    """A column's text bytes, decoded, counted one value at a time."""
    return sum(len(value) for value in column.to_pylist() if isinstance(value, str))


def test_decoded_bytes_counts_each_row_of_a_dictionary_as_its_own_copy() -> None:
    import pyarrow as pa  # noqa: PLC0415

    from egress_offline.readers.parquet_arrow import decoded_bytes  # noqa: PLC0415

    words = pa.DictionaryArray.from_arrays(pa.array([0, 1, 1, 1], pa.int32()),
                                           pa.array(["a" * 100, "b" * 1000]))  # fmt: skip
    plain = pa.record_batch({"n": pa.array([1, 2, 3, 4], pa.int64())})
    assert decoded_bytes(plain) == plain.nbytes
    flat = pa.record_batch({"w": words})
    assert decoded_bytes(flat) == 4 * 8 + 3_100
    nested = pa.StructArray.from_arrays([words, pa.array([1, 2, 3, 4])], names=["w", "n"])
    assert decoded_bytes(pa.record_batch({"s": nested})) == 4 * 8 + (4 * 8 + 3_100) + 4 * 8
    listed = pa.ListArray.from_arrays(pa.array([0, 2, 4], pa.int32()), words)
    assert decoded_bytes(pa.record_batch({"l": listed})) == 2 * 8 + 4 * 8 + 3_100
    numbers = pa.DictionaryArray.from_arrays(pa.array([0, 0, 0], pa.int32()),
                                             pa.array([7], pa.int64()))  # fmt: skip
    assert decoded_bytes(pa.record_batch({"d": numbers})) == 3 * 8


# ------------------------------------------------------------------------ scratch


def test_rows_sharing_a_long_string_take_little_scratch(tmp_path: Path) -> None:
    """100,000 rows of one 4 KiB executable: 400 MB were written to scratch; compressed,
    the run fits in 16 MB."""
    path = hostile.parquet_rows(
        tmp_path / "x.parquet", 100_000, row_group=20_000, executable="C:\\" + "x" * 4093
    )
    result = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1), scratch_limit=16 << 20)
    assert result.rows.height == 3


def test_flagged_groups_of_long_keys_get_their_context(tmp_path: Path) -> None:
    """20,000 rows of three flagged groups whose executable, host and user names are
    4 KiB each, and 1,000 ports: each group's context is its distinct values, read within
    16 MB of scratch, in the hunt and the sweep."""
    long = "h" * 4096
    path = hostile.parquet_rows(tmp_path / "x.parquet", 20_000, row_group=5_000,
                                executable="C:\\" + "x" * 4093, context=long)  # fmt: skip
    hunted = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1), scratch_limit=16 << 20)
    swept = run_sweep([str(path)], SweepSpec(threshold=1), scratch_limit=16 << 20)
    for rows in (hunted.rows, swept.rows):
        assert rows.get_column("process.entity_id").to_list() == ["E0", "E1", "E2"]
        assert rows.get_column("host.name").to_list() == [[long]] * 3
        assert rows.get_column("user.name").to_list() == [[long]] * 3
        # row i is E(i % 3) to port i % 1000: every group meets every port
        every = sorted(str(port) for port in range(1000))
        assert rows.get_column("destination.port").to_list() == [every] * 3


def test_passing_the_scratch_limit_stops_the_run_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)
    monkeypatch.setattr(tuning, "SPILL_HELD", 0)  # the spill on disk from its first byte
    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson([event(**{"process.entity_id": f"E{i}"}) for i in range(5_000)]))
    with pytest.raises(ScratchError) as caught:
        run_hunt([str(path)], HuntSpec(now=NOW), scratch_limit=10_000)
    assert str(caught.value) == (
        f"the run needs more than 10,000 bytes (9.8 KiB) of scratch space in {scratch} "
        "(--scratch-limit); raise --scratch-limit, or set TMPDIR to a disk with more free "
        "space"
    )
    assert not list(scratch.iterdir())
    code = CliRunner().invoke(app, ["hunt", str(path), "--scratch-limit", "10KB"])
    assert code.exit_code == 1
    assert code.stderr.startswith("Error: the run needs more than 10,000 bytes")
    bad = CliRunner().invoke(app, ["hunt", str(path), "--scratch-limit", "lots"])
    assert bad.exit_code == 2
    assert "Error: --scratch-limit: 'lots' is not a size" in bad.stderr


def test_a_spill_is_held_in_memory_up_to_its_bound_then_written_to_disk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The spill's first :data:`tuning.SPILL_HELD` bytes stay in memory as frames (no
    scratch file, nothing charged to the budget); past them, each part goes to a scratch
    file. Read back, the rows are the same either way, in the order spilled."""
    frames = [
        pl.DataFrame({"n": range(at, at + 5_000), "s": ["x"] * 5_000}) for at in (0, 5_000, 10_000)
    ]
    with Scratch() as scratch:
        spill = Spill(scratch)
        for frame in frames:
            spill.add(frame)
        held = spill.files
        assert all(isinstance(part, pl.DataFrame) for part in held)
        assert scratch.used == 0
        assert spill.scan({}).collect().equals(pl.concat(frames))
    sizes = [part.estimated_size() for part in held]  # type: ignore[union-attr]
    monkeypatch.setattr(tuning, "SPILL_HELD", sizes[0] + sizes[1] // 2)
    with Scratch() as scratch:
        spill = Spill(scratch)
        for frame in frames:
            spill.add(frame)
        parts = spill.files
        assert [type(part) for part in parts[:1]] == [pl.DataFrame]
        assert all(isinstance(part, Path) for part in parts[1:])
        assert scratch.used == sum(part.stat().st_size for part in parts[1:])  # type: ignore[union-attr]
        assert all(pl.read_ipc(p).equals(f) for p, f in zip(parts[1:], frames[1:], strict=True))
        assert spill.scan({}).collect().equals(pl.concat(frames))


def _buffer_bytes(frame: pl.DataFrame) -> int:
    """The bytes of every Arrow buffer ``frame``'s text columns hold, shared with other
    frames or not."""
    total = 0
    for column in frame.select("s", "l").get_columns():
        exported = column.to_arrow(compat_level=pl.CompatLevel.newest())
        for chunk in getattr(exported, "chunks", [exported]):
            total += sum(buffer.size for buffer in chunk.buffers() if buffer is not None)
    return total


def test_a_spilled_frame_held_in_memory_holds_only_its_own_rows() -> None:
    """A few rows filtered from a large frame still point into its buffers; held in the
    spill, they are a compact copy: the spill's memory room counts what it holds, and a
    sparse export's few rows from each of many batches do not keep every batch alive."""
    large = pl.DataFrame(
        {
            "s": [f"{'x' * 1_000}{i}" for i in range(20_000)],
            "l": [[f"{'y' * 500}{i}"] for i in range(20_000)],
            "n": pl.Series(range(20_000), dtype=pl.Int128),
        }
    )
    few = large.filter(pl.col("n") % 2_000 == 0)
    assert _buffer_bytes(few) > 20_000_000  # the filter alone keeps the large buffers
    with Scratch() as scratch:
        spill = Spill(scratch)
        spill.add(few)
        [held] = spill.files
        assert isinstance(held, pl.DataFrame)
        assert held.equals(few)
        assert held.schema == few.schema  # Int128 kept
        assert _buffer_bytes(held) < 50_000


def test_a_failed_spill_write_stops_the_writes_after_it_and_is_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Spilled parts are written on a thread of their own. The first write over the
    budget fails; no write after it is made (the scratch directory holds that one file),
    and its failure is raised, by a later hand-over or when the parts are asked for."""
    monkeypatch.setattr(tuning, "SPILL_HELD", 0)
    frame = pl.DataFrame({"n": range(5_000), "s": ["x"] * 5_000})
    with Scratch(limit=1_000) as scratch:
        spill = Spill(scratch)
        with pytest.raises(ScratchError, match="more than 1,000 bytes"):
            for _ in range(10):
                spill.add(frame)
            spill.files  # noqa: B018 - asked for: raises
        spill.close()  # every write handed over has been made, or refused
        assert [p.name for p in scratch.root.iterdir() if p.name != MARKER] == [
            "spill-000000.arrow"
        ]
        with pytest.raises(ScratchError):  # and again, each time
            spill.files  # noqa: B018


def test_the_scratch_directory_is_removed_after_the_spill_writes_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run that ends while parts are being written (an error elsewhere) waits for
    them before its scratch directory is removed: nothing is left, no thread runs on."""
    monkeypatch.setattr(tuning, "SPILL_HELD", 0)
    frame = pl.DataFrame({"n": range(50_000), "s": ["x"] * 50_000})
    with pytest.raises(InputError), Scratch() as scratch:
        spill = Spill(scratch)
        for _ in range(3):
            spill.add(frame)
        root = scratch.root
        raise InputError("elsewhere")
    assert not root.exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("egress-offline-spill")]


@pytest.mark.parametrize("bounds", [None, (499, 2_200)])
def test_a_spill_rolled_back_holds_what_it_held_at_its_mark(
    monkeypatch: pytest.MonkeyPatch, bounds: tuple[int, int] | None
) -> None:
    """What a file added after the mark (parts, on disk past the held bytes, and
    timestamps, held, spilled or counted in bounds) is taken out by ``rollback``: its
    scratch files removed, their bytes released from the budget, the rest as before."""
    monkeypatch.setattr(tuning, "SPILL_HELD", 40_000)
    monkeypatch.setattr("egress_offline.engine.spill._STAMP_FLUSH", 1_000)
    frame = pl.DataFrame({"n": range(5_000), "s": [str(i) for i in range(5_000)]})
    with Scratch() as scratch:
        spill = Spill(scratch, stamp_bounds=bounds)
        after, before_ms = bounds or (None, None)

        def counted() -> int:
            return spill.count_stamps(after=after, before=before_ms)

        spill.add(frame)
        spill.add_stamps(pl.Series(range(0, 700), dtype=pl.Int64))
        before = (spill.files, scratch.used, counted())
        mark = spill.mark()
        for at in range(700, 3_000, 100):
            spill.add(frame)
            spill.add_stamps(pl.Series(range(at, at + 100), dtype=pl.Int64))
        assert any(isinstance(part, Path) for part in spill.files)  # some went to disk
        spill.rollback(mark)
        assert (spill.files, scratch.used, counted()) == before
        kept = sorted(part.name for part in before[0] if isinstance(part, Path))
        assert sorted(p.name for p in scratch.root.iterdir() if p.name != MARKER) == kept
        spill.add_stamps(pl.Series([1_000], dtype=pl.Int64))  # and it goes on as before
        assert counted() == before[2] + 1


def test_a_spill_rolled_back_has_its_memory_room_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A part that did not fit in memory after the mark went to disk and filled the
    spill's room; rolled back, the room is what the parts still held leave free."""
    small = pl.DataFrame({"n": range(100)})
    with Scratch() as scratch:
        probe = Spill(scratch)
        probe.add(small)
        [held] = probe.files
        assert isinstance(held, pl.DataFrame)
    monkeypatch.setattr(tuning, "SPILL_HELD", 3 * int(held.estimated_size()))
    big = pl.DataFrame({"s": [str(i) for i in range(50_000)]})
    with Scratch() as scratch:
        spill = Spill(scratch)
        spill.add(small)
        mark = spill.mark()
        spill.add(big)
        assert isinstance(spill.files[-1], Path)
        spill.rollback(mark)
        spill.add(small)
        assert [type(part) for part in spill.files] == [pl.DataFrame, pl.DataFrame]


@pytest.mark.fast_reader
def test_a_spill_write_failing_before_a_give_up_is_not_the_input_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spilled part's write fails (an I/O error of the scratch disk) just before the
    fast reader gives up on a large file: the rollback raises it as it is, not as the
    input file being unreadable, with or without the file's output handed on as read."""
    from egress_offline.engine import spill as spill_module  # noqa: PLC0415
    from egress_offline.readers import ndjson as fast_reader  # noqa: PLC0415
    from tests.helpers import GiB, fail_after_batches  # noqa: PLC0415

    (tmp_path / "a.ndjson").write_bytes(ndjson([event(**{"source.bytes": 2 * GiB})] * 3))
    b = [event(**{"process.entity_id": f"B{i}"}) for i in range(40)]
    (tmp_path / "b.ndjson").write_bytes(ndjson(b))
    monkeypatch.setattr(tuning, "OUTPUT_AS_READ", 0)
    monkeypatch.setattr(tuning, "GATHER_BYTES", 1)
    monkeypatch.setattr(tuning, "SMALL_TEXT", 0)
    monkeypatch.setattr(tuning, "DECODE_BYTES", 1)
    monkeypatch.setattr(fast_reader, "batch_rows", lambda _file, _text: 10)
    fail_after_batches(monkeypatch, 2)  # a's batch, b's first: then b is given up on
    real = spill_module.Spill._write
    names: list[str] = []

    def write(self: Spill, frame: pl.DataFrame, name: str) -> object:
        names.append(name)
        if len(names) == 2:  # b's first part: the last write before the give-up
            raise OSError(5, "Input/output error")
        return real(self, frame, name)

    monkeypatch.setattr(spill_module.Spill, "_write", write)
    with pytest.raises(OSError, match="Input/output error") as raised:
        run_hunt([str(tmp_path)], HuntSpec(now=NOW))
    assert not isinstance(raised.value, InputError)


def test_a_held_output_write_failing_is_not_the_input_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An NDJSON file's output waiting on disk for its end fails to be written (an I/O
    error of the scratch disk): the error leaves as it is, not as the input file being
    unreadable."""
    from egress_offline.readers import held  # noqa: PLC0415

    monkeypatch.setattr(tuning, "HELD_OUTPUT", 1)  # every output on disk
    monkeypatch.setattr(tuning, "DECODE_BYTES", 1 << 10)  # many small outputs

    def write(self: object, frame: pl.DataFrame, path: Path) -> Path:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(held.FileOutput, "_write", write)
    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson([event(**{"process.entity_id": f"E{i}"}) for i in range(2_000)]))
    with pytest.raises(OSError, match="Input/output error") as raised:
        run_hunt([str(path)], HuntSpec(now=NOW))
    assert not isinstance(raised.value, InputError)


def test_a_held_output_of_lists_of_nulls_is_counted_by_its_elements() -> None:
    """A file's output waiting for its end is held up to HELD_OUTPUT (8 MiB) by the
    same size the batcher uses: 1,000 lists of 2,001 elements, all but one null (0 MiB
    to Polars' estimate, 32 MB as elements), go to scratch, not memory."""
    from egress_offline.readers.held import FileOutput  # noqa: PLC0415

    nulls = pl.DataFrame({"b": [["1", *[None] * 2000]] * 1_000}, schema={"b": pl.List(pl.String)})
    with Scratch() as scratch:
        output = FileOutput(scratch)
        output.add(nulls)
        assert output._held == 0  # written, not held
        (back,) = output.release()
        assert back.equals(nulls)


@pytest.mark.parametrize("held", [0, 64 << 20])
def test_spilled_timestamps_count_the_same_held_or_written(
    monkeypatch: pytest.MonkeyPatch, held: int
) -> None:
    """Timestamps past the flush size go to a spilled part, in memory or on disk; those
    in a window count the same either way, with the ones still held; with no bounds,
    every one (the held ones counted one a batch before)."""
    monkeypatch.setattr(tuning, "SPILL_HELD", held)
    monkeypatch.setattr("egress_offline.engine.spill._STAMP_FLUSH", 1_000)
    with Scratch() as scratch:
        spill = Spill(scratch)
        for at in range(0, 2_500, 100):
            spill.add_stamps(pl.Series(range(at, at + 100), dtype=pl.Int64))
        assert spill.count_stamps(after=499, before=2_200) == 1_700
        assert spill.count_stamps() == 2_500
        assert (scratch.used > 0) == (held == 0)


@pytest.mark.parametrize("held", [0, 4 << 20, 64 << 20])
def test_a_hunt_reads_the_same_whether_its_spill_is_held_or_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: int
) -> None:
    """The whole hunt, with its spill on disk (every part), in memory (every part) or
    both (the first parts held), flags the same groups with the same counts; held, it
    writes no scratch file."""
    path = hostile.parquet_rows(tmp_path / "x.parquet", 60_000, row_group=10_000)
    written: list[str] = []
    real = Scratch.path
    monkeypatch.setattr(
        Scratch, "path", lambda self, name: written.append(name) or real(self, name)
    )
    monkeypatch.setattr(tuning, "SPILL_HELD", held)
    result = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1))
    assert result.rows.get_column("total_bytes_out").to_list() == [20_000] * 3
    assert result.counts.event_match == result.counts.public_destination == 60_000
    if held == 0:
        assert written[0] == "spill-000000.arrow"
    elif held == 4 << 20:  # the first parts held (1.4 MB each as frames), the rest written
        assert written
        assert "spill-000000.arrow" not in written
    else:
        assert written == []


def test_the_default_budget_leaves_the_disk_room(tmp_path: Path) -> None:
    with Scratch() as scratch:
        scratch.charge(scratch.path("a"), 1)
        assert scratch.limit is not None
        usage = shutil.disk_usage(tmp_path)
        total, free = usage.total, usage.free
        assert scratch.limit <= free - max(1 << 30, total // 10) + (1 << 20)
    assert not scratch.used


def test_stale_scratch_of_dead_processes_is_removed(tmp_path: Path) -> None:
    """Only a scratch directory that a run made: its name, and its marker of this
    process id namespace. A user's directory named ``egress-offline-<digits>-...``
    (evidence, findings) was removed as one."""
    from egress_offline.scratch import MARKER, _namespace  # noqa: PLC0415

    dead = tmp_path / "egress-offline-999999999-0123abcd"
    alive = tmp_path / f"egress-offline-{os.getppid()}-0123abcd"
    other = tmp_path / "egress-offline-notapid"
    evidence = tmp_path / "egress-offline-2026-11-20"
    findings = tmp_path / "egress-offline-20261120-results"
    unmarked = tmp_path / "egress-offline-999999998-0123abcd"
    elsewhere = tmp_path / "egress-offline-999999997-0123abcd"  # another namespace's
    linked = tmp_path / "egress-offline-999999996-0123abcd"  # its marker a link
    for directory in (dead, alive, other, evidence, findings, unmarked, elsewhere, linked):
        directory.mkdir()
        (directory / "spill-000000.arrow").write_bytes(b"x")
    for directory in (dead, alive, other, evidence, findings):
        (directory / MARKER).write_text(_namespace())
    (elsewhere / MARKER).write_text("pid namespace 1\n")
    (tmp_path / "ns").write_text(_namespace())
    (linked / MARKER).symlink_to(tmp_path / "ns")
    remove_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted(
        p.name for p in (alive, other, evidence, findings, unmarked, elsewhere, linked)
    )


def test_without_proc_no_scratch_is_taken_for_stale(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Without ``/proc`` no process id namespace is known: two containers sharing
    ``/tmp`` would each take the other's live scratch for stale."""
    from egress_offline import scratch as scratch_module  # noqa: PLC0415

    monkeypatch.setattr(scratch_module, "_namespace", lambda: scratch_module._UNKNOWN)
    dead = tmp_path / "egress-offline-999999999-0123abcd"
    dead.mkdir()
    (dead / scratch_module.MARKER).write_text(scratch_module._UNKNOWN)
    remove_stale(tmp_path)
    assert dead.exists()


def test_a_scratch_directory_holds_its_marker_from_its_making(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:  # fmt: skip
    from egress_offline.scratch import MARKER, _namespace  # noqa: PLC0415

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    with Scratch(None) as scratch:
        assert (scratch.root / MARKER).read_text() == _namespace()
        assert _namespace().startswith("pid namespace ")
    assert list(tmp_path.iterdir()) == []


def test_standard_input_is_sniffed_before_it_is_copied(tmp_path: Path) -> None:
    """``cat /dev/zero |``: refused on its first 64 KiB, not copied whole first."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    started = time.perf_counter()
    feeder = subprocess.Popen(["head", "-c", str(4 << 30), "/dev/zero"], stdout=subprocess.PIPE)
    done = subprocess.run(
        [sys.executable, "-m", "egress_offline", "hunt", "-"],
        stdin=feeder.stdout, capture_output=True, text=True,
        env={**os.environ, "TMPDIR": str(scratch)}, check=False, timeout=60,
    )  # fmt: skip
    feeder.kill()
    feeder.wait()
    assert feeder.stdout is not None
    feeder.stdout.close()
    assert time.perf_counter() - started < 20  # 4 GB would take far longer to copy
    assert done.returncode == 1
    assert done.stderr.startswith("Error: <stdin>: not a supported format;")
    assert not list(scratch.iterdir())


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_removes_the_scratch_directory(tmp_path: Path, number: int) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    path = tmp_path / "x.ndjson.zst"
    hostile.valid_events_bomb(path, 2 << 30)
    process = subprocess.Popen(
        [sys.executable, "-m", "egress_offline", "hunt", str(path), "-q", "-o",
         str(tmp_path / "out.csv")],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(scratch)},
    )  # fmt: skip
    # the scratch directory is made once the spill passes what it holds in memory: on a
    # loaded 2-core machine that took over 30 s once (CI, stop 42)
    deadline = time.monotonic() + 120
    while not list(scratch.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(scratch.iterdir())
    process.send_signal(number)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + number
    name = signal.Signals(number).name
    assert err == f"Error: stopped by {name}; no output file was written\n"
    assert not list(scratch.iterdir())
    assert not (tmp_path / "out.csv").exists()


def test_a_signal_just_after_the_scratch_directory_is_made_does_not_leave_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM raises in the main thread wherever it is: taken between the directory
    being made and its name being kept, it left the directory behind."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    real = os.mkdir

    def made_then_stopped(path: Any, *args: Any, **kwargs: Any) -> None:
        real(path, *args, **kwargs)
        raise KeyboardInterrupt  # what the signal handler raises, as Terminated does

    escaped = False
    try:
        with Scratch(None) as scratch:
            monkeypatch.setattr(os, "mkdir", made_then_stopped)
            scratch.path("spill-000000.arrow")
    except KeyboardInterrupt:
        escaped = True
    monkeypatch.setattr(os, "mkdir", real)
    assert escaped
    assert not list(tmp_path.iterdir())


def test_a_scratch_name_taken_is_passed_over_and_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from egress_offline import scratch as scratch_module  # noqa: PLC0415

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    names = iter(["taken000", "free0000"])
    monkeypatch.setattr(scratch_module.secrets, "token_hex", lambda _n: next(names))
    taken = tmp_path / f"egress-offline-{os.getpid()}-taken000"
    taken.mkdir()
    (taken / "theirs").write_bytes(b"x")
    with Scratch(None) as scratch:
        assert scratch.root.name == f"egress-offline-{os.getpid()}-free0000"
    assert [p.name for p in tmp_path.iterdir()] == [taken.name]
    assert (taken / "theirs").exists()


def test_a_second_ctrl_c_does_not_stop_the_scratch_directory_s_removal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second Ctrl-C arriving while the first one's scratch directory is removed
    (10 to 20 ms after it) interrupted the removal and left the directory behind."""
    from egress_offline import scratch as scratch_module  # noqa: PLC0415

    real = shutil.rmtree

    def interrupted(path: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # Python takes the signal here, between two of its steps
        real(path, **kwargs)

    escaped = False
    try:
        with Scratch(None) as scratch:
            root = scratch.root
            (root / "part").write_bytes(b"x")
            monkeypatch.setattr(scratch_module.shutil, "rmtree", interrupted)
    except KeyboardInterrupt:
        escaped = True
    assert not root.exists()
    assert not escaped


@pytest.mark.parametrize(
    ("raised", "code"),
    [(KeyboardInterrupt, 130), (lambda: _terminated(signal.SIGTERM), 143)],
)
def test_a_signal_escaping_the_command_ends_with_its_code_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, raised: Any, code: int
) -> None:
    """A second Ctrl-C (or SIGTERM) while the first was being answered escaped the
    command's error handling: a traceback and exit -2 instead of 130."""
    from egress_offline.cli import commands  # noqa: PLC0415

    def command() -> None:
        raise raised()

    codes: list[int | str] = []
    monkeypatch.setattr(commands, "app", command)
    monkeypatch.setattr(os, "_exit", codes.append)
    numbers = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    saved = {number: signal.getsignal(number) for number in numbers}
    try:
        commands.run()
    except BaseException as exc:  # what escaped is the failure
        codes.append(f"escaped: {exc!r}")
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
    assert codes == [code]


def _terminated(number: int) -> BaseException:
    from egress_offline.cli.stopping import Terminated  # noqa: PLC0415

    return Terminated(number)


# --------------------------------------------------------------------- panics


def test_a_polars_panic_while_reading_is_one_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson([event()]))

    def panics(*_: object, **__: object) -> None:
        raise pl.exceptions.PanicException("index out of bounds")

    monkeypatch.setattr("egress_offline.readers.session.read_ndjson_fast", panics)
    result = CliRunner().invoke(app, ["hunt", str(path)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {path}: Polars failed while reading it (index out of bounds); the file may "
        "be damaged or hostile: export it again, and report this if it persists\n"
    )


def test_a_polars_panic_in_a_csv_scan_is_one_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under ``collect_batches`` a panic inside the scan ended its rows quietly: 0 rows,
    exit 0, the rest of the file unread."""
    path = tmp_path / "discover.csv"
    path.write_text(
        '"@timestamp","host.os.family","event.category","event.action","destination.ip",'
        '"destination.address","process.entity_id","process.executable","source.bytes"\n'
        '"May 1, 2024 @ 11:00:00.000","windows","network","disconnect_received","8.8.8.8",'
        '"8.8.8.8","E1","C:\\evil.exe","1,073,741,824"\n'
    )
    scan_csv = pl.scan_csv

    def panicking(*args: Any, **options: Any) -> pl.LazyFrame:
        def fail(frame: pl.DataFrame) -> pl.DataFrame:
            raise pl.exceptions.PanicException("index out of bounds")

        return scan_csv(*args, **options).map_batches(fail, streamable=True)

    monkeypatch.setattr(pl, "scan_csv", panicking)
    result = CliRunner().invoke(app, ["hunt", str(path), "--now", "2024-05-01T12:00:00Z"])
    assert result.exit_code == 1
    # (before it, what the panic printed: PyO3's stack of the fake, a real one's message)
    assert result.stderr.splitlines()[-1] == (
        f"Error: {path}: Polars failed while reading it (index out of bounds); the file may "
        "be damaged or hostile: export it again, and report this if it persists"
    )


# ------------------------------------------------------------ files that change


@pytest.mark.parametrize("change", ["grew", "shrank"])
def test_a_file_that_changes_while_it_is_read_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    from egress_offline.readers import session as session_module  # noqa: PLC0415

    path = tmp_path / "x.ndjson"
    body = ndjson([event(), event(**{"process.entity_id": "E2"})])
    path.write_bytes(body)
    real = session_module.read_ndjson_fast

    def while_read(*args: object, **options: object) -> object:
        with path.open("ab" if change == "grew" else "r+b") as handle:
            if change == "grew":
                handle.write(ndjson([event(**{"process.entity_id": "LATE"})]))
            else:
                handle.truncate(len(ndjson([event()])))
        return real(*args, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(session_module, "read_ndjson_fast", while_read)
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    after = path.stat().st_size
    assert result.alerts == [
        f"{path}: the file {change} from {len(body):,} to {after:,} bytes while it was read "
        "(a copy still being written?); what was read may not be all of it: read it again "
        "once it is complete"
    ]


def test_the_scratch_directory_is_made_once_whichever_threads_ask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spill's writer thread and the main thread may both make the first scratch
    file at once: one directory is made (a second would never be removed)."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    real = tempfile.mkdtemp

    def slow(*args: Any, **kwargs: Any) -> str:
        time.sleep(0.05)  # both threads inside, were it not for the lock
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", slow)
    with Scratch() as scratch:
        roots: list[Path] = []
        threads = [threading.Thread(target=lambda: roots.append(scratch.root)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert roots[0] == roots[1]
        assert len(list(tmp_path.iterdir())) == 1
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("held", [0, 64 << 20])
def test_the_destination_step_gathers_parts_by_their_size_as_read(
    monkeypatch: pytest.MonkeyPatch, held: int
) -> None:
    """Spilled parts are judged a few at a time up to a size: the size of each part as
    read, not of the few rows the period keeps of it (those still hold the whole part's
    buffers: gathered by what they kept, sixty 21 MiB parts were held at once). Each
    gathered frame says whether it is all from parts held in memory (its rows point into
    them, and the public events judged from it are held as they are)."""
    from egress_offline.engine.aggregate import _gathered  # noqa: PLC0415

    monkeypatch.setattr(tuning, "PUBLIC_BYTES", 1 << 20)
    monkeypatch.setattr(tuning, "SPILL_HELD", held)
    wide = "x" * 100
    with Scratch() as scratch:
        spill = Spill(scratch)
        for part in range(6):
            spill.add(pl.DataFrame({"__ts": range(part * 20_000, (part + 1) * 20_000),
                                    "s": [wide] * 20_000}))  # fmt: skip
        kept = pl.col("__ts") % 20_000 == 0  # one row of each part
        gathered = list(_gathered(spill, pl.DataFrame(), kept))
        assert [frame.get_column("__ts").to_list() for frame, _ in gathered] == [
            [part * 20_000] for part in range(6)
        ]
        assert [in_memory for _, in_memory in gathered] == [held > 0] * 6


def test_the_scratch_directory_is_removed_when_waiting_for_a_writer_is_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second Ctrl-C while the run waits for its writer to stop: the directory is
    removed all the same, and a writer still at work cannot make it again."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    scratch = Scratch()
    scratch.charge(scratch.path("a"), 1)

    def interrupted() -> None:
        raise KeyboardInterrupt

    scratch.on_close(interrupted)
    with pytest.raises(KeyboardInterrupt):
        scratch.close()
    assert not list(tmp_path.iterdir())
    with pytest.raises(ScratchError, match="the run is over"):
        scratch.path("b")
    assert not list(tmp_path.iterdir())


def test_a_file_s_held_output_over_the_budget_stops_the_run_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An NDJSON file's output waiting on disk for its end is written on a thread of
    its own: past the budget, the run stops with the same error, and nothing is left."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)
    monkeypatch.setattr(tuning, "HELD_OUTPUT", 1)  # every output on disk
    monkeypatch.setattr(tuning, "DECODE_BYTES", 1 << 10)  # many small outputs
    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson([event(**{"process.entity_id": f"E{i}"}) for i in range(5_000)]))
    with pytest.raises(ScratchError, match="more than 10,000 bytes"):
        run_hunt([str(path)], HuntSpec(now=NOW), scratch_limit=10_000)
    assert not list(scratch.iterdir())
    assert not [t for t in threading.enumerate() if t.name.startswith("egress-offline-")]
