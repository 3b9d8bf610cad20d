"""Text columns read as dictionaries (pyarrow's ``read_dictionary``), or as text: a
dictionary page that repeats an entry is refused, not read against the wrong entries; a
chunk falling back to plain values, or a large dictionary, is read as text, its reads
sized by the dictionary's longest entry; each read is charged its dictionaries."""

from __future__ import annotations

import base64
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from egress_offline import HuntSpec, InputError, run_hunt, run_sweep
from egress_offline.readers import parquet_batches, parquet_pages, tuning
from egress_offline.readers.parquet_arrow import dictionary_sizes, holds_dictionary
from egress_offline.readers.parquet_dictionaries import longest_entry
from egress_offline.readers.parquet_pages import check_pages
from egress_offline.readers.parquet_reach import Reads
from tests.helpers import NOW

ACTION = "disconnect_received"


def _repeating(path: Path, column: str, *, nested: bool = False, first: object = None) -> Path:
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
    if first is not None:  # a column before the others, stored with pyarrow's schema
        table = table.add_column(0, "z", first)
    pq.write_table(table, path, compression="none", store_schema=first is not None,
                   write_statistics=False)  # fmt: skip
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


def test_an_extension_type_s_leaves_are_its_storage_s(tmp_path: Path) -> None:
    """A struct of two leaves stored as an extension type (Arrow's "opaque") was counted
    one leaf: every later column was checked against the leaf before its own, a repeated
    entry went unseen and a legitimate file was refused."""
    kind = pa.opaque(pa.struct([("a", pa.int64()), ("b", pa.string())]), "geo", "vendor")
    first = pa.ExtensionArray.from_storage(
        kind, pa.array([{"a": 1, "b": "x"}] * 3, kind.storage_type)
    )
    path = _repeating(tmp_path / "x.parquet", "process.executable", first=first)
    with pytest.raises(InputError, match=r"column process\.executable: its dictionary page"):
        run_hunt([str(path)], HuntSpec(now=NOW, threshold=1))


def test_dictionary_sizes_are_per_leaf_depth_first() -> None:
    strings = pa.DictionaryArray.from_arrays(pa.array([0], pa.int32()), pa.array(["a", "b"]))
    struct = pa.StructArray.from_arrays([pa.array([1]), strings], ["n", "s"])
    nested = pa.array([[{"k": 1}]], pa.list_(pa.struct([("k", pa.int64())])))
    assert dictionary_sizes(struct) == [None, 2]
    assert dictionary_sizes(nested) == [None]
    assert dictionary_sizes(pa.ListArray.from_arrays([0, 1], strings)) == [2]


@pytest.mark.parametrize("nested", [False, True, "extension"], ids=["flat", "nested", "extension"])
def test_a_column_stored_as_a_dictionary_is_read_by_its_pages(tmp_path: Path,
                                                              nested: bool | str) -> None:  # fmt: skip
    """pyarrow reads a column that the Arrow schema stored in the file (``ARROW:schema``)
    says is a dictionary as one, whatever it is asked, flat, in a struct or as an
    extension type's storage (there, pyarrow aborted the process: exit 134): a chunk
    falling back to plain values (each read's dictionary then every distinct value of
    the row group: 2,000 of 1 MiB took over 3 GB), or whose dictionary page repeats an
    entry, unchecked there. Here entry 1 repeats entry 0: pyarrow read row 1 as "p002",
    every row after it as the next row's executable, exit 0; Polars and DuckDB read
    "p000". The file is read without that schema, the column by its pages."""
    rows = 200
    executables = [f"C:\\p{i:03d}.exe" for i in range(rows)]
    columns = {
        "@timestamp": ["2024-05-01T11:30:00.000Z"] * rows,
        "event.action": [ACTION] * rows,
        "host.os.family": ["windows"] * rows,
        "event.category": ["network"] * rows,
        "destination.ip": ["8.8.8.8"] * rows,
        "destination.address": ["8.8.8.8"] * rows,
        "source.bytes": [1] * rows,
    }

    def table(executable: pa.Array) -> pa.Table:
        if nested is not True:
            return pa.table({**columns, "process.entity_id": ["E0"] * rows,
                             "process.executable": executable})  # fmt: skip
        process = pa.StructArray.from_arrays([pa.array(["E0"] * rows), executable],
                                             ["entity_id", "executable"])  # fmt: skip
        return pa.table({**columns, "process": process})

    plain = table(pa.array(executables))
    stored = pq.ParquetFile(_written(tmp_path / "dictionary.parquet", table(
        pa.array(executables).dictionary_encode()))).metadata.metadata  # fmt: skip
    if nested == "extension":  # the executable an opaque type stored as a dictionary
        kind = pa.opaque(pa.dictionary(pa.int32(), pa.string()), "exe", "vendor")
        schema = plain.schema.set(plain.schema.get_field_index("process.executable"),
                                  pa.field("process.executable", kind))  # fmt: skip
        stored = {b"ARROW:schema": base64.b64encode(schema.serialize().to_pybytes())}
    path = tmp_path / "x.parquet"
    with pq.ParquetWriter(path, plain.schema, dictionary_pagesize_limit=128, write_batch_size=16,
                          compression="none", write_statistics=False, store_schema=False) as out:  # fmt: skip
        out.write_table(plain)
        out.add_key_value_metadata({b"ARROW:schema": stored[b"ARROW:schema"]})
    data = path.read_bytes()
    assert data.count(b"C:\\p001.exe") == 1  # in the dictionary page
    path.write_bytes(data.replace(b"C:\\p001.exe", b"C:\\p000.exe"))
    if nested is not True:
        assert holds_dictionary(pq.ParquetFile(path).schema_arrow.field("process.executable").type)
    else:
        read = [row["executable"] for row in pq.read_table(path).column("process").to_pylist()[:3]]
        assert read == ["C:\\p000.exe", "C:\\p002.exe", "C:\\p003.exe"]  # pyarrow's misreading
    result = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1))
    assert dict(zip(result.rows["process.executable"], result.rows["total_bytes_out"],
                    strict=True)) == {"C:\\p000.exe": 2, **{name: 1 for name in executables[2:]}}  # fmt: skip
    reader, _ = _reader(path, ["process.executable"])
    assert b"ARROW:schema" not in reader.metadata.metadata  # type: ignore[attr-defined]


