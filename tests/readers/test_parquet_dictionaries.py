"""Text columns read as dictionaries (pyarrow's ``read_dictionary``): a dictionary page
that repeats an entry is refused, not read against the wrong entries."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from egress_offline import HuntSpec, InputError, run_hunt, run_sweep
from egress_offline.readers.parquet_arrow import dictionary_sizes
from tests.helpers import NOW

ACTION = "disconnect_received"


def _repeating(path: Path, column: str, *, nested: bool = False) -> Path:
    """3 matching rows whose ``column``'s dictionary page is ``[ACTION, ACTION, x]``, every
    row entry 1: what every reader but pyarrow's ``read_dictionary`` reads as ``ACTION``.
    pyarrow writes each entry once, so the page is written with a second entry of the
    same length and patched (uncompressed, no checksums: nothing else says its bytes)."""
    other = ACTION[:-1] + "z"
    values = {
        "@timestamp": "2024-05-01T11:00:00.000Z",
        "host.os.family": "windows",
        "event.category": "network",
        "event.action": ACTION,
        "destination.ip": "8.8.8.8",
        "destination.address": "8.8.8.8",
        "process.executable": "C:\\evil.exe",
    }
    columns = {
        name: pa.DictionaryArray.from_arrays(pa.array([0, 0, 0], pa.int32()), pa.array([value]))
        for name, value in values.items()
    }
    columns[column] = pa.DictionaryArray.from_arrays(
        pa.array([1, 1, 1], pa.int32()), pa.array([ACTION, other, "x"])
    )
    columns["process.entity_id"] = pa.array(["E0", "E1", "E2"])
    columns["source.bytes"] = pa.array([1, 1, 1], pa.int64())
    table = pa.table(columns)
    if nested:  # the action in a struct, as Elasticsearch nests it
        event = pa.StructArray.from_arrays(
            [columns["event.category"], columns["event.action"]], ["category", "action"]
        )
        table = table.drop_columns(["event.category", "event.action"]).append_column("event", event)
    pq.write_table(table, path, compression="none", store_schema=False, write_statistics=False)
    data = path.read_bytes()
    assert data.count(other.encode()) == 1  # the page's entry (no statistics hold it)
    path.write_bytes(data.replace(other.encode(), ACTION.encode()))
    return path


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_a_dictionary_page_repeating_an_entry_is_refused(tmp_path: Path, nested: bool) -> None:
    """pyarrow keeps a repeated entry once and reads the indices after it against the
    next ones: every row's action read as "x", 0 flagged, exit 0, an exfiltration
    unseen. Polars, DuckDB and pyarrow without read_dictionary read the action."""
    path = _repeating(tmp_path / "x.parquet", "event.action", nested=nested)
    read = pq.read_table(path)  # no read_dictionary: each row's own value
    if nested:
        assert [row["action"] for row in read.column("event").to_pylist()] == [ACTION] * 3
    else:
        assert read.column("event.action").to_pylist() == [ACTION] * 3
    for run in (lambda: run_hunt([str(path)], HuntSpec(now=NOW, threshold=1)),
                lambda: run_sweep([str(path)])):  # fmt: skip
        with pytest.raises(InputError) as caught:
            run()
        assert str(caught.value) == (
            f"{path}: Parquet data cannot be read (row group 0, column event.action: its "
            "dictionary page says 3 entries and repeats some (2 differ), which pyarrow "
            "reads against other values); the copy may be damaged, export it again"
        )


def test_a_group_key_s_repeated_entry_is_refused_too(tmp_path: Path) -> None:
    """The executable's rows would be read as "x": a group that is not the file's."""
    path = _repeating(tmp_path / "x.parquet", "process.executable")
    with pytest.raises(InputError, match=r"column process\.executable: its dictionary page"):
        run_hunt([str(path)], HuntSpec(now=NOW, threshold=1))


def test_dictionary_sizes_are_per_leaf_depth_first() -> None:
    strings = pa.DictionaryArray.from_arrays(pa.array([0], pa.int32()), pa.array(["a", "b"]))
    struct = pa.StructArray.from_arrays([pa.array([1]), strings], ["n", "s"])
    nested = pa.array([[{"k": 1}]], pa.list_(pa.struct([("k", pa.int64())])))
    assert dictionary_sizes(struct) == [None, 2]
    assert dictionary_sizes(nested) == [None]
    assert dictionary_sizes(pa.ListArray.from_arrays([0, 1], strings)) == [2]