def _written(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


def _reader(path: Path, columns: list[str]) -> tuple[object, object]:
    """``text_reader`` of ``path`` for ``columns``, its page headers walked, and those."""
    metadata = pq.ParquetFile(path).metadata
    source = pa.OSFile(str(path))
    pages = check_pages(source, metadata, list(range(metadata.num_columns)), str(path))
    return parquet_batches.text_reader(source, metadata, columns, pages), pages


def test_a_chunk_falling_back_to_plain_values_is_read_as_text(tmp_path: Path) -> None:
    """pyarrow's writer past its dictionary limit (1 MiB; 1 KiB here) writes the rest of
    the chunk's values plain. Read as a dictionary, each read's dictionary grew with
    every distinct value of its row group (a million events in one row group: 706 MB,
    328 MB read as text)."""
    rows = 2_000
    stamps = [f"2024-05-01T11:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z" for i in range(rows)]
    table = pa.table({"@timestamp": stamps, "event.action": [ACTION] * rows})
    path = tmp_path / "x.parquet"
    pq.write_table(table, path, dictionary_pagesize_limit=1 << 10)
    reader, pages = _reader(path, ["@timestamp", "event.action"])
    assert pages[0, 0].dictionary and not pages[0, 0].indexed  # indices, then plain
    assert pages[0, 1].indexed == 1
    assert parquet_batches._AS_DICTIONARY[reader] == frozenset({1})  # type: ignore[index]
    read = pa.concat_tables(parquet_batches.batches(reader, (0,), ["@timestamp"], 10_000))
    assert read.column("@timestamp").to_pylist() == stamps


def test_a_chunk_read_as_text_is_read_as_few_rows_as_its_longest_entry_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read as text, each row is its entry's own copy: a chunk of 1 MiB entries falling
    back to plain values after ten rows is read 31 rows at a time, whatever the
    footer's sizes (their bound lifted here): 31 MiB of entries, and 40 MiB of the plain
    pages of ten values that 31 rows reach, within 64 MiB and one of those pages."""
    entries = [chr(ord("a") + i) * (1 << 20) for i in range(10)]
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"process.executable": [entries[i % 10] for i in range(200)]}),
                   path, store_schema=False, write_batch_size=10,
                   dictionary_pagesize_limit=1 << 20)  # fmt: skip
    reader, pages = _reader(path, ["process.executable"])
    assert pages[0, 0].dictionary and not pages[0, 0].indexed
    assert pages[0, 0].longest == 1 << 20
    assert parquet_batches._AS_DICTIONARY[reader] == frozenset()  # type: ignore[index]
    sizes: list[int] = []
    real = reader.iter_batches  # type: ignore[attr-defined]
    monkeypatch.setattr(reader, "iter_batches",
                        lambda **options: (sizes.append(options["batch_size"]), real(**options))[1])  # fmt: skip
    monkeypatch.setattr(tuning, "PARQUET_BYTES", 1 << 30)
    read = pa.concat_tables(parquet_batches.batches(reader, (0,), ["process.executable"], 10_000))
    assert pages[0, 0].runs[0] == (10, 0)  # indices, then plain pages of ten values
    assert {(values, size >> 20) for values, size in pages[0, 0].runs[1:]} == {(10, 10)}
    assert sizes == [31]
    assert read.column("process.executable").to_pylist() == [entries[i % 10] for i in range(200)]


class _Bytes:
    """A source of ``data``, read positionally as pyarrow's files are."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read_at(self, count: int, at: int) -> bytes:
        return self.data[at : at + count]

    def size(self) -> int:
        return len(self.data)


def _zigzag(value: int) -> bytes:
    value = value << 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def _dictionary_page(body: bytes, entries: int) -> bytes:
    size = _zigzag(len(body))
    header = b"\x15\x04\x15" + size + b"\x15" + size + b"\x4c\x15" + _zigzag(entries) + b"\x00\x00"
    return header + body


def test_the_first_dictionary_page_is_sized_the_one_pyarrow_reads() -> None:
    """pyarrow stops at a chunk's count of values: a dictionary page after them is never
    read. An attacker's chunk: a dictionary of one 9 MiB entry, 400 rows of it, then a
    dictionary page of "a"; sized by the second, reads of 65,536 rows of 9 MiB: 3 GB."""
    first = _dictionary_page((12).to_bytes(4, "little") + b"C:\\evil.exe.", 1)
    body = b"\x09\x00"  # indices: bit width 9, nothing after (never decoded here)
    size = _zigzag(len(body))
    data = b"\x15\x00\x15" + size + b"\x15" + size + b"\x2c\x15" + _zigzag(400)
    data += b"\x15" + _zigzag(8) + b"\x15\x06\x15\x06\x00\x00" + body  # RLE_DICTIONARY
    second = _dictionary_page((1).to_bytes(4, "little") + b"a", 1)
    source = _Bytes(b"PAR1" + first + data + second)
    chunk = SimpleNamespace(data_page_offset=4 + len(first), dictionary_page_offset=4,
                            has_dictionary_page=True, total_compressed_size=source.size() - 4,
                            num_values=400)  # fmt: skip
    walk = parquet_pages._Walk(source, source.size())
    _, found = parquet_pages._walk(chunk, walk, (0, 1), (0, 0), 20)
    assert (found.dictionary_at, found.indexed, found.values) == (4, 1, 400)
    page = walk.headers[found.dictionary_at]
    assert longest_entry(source, 4, page, "UNCOMPRESSED") == 12


@pytest.mark.parametrize("compression", ["none", "zstd", "snappy", "gzip"])
def test_the_longest_entry_is_read_from_the_dictionary_page(
    tmp_path: Path, compression: str
) -> None:
    texts = ["a", "b" * 40_000, "c" * 70]  # over 16 KiB: read (shorter ones bound the rows less)
    column = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2], pa.int32()), pa.array(texts))
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"x": column}), path, compression=compression)
    metadata = pq.ParquetFile(path).metadata
    with pa.OSFile(str(path)) as source:
        pages = check_pages(source, metadata, [0], "x")
        at = pages[0, 0].dictionary_at
        page = parquet_pages._header_at(source, at)
        codec = {"none": "UNCOMPRESSED"}.get(compression, compression.upper())
        assert longest_entry(source, at, page, codec) == 40_000
        assert longest_entry(source, at, page._replace(values=99), codec) == page.decompressed
        assert longest_entry(source, at, page, "LZO") == page.decompressed  # not read here


def test_each_read_is_charged_its_own_copy_of_its_dictionaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read pyarrow gives holds a copy of its dictionaries: 4,000 reads of 63 rows
    of a dictionary of 62 MiB, gathered by their rows' few bytes, took 23 GB. Here reads
    of 8 rows of a dictionary of 17 MiB: each over the 16 MiB a batch holds, alone."""
    entries = ["x" * (17 << 20), "short"]
    column = pa.DictionaryArray.from_arrays(pa.array([1] * 64, pa.int32()), pa.array(entries))
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"@timestamp": column}), path, dictionary_pagesize_limit=1 << 30)
    reader, _ = _reader(path, ["@timestamp"])
    monkeypatch.setattr(parquet_batches, "_read_rows", lambda *_: Reads([], 0, 8))
    tables = list(parquet_batches.batches(reader, (0,), ["@timestamp"], 10_000))
    assert [table.num_rows for table in tables] == [8] * 8


def test_footer_keys_are_found_where_they_are(tmp_path: Path) -> None:
    """``footer_keys``: each key-value's key and where its bytes start in the footer."""
    from egress_offline.readers.parquet_thrift import footer_keys  # noqa: PLC0415

    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"a": [1]}).replace_schema_metadata({"ARROW:x": "1", "k": "v"}), path)
    footer = pq.ParquetFile(path).metadata.__reduce__()[1][0].to_pybytes()
    found = footer_keys(footer)
    assert [key for key, _ in found] == [b"ARROW:x", b"k", b"ARROW:schema"]
    assert all(footer[at : at + len(key)] == key for key, at in found)
