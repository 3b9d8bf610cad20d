"""Every input layout and compression gives the same rows; damage is counted, never lost."""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import os
import shutil
import sys
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from egress_offline import HuntSpec, run_hunt
from egress_offline.engine import spill as spill_module
from egress_offline.readers import ahead, batching, sniff, tuning, values
from egress_offline.spec import SweepSpec
from egress_offline.sweep import run_sweep
from tests.helpers import (
    LAYOUTS,
    LEGACY_EVENT,
    NOW,
    SAMPLE_EVENT,
    GiB,
    event,
    fail_after_batches,
    flatten_keys,
    hit,
    ndjson,
    zstd_compress,
)


def docs3() -> list[dict[str, Any]]:
    return [
        event(),
        event(**{"process.entity_id": "E2", "source.bytes": 2 * GiB}),
        event(**{"destination.ip": "10.0.0.1", "process.entity_id": "private"}),
    ]


EXPECTED = [(2 * GiB, "E2"), (GiB, "E1")]


def result_of(path: Path | str, **spec: Any) -> Any:
    spec.setdefault("now", NOW)
    return run_hunt([str(path)], HuntSpec(**spec))


def pairs(result: Any) -> list[tuple[int, str]]:
    return [(r["total_bytes_out"], r["process.entity_id"]) for r in result.rows.to_dicts()]


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_layout(tmp_path: Path, name: str, ndjson_reader: str) -> None:
    result = result_of(LAYOUTS[name](docs3(), tmp_path))
    assert pairs(result) == EXPECTED
    assert result.counts.records == 3
    assert result.counts.malformed == 0
    # clean data never needs the careful reader: a fast-path error would send it there
    report = result.files[0]
    expected = (
        ndjson_reader if (report.format, report.layout) == ("ndjson", "documents") else "fast"
    )
    assert [f.reader for f in result.files] == [expected]


def test_logstash_json_lines(tmp_path: Path) -> None:
    docs = [
        {**d, "@version": "1", "@metadata": {"beat": "x"}, "tags": ["_jsonparsefailure"]}
        for d in docs3()
    ]
    path = tmp_path / "logstash.log"
    path.write_bytes(ndjson(docs))
    assert pairs(result_of(path)) == EXPECTED


def test_layouts_may_differ_line_by_line(tmp_path: Path) -> None:
    a, b, c = docs3()
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(ndjson([hit(a), flatten_keys(b), c]))
    assert pairs(result_of(path)) == EXPECTED


def test_a_document_may_mix_dotted_and_nested_keys(tmp_path: Path) -> None:
    doc = {
        "@timestamp": "2024-05-01T11:00:00Z",
        "host.os.family": "windows",
        "event": {"category.": None, "action": "disconnect_received"},
        "event.category": "network",
        "destination": {"ip": "8.8.8.8"},
        "destination.address": "8.8.8.8",
        "process.entity_id": "E1",
        "process": {"executable": "C:\\evil.exe"},
        "source": {"bytes": GiB},
    }
    path = tmp_path / "mix.ndjson"
    path.write_bytes(ndjson([doc]))
    assert pairs(result_of(path)) == [(GiB, "E1")]


def test_dotted_and_nested_copies_of_one_field_are_two_values(tmp_path: Path) -> None:
    # Elasticsearch indexes both: host.os.family becomes [linux, windows], so == is null.
    doc = event(**{"host.os.family": "linux"})
    doc["host.os.family"] = "windows"
    path = tmp_path / "both.ndjson"
    path.write_bytes(ndjson([doc]))
    assert pairs(result_of(path)) == []


def test_unrelated_field_beyond_int64_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "big.ndjson"
    lines = [
        json.dumps(d)[:-1] + ', "dns": {"Ext": {"options": 9223372036854775808}}}' for d in docs3()
    ]
    lines[0] = lines[0][:-1] + ', "z": 1e400}'
    path.write_text("\n".join(lines) + "\n")
    result = result_of(path)
    assert pairs(result) == EXPECTED
    assert result.counts.malformed == 0


def test_crlf_bom_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "win.ndjson"
    body = b"\xef\xbb\xbf" + b"\r\n\r\n".join(json.dumps(d).encode() for d in docs3()) + b"\r\n\r\n"
    path.write_bytes(body)
    result = result_of(path)
    assert pairs(result) == EXPECTED
    assert result.counts.records == 3


@pytest.mark.parametrize("body", [b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n", b"\xef\xbb\xbf \n\n"])
@pytest.mark.parametrize("packing", ["none", "gzip", "zstd"])
@pytest.mark.parametrize("strict", [False, True])
def test_a_file_of_only_a_byte_order_mark_is_empty(
    tmp_path: Path, body: bytes, packing: str, strict: bool
) -> None:
    """The mark says how the text is encoded; it is not a record, damaged or not."""
    path = tmp_path / "empty.ndjson"
    packed = {
        "none": body,
        "gzip": gzip.compress(body),
        "zstd": zstd_compress(body),
    }[packing]
    path.write_bytes(packed)
    for now in (NOW, "latest"):
        result = result_of(path, strict=strict, now=now)
        assert (result.counts.records, result.counts.malformed) == (0, 0)
        assert result.files[0].positions == []


LONE_HIGH = "x\\ud800.exe"  # JSON text: a lone high surrogate escape
LONE_LOW = "y\\udc00.exe"
PAIR = "z\\ud83d\\ude00.exe"  # a pair: one character
LITERAL = "w\\\\ud800.exe"  # an escaped backslash, then the letters "ud800"


def _surrogate_lines(damage: bytes) -> bytes:
    lines = [damage] if damage else []
    for i, executable in enumerate((LONE_HIGH, LONE_LOW, PAIR, LITERAL)):
        text = json.dumps(event(**{"process.entity_id": f"E{i}"}))
        lines.append(text.replace('"C:\\\\evil.exe"', f'"{executable}"').encode())
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize(
    "reading",
    ["fast", "strict", "careful", "bisected", "json-array"],
)
def test_a_lone_surrogate_escape_is_read_as_u_fffd_by_every_reader(
    tmp_path: Path, reading: str
) -> None:
    """Elasticsearch indexes a lone UTF-16 surrogate (``\ud800``) as U+FFFD, as Lucene
    writes an unpaired surrogate in UTF-8. Polars' decoder read a lone high one as NUL and
    failed on a lone low one, which the Python decoder then counted as malformed, so a
    record's bytes depended on its neighbours."""
    damage = {
        "careful": b"\xff",  # not UTF-8: the careful reader reads the whole file
        # may match, so it is decoded with the others, and its part is bisected
        "bisected": b'{"event": {"action": "disconnect_received"}, "host": {"os": '
        b'{"family": "windows"}}, "x": NaN}',
    }.get(reading, b"")
    path = tmp_path / "s.ndjson"
    body = _surrogate_lines(damage)
    if reading == "json-array":
        path = tmp_path / "s.json"
        body = b"[" + b",".join(body.strip().split(b"\n")) + b"]"
    path.write_bytes(body)
    result = result_of(path, strict=reading == "strict")
    executables = dict(
        zip(result.rows["process.entity_id"], result.rows["process.executable"], strict=True)
    )
    assert executables == {
        "E0": "x\ufffd.exe",
        "E1": "y\ufffd.exe",
        "E2": "z\U0001f600.exe",
        "E3": "w\\ud800.exe",
    }
    assert result.counts.malformed == (1 if damage else 0)


def test_gzip_with_several_members_and_nul_padding(tmp_path: Path) -> None:
    a, b, c = docs3()
    path = tmp_path / "members.gz"
    path.write_bytes(gzip.compress(ndjson([a])) + gzip.compress(ndjson([b, c])) + b"\0" * 512)
    result = result_of(path)
    assert pairs(result) == EXPECTED
    assert result.files[0].damage is None


@pytest.mark.parametrize("members", [1, 3])
def test_a_compressed_file_is_peeked_at_only_as_far_as_needed(tmp_path: Path,
                                                              members: int) -> None:  # fmt: skip
    """The sniff reads a compressed file's first 64 KiB of text: from its first few KiB
    when the file is small (decompressing more costs many small files dearly), across
    members too, and the text it gives is the file's own."""
    noise = [hashlib.sha256(str(i).encode()).hexdigest() * 4 for i in range(1500)]
    text = b"".join(
        ndjson([event(**{"process.entity_id": f"E{i}", "message": noise[i]})]) for i in range(1500)
    )
    cut = [0, len(text) // 3, 2 * len(text) // 3, len(text)] if members == 3 else [0, len(text)]
    body = b"".join(gzip.compress(text[a:b]) for a, b in itertools.pairwise(cut))
    path = tmp_path / "x.ndjson.gz"
    path.write_bytes(body)
    peek, produced, consumed = sniff.peek_text(path, "gzip", len(body))
    assert peek == text[: 64 * 1024]
    assert produced >= 64 * 1024
    assert consumed <= 3 * 8 * 1024 < len(body)


def test_format_is_detected_from_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "export.txt"
    path.write_bytes(gzip.compress(ndjson(docs3())))
    assert pairs(result_of(path)) == EXPECTED
    assert result_of(path).files[0].compression == "gzip"


def test_parquet_nested_structs(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    frame = pl.DataFrame(
        {
            "@timestamp": [datetime(2024, 5, 1, 11, 0, 0, 123456)] * 3,
            "host": [{"os": {"family": "windows"}, "name": "h"}] * 3,
            "event": [{"category": ["network"], "action": "disconnect_received"}] * 3,
            "destination": [
                {"ip": ip, "address": "8.8.8.8"} for ip in ("8.8.8.8", "8.8.8.8", "10.0.0.1")
            ],
            "process": [{"entity_id": e, "executable": "C:\\evil.exe"} for e in ("E1", "E2", "P")],
            "source": [{"bytes": b} for b in (GiB, 2 * GiB, 5 * GiB)],
        }
    )
    frame.write_parquet(path)
    result = result_of(path)
    assert pairs(result) == EXPECTED
    assert result.rows["first_seen"].to_list()[0].isoformat() == "2024-05-01T11:00:00.123000+00:00"


def test_parquet_dotted_columns_with_strings_and_tz(tmp_path: Path) -> None:
    path = tmp_path / "flat.parquet"
    frame = pl.DataFrame(
        {
            "@timestamp": pl.Series([datetime(2024, 5, 1, 13, 0)] * 3).dt.replace_time_zone(
                "Europe/Paris"
            ),
            "host.os.family": ["windows"] * 3,
            "event.category": ["network"] * 3,
            "event.action": ["disconnect_received"] * 3,
            "destination.ip": ["8.8.8.8", "::ffff:8.8.8.8", "10.0.0.1"],
            "destination.address": ["8.8.8.8"] * 3,
            "process.entity_id": ["E1", "E2", "P"],
            "process.executable": ["C:\\evil.exe"] * 3,
            "source.bytes": [str(GiB), f"{2 * GiB}.5", "9"],
        }
    )
    frame.write_parquet(path)
    assert pairs(result_of(path)) == EXPECTED  # 13:00 Paris is 11:00Z, inside the window


@pytest.mark.parametrize("mode", ["hunt", "strict", "sweep"])
def test_parquet_lists_of_lists_are_flattened_as_elasticsearch_does(
    tmp_path: Path, mode: str
) -> None:
    """Elasticsearch stores ``[["network"]]`` as ``"network"``: the NDJSON readers did
    so, the Parquet reader read such a column as no value (or stopped on it)."""
    path = tmp_path / "nested-lists.parquet"
    texts = pl.List(pl.List(pl.String))
    pl.DataFrame(
        {
            "@timestamp": [[["2024-05-01T11:00:00Z"]]] * 4,
            "host.os.family": [[["windows"]]] * 4,
            # "M" has two categories, so its `==` is null and the row is dropped
            "event.category": [[[], ["network"], [None]]] * 3 + [[["network", "x"]]],
            "event.action": [[["disconnect_received"]]] * 4,
            "destination.ip": [[["8.8.8.8"]], [["8.8.8.8"]], [["10.0.0.1"]], [["8.8.8.8"]]],
            "destination.address": [[["8.8.8.8"]]] * 4,
            "process.entity_id": [[["E1"]], [["E2"]], [["P"]], [["M"]]],
            "process.executable": [[["C:\\evil.exe"]]] * 4,
            "source.bytes": [[[GiB]], [[GiB], [GiB]], [[5 * GiB]], [[5 * GiB]]],
        },
        schema_overrides={"source.bytes": pl.List(pl.List(pl.Int64))}
        | {
            name: texts
            for name in (
                "@timestamp",
                "host.os.family",
                "event.category",
                "event.action",
                "destination.ip",
                "destination.address",
                "process.entity_id",
                "process.executable",
            )
        },
    ).write_parquet(path)
    if mode == "sweep":
        rows = run_sweep([str(path)], SweepSpec()).rows.to_dicts()
        assert [(r["peak_bytes"], r["process.entity_id"]) for r in rows] == EXPECTED
    else:
        assert pairs(result_of(path, strict=mode == "strict")) == EXPECTED


def _refusal(path: Path) -> str:
    """The message of the InputError the hunt of ``path`` raises."""
    from egress_offline.errors import InputError  # noqa: PLC0415

    with pytest.raises(InputError) as raised:
        result_of(path)
    return str(raised.value)


def _scalar_parquet(path: Path, kind: Any) -> Path:
    """docs3 as scalar columns of ``kind`` (text, or bytes without the UTF-8 annotation)."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    rows = [flatten_keys(doc) for doc in docs3()]
    names = ["@timestamp", "host.os.family", "event.action", "destination.ip",
             "destination.address", "process.entity_id", "process.executable"]  # fmt: skip
    columns = {name: pa.array([str(row[name]).encode() for row in rows], kind) for name in names}
    columns["event.category"] = pa.array([[b"network"]] * 3, pa.list_(kind))
    columns["source.bytes"] = pa.array([row["source.bytes"] for row in rows], pa.int64())
    pq.write_table(pa.table(columns), path)
    return path


def test_parquet_bytes_columns_are_read_as_text(tmp_path: Path) -> None:
    """Impala, older Hive and other writers store text as ``BINARY`` without the UTF-8
    annotation: every step reads it as the same file of text columns. (It was read as no
    value, and a file of such deciding columns failed, exit 1: "Parquet data cannot be
    read (could not create a new DataFrame: height of column '__may' (1) ...)".)"""
    import pyarrow as pa  # noqa: PLC0415

    from egress_offline.pivot import run_pivot  # noqa: PLC0415

    text = _scalar_parquet(tmp_path / "text.parquet", pa.string())
    raw = _scalar_parquet(tmp_path / "bytes.parquet", pa.binary())
    for path in (text, raw):
        assert pairs(result_of(path)) == EXPECTED
        assert pairs(result_of(path, now="latest")) == EXPECTED
        swept = run_sweep([str(path)], SweepSpec()).rows.to_dicts()
        assert [(r["peak_bytes"], r["process.entity_id"]) for r in swept] == EXPECTED
        (entity,) = run_pivot(["E2"], [str(path)]).entities
        assert [(n["destination.address"], n["bytes_out"]) for n in entity.network] == [
            ("8.8.8.8", 2 * GiB)
        ]


def test_parquet_bytes_that_are_not_utf8_refuse_the_file(tmp_path: Path) -> None:
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    path = _scalar_parquet(tmp_path / "bytes.parquet", pa.binary())
    table = pq.read_table(path)
    column = table.schema.get_field_index("process.entity_id")
    pq.write_table(table.set_column(column, "process.entity_id",
                                    pa.array([b"E1", b"\xff\xfe", b"P"], pa.binary())), path)  # fmt: skip
    assert _refusal(path) == (
        f"{path}: the Parquet column process.entity_id holds bytes that are not UTF-8 text "
        "(bytes without the UTF-8 annotation); write its values as UTF-8 strings"
    )


def test_a_nested_column_that_is_not_text_is_named_by_its_leaf(tmp_path: Path) -> None:
    """The message named the struct (``process``), not the field in it."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    path = tmp_path / "nested.parquet"
    for kind, bad, said in (
        (pa.binary(), pa.array([b"E1", b"\xff"]), "the Parquet column process.executable "
         "holds bytes that are not UTF-8 text"),
        (pa.string(), pa.array([b"E1", b"\xff"]).view(pa.string()), "Parquet data cannot be "
         "read (the text column process.executable holds bytes that are not UTF-8)"),
    ):  # fmt: skip
        process = pa.StructArray.from_arrays(
            [pa.array(["E1", "E2"], kind if kind == pa.string() else pa.binary()), bad],
            names=["entity_id", "executable"],
        )
        deciding = {"@timestamp": ["2024-05-01T11:00:00Z"] * 2, "host.os.family": ["windows"] * 2,
                    "event.category": ["network"] * 2, "event.action": ["disconnect_received"] * 2}  # fmt: skip
        pq.write_table(pa.table({**deciding, "process": process}), path)
        assert _refusal(path).startswith(f"{path}: {said}")


def test_parquet_deciding_columns_of_no_text_type_are_screened_row_by_row(
    tmp_path: Path,
) -> None:
    """An action and an OS family column of numbers cannot be judged by the screen: its
    test was one literal, not a column of the batch's rows, and the file failed."""
    path = tmp_path / "numbers.parquet"
    numbers = {"host.os.family": [1] * 3, "event.action": [7] * 3}
    pl.DataFrame({"@timestamp": ["2024-05-01T11:00:00Z"] * 3, **numbers}).write_parquet(path)
    result = result_of(path)
    assert (result.rows.height, result.counts.records, result.counts.event_match) == (0, 3, 0)


@pytest.mark.parametrize(
    ("width", "precision", "scale"), [(256, 40, 0), (256, 40, 2), (128, 20, 1)]
)
def test_parquet_decimal_bytes_are_numbers(tmp_path: Path, width: int, precision: int,
                                           scale: int) -> None:  # fmt: skip
    """A 256-bit decimal ``source.bytes`` made Polars panic and the file fail; it is read
    as its number's text, as every decimal is (fractions dropped, as the cluster's long
    field drops them)."""
    from decimal import Decimal  # noqa: PLC0415

    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    path = _scalar_parquet(tmp_path / "decimal.parquet", pa.string())
    table = pq.read_table(path)
    column = table.schema.get_field_index("source.bytes")
    fraction = Decimal("0.5") if scale else Decimal(0)
    values = [Decimal(GiB) + fraction, Decimal(2 * GiB), Decimal(5 * GiB)]
    kind = (pa.decimal256 if width == 256 else pa.decimal128)(precision, scale)
    pq.write_table(table.set_column(column, "source.bytes", pa.array(values, kind)), path)
    assert pairs(result_of(path)) == EXPECTED


def test_parquet_source_columns_flattened_with_dots_are_the_fields(tmp_path: Path) -> None:
    """Hits flattened by pandas' json_normalize or Spark: ``_index``, ``_id`` and
    ``_source.host.os.family`` columns. They were taken as the fields' columns, then read
    as no value: 0 rows, exit 0."""
    path = tmp_path / "hits.parquet"
    rows = [flatten_keys(doc) for doc in docs3()]
    names = ["@timestamp", "host.os.family", "event.action", "destination.ip",
             "destination.address", "process.entity_id", "process.executable", "source.bytes"]  # fmt: skip
    columns: dict[str, Any] = {"_index": ["logs"] * 3, "_id": ["a", "b", "c"]}
    columns |= {f"_source.{name}": [row[name] for row in rows] for name in names}
    columns["_source.event.category"] = [["network"]] * 3
    pl.DataFrame(columns).write_parquet(path)
    assert pairs(result_of(path)) == EXPECTED
    swept = run_sweep([str(path)], SweepSpec()).rows.to_dicts()
    assert [(r["peak_bytes"], r["process.entity_id"]) for r in swept] == EXPECTED


def test_parquet_int96_times_past_2262_are_kept(tmp_path: Path) -> None:
    """A legacy INT96 timestamp (Spark, Impala, Hive) read in pyarrow's nanoseconds
    wrapped past 2262: 2600-01-01 read as 2015-06-13, and the event left the window."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    path = _scalar_parquet(tmp_path / "int96.parquet", pa.string())
    table = pq.read_table(path)
    column = table.schema.get_field_index("@timestamp")
    times = [datetime(2024, 5, 1, 11), datetime(2600, 1, 1), datetime(2024, 5, 1, 11)]
    typed = pa.array(times, pa.timestamp("us"))
    pq.write_table(table.set_column(column, "@timestamp", typed), path,
                   use_deprecated_int96_timestamps=True, store_schema=False)  # fmt: skip
    assert pq.ParquetFile(path).schema.column(column).physical_type == "INT96"
    result = result_of(path, now=NOW)  # 2024-05-01T12:00Z: 2600 is after it, in
    assert pairs(result) == EXPECTED
    assert result.last_ms == 19_880_899_200_000  # 2600-01-01T00:00:00Z


def test_parquet_text_of_other_arrow_types_is_read_or_refused(tmp_path: Path) -> None:
    """Fixed-width bytes (a numpy ``S`` column) were read as no value (a group of no
    entity id flagged): they are text. An extension type (``arrow.json``, as pyarrow 26
    reads a JSON-annotated column; ``arrow.uuid``) was read as no value too: JSON text
    is not its values (``"windows"`` with its quotes), UUIDs are 16 bytes; the file is
    refused, naming the column."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    path = _scalar_parquet(tmp_path / "fixed.parquet", pa.string())
    table = pq.read_table(path)
    ids = table.schema.get_field_index("process.entity_id")
    table = table.set_column(ids, "process.entity_id",
                             pa.array([b"E1", b"E2", b"P3"], pa.binary(2)))  # fmt: skip
    pq.write_table(table, path)
    assert pairs(result_of(path)) == EXPECTED
    family = table.schema.get_field_index("host.os.family")
    as_json = pa.ExtensionArray.from_storage(pa.json_(pa.string()), pa.array(['"windows"'] * 3))
    pq.write_table(table.set_column(family, "host.os.family", as_json), path)
    assert _refusal(path) == (
        f"{path}: the Parquet column host.os.family holds JSON text (the JSON type), not "
        "text; write its values as plain text"
    )
    uuids = pa.ExtensionArray.from_storage(pa.uuid(), pa.array([b"0" * 16] * 3, pa.binary(16)))
    pq.write_table(table.set_column(ids, "process.entity_id", uuids), path)
    assert "holds UUIDs (16 bytes each), not text" in _refusal(path)


@pytest.mark.parametrize("name", ["@timestamp", "event.action", "process.executable"])
def test_parquet_text_that_is_not_utf8_refuses_the_file(tmp_path: Path, name: str) -> None:
    """pyarrow reads a text column's bytes unchecked: they made a traceback (a key), a
    Rust panic (@timestamp) or a row that silently did not match (the action)."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    path = _scalar_parquet(tmp_path / "text.parquet", pa.string())
    table = pq.read_table(path)
    column = table.schema.get_field_index(name)
    raw = [str(value).encode() for value in table.column(column).to_pylist()]
    raw[1] = b"\xff" + raw[1]
    bad = pa.array(raw, pa.binary()).view(pa.string())
    pq.write_table(table.set_column(column, name, bad), path)
    assert _refusal(path) == (
        f"{path}: Parquet data cannot be read (the text column {name} holds bytes that "
        "are not UTF-8); the copy may be damaged, export it again"
    )


def test_parquet_float_bytes_and_missing_optional_columns(tmp_path: Path) -> None:
    path = tmp_path / "float.parquet"
    pl.DataFrame(
        {
            "@timestamp": ["2024-05-01T11:00:00Z"],
            "host.os.family": ["windows"],
            "event.category": ["network"],
            "event.action": ["disconnect_received"],
            "destination.ip": ["1.1.1.1"],
            "process.entity_id": ["F"],
            "source.bytes": [1.5e10],
        }
    ).write_parquet(path)
    rows = result_of(path).rows.to_dicts()
    assert rows[0]["total_bytes_out"] == 15_000_000_000
    assert rows[0]["destination.address"] is None
    assert rows[0]["process.executable"] is None


def test_real_elastic_sample_event_pretty_printed(tmp_path: Path) -> None:
    sample = SAMPLE_EVENT
    path = tmp_path / sample.name
    shutil.copy(sample, path)
    result = result_of(path, now="latest", threshold=1)
    assert result.counts.records == 1
    assert result.files[0].format == "json"
    (row,) = result.rows.to_dicts()
    assert row["total_bytes_out"] == 498
    assert row["destination.address"] == "64.233.191.95"
    assert (
        row["process.executable"]
        == "C:\\Program Files\\Google\\Compute Engine\\agent\\GCEWindowsAgent.exe"
    )
    assert row["destination.as.organization.name"] == ["GOOGLE"]
    assert row["first_seen"].isoformat() == "2022-04-04T18:52:00.600000+00:00"


def test_real_sample_as_one_ndjson_line_with_its_huge_unrelated_number(
    tmp_path: Path, ndjson_reader: str
) -> None:
    text = (SAMPLE_EVENT).read_text()
    line = json.dumps(json.loads(text))
    assert "9223372036854775808" in line
    path = tmp_path / "sample.ndjson"
    path.write_text(line + "\n" + line + "\n")
    result = result_of(path, now="latest", threshold=996)
    assert [r["total_bytes_out"] for r in result.rows.to_dicts()] == [996]
    assert result.files[0].reader == ndjson_reader


def test_legacy_sample_does_not_match(tmp_path: Path) -> None:
    path = tmp_path / "legacy.json"
    shutil.copy(LEGACY_EVENT, path)
    result = result_of(path, now="latest", threshold=0, os_families=None)
    assert result.counts.records == 1
    assert result.counts.event_match == 0
    assert result.rows.height == 0


def test_directory_recursion_skips_and_lists_other_files(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    a, b, c = docs3()
    (tmp_path / "a" / "one.ndjson").write_bytes(ndjson([a]))
    (tmp_path / "a" / "b" / "two.json.gz").write_bytes(gzip.compress(ndjson([b, c])))
    (tmp_path / "README.txt").write_text("not events\n")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1\x00\x00")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")
    result = run_hunt([str(tmp_path)], HuntSpec(now=NOW))
    assert pairs(result) == EXPECTED
    assert result.skipped == [
        f"{tmp_path / '.DS_Store'}: not an export this tool reads (skipped)",
        f"{tmp_path / 'README.txt'}: not an export this tool reads (skipped)",
        f"{tmp_path / 'a' / 'loop'}: a symlink loop (to a directory that holds it), "
        "not followed (skipped)",
    ]


def test_globs_and_duplicates_read_once(tmp_path: Path) -> None:
    a, b, c = docs3()
    (tmp_path / "x1.ndjson").write_bytes(ndjson([a]))
    (tmp_path / "x2.ndjson").write_bytes(ndjson([b, c]))
    result = run_hunt([str(tmp_path / "x*.ndjson"), str(tmp_path / "x1.ndjson")], HuntSpec(now=NOW))
    assert pairs(result) == EXPECTED
    assert result.counts.records == 3


def test_groups_split_across_files_and_formats(tmp_path: Path) -> None:
    half = event(**{"source.bytes": GiB // 2})
    (tmp_path / "a.ndjson").write_bytes(ndjson([half]))
    (tmp_path / "b.json").write_text(json.dumps([half]))
    result = run_hunt([str(tmp_path)], HuntSpec(now=NOW))
    assert pairs(result) == [(GiB, "E1")]
    assert result.rows["connections"].to_list() == [2]


def test_malformed_lines_are_counted_with_their_line_numbers(tmp_path: Path) -> None:
    a, b, c = docs3()
    path = tmp_path / "damaged.ndjson"
    path.write_bytes(
        json.dumps(a).encode()
        + b"\n"
        + b'{"broken": \n'
        + b"[1, 2]\n"
        + json.dumps(b).encode()
        + b"\n"
        + b"\xff\xfe not utf-8\n"
        + b"\n"
        + json.dumps(c).encode()
        + b"\n"
        + b'{"_source": 5}\n'
        + json.dumps(a)[:40].encode()
    )
    result = result_of(path)
    assert pairs(result) == [(2 * GiB, "E2"), (GiB, "E1")]
    report = result.files[0]
    assert (report.records, report.malformed, report.reader) == (8, 5, "careful")
    assert report.positions == [
        "line 2: not valid JSON (Expecting value)",
        "line 3: not a JSON object (a list)",
        "line 5: bytes that are not UTF-8",
        "line 8: _source is not an object",
        "line 9: not valid JSON (Unterminated string starting at)",
    ]
    assert result.counts.valid == 3


def test_truncated_gzip_keeps_the_records_before_the_cut(tmp_path: Path) -> None:
    body = ndjson([event(**{"process.entity_id": f"P{i}"}) for i in range(2000)])
    packed = gzip.compress(body)
    path = tmp_path / "cut.ndjson.gz"
    path.write_bytes(packed[: len(packed) * 3 // 4])
    result = result_of(path)
    report = result.files[0]
    assert report.damage is not None and "ends early" in report.damage
    assert 0 < result.counts.valid < 2000
    assert result.rows.height == result.counts.valid  # every complete record still counts
    assert report.malformed == 1  # the cut line


def test_truncated_zstd_is_reported(tmp_path: Path) -> None:
    body = ndjson([event(**{"process.entity_id": f"P{i}"}) for i in range(3000)])
    packed = zstd_compress(body)
    path = tmp_path / "cut.ndjson.zst"
    path.write_bytes(packed[: len(packed) - 100])
    result = result_of(path)
    assert result.files[0].damage is not None and "zstd" in result.files[0].damage
    assert result.counts.records == result.counts.valid + result.counts.malformed


@pytest.mark.parametrize("size", [3, 30_000])
def test_a_gzip_file_that_fails_its_checksum_keeps_every_record(tmp_path: Path, size: int) -> None:
    """A flipped bit in the CRC-32: every record decompressed counts, and the damage says
    the text may differ. Before, the last piece decompressed was lost with the error:
    all of a small file (0 rows, exit 0), the end of a large one."""
    body = ndjson([event(**{"process.entity_id": f"P{i}"}) for i in range(size)])
    packed = bytearray(gzip.compress(body))
    packed[-8] ^= 0x01
    path = tmp_path / "crc.ndjson.gz"
    path.write_bytes(bytes(packed))
    result = result_of(path)
    report = result.files[0]
    assert report.damage is not None and "fails its checksum" in report.damage
    assert (result.counts.valid, result.rows.height, report.malformed) == (size, size, 0)


@pytest.mark.parametrize("layout", ["nested", "compact-gzip", "json-array", "parquet-text-lists"])
def test_a_file_whose_name_is_not_utf8_is_read(tmp_path: Path, layout: str) -> None:
    """A name of bytes that are not UTF-8 (Polars and pyarrow take no such path): read
    through a link in the scratch directory, named as given, alone or met in a walk.
    Before, a traceback (TypeError), or "not a readable Parquet file"."""
    (tmp_path / "made").mkdir()
    written = LAYOUTS[layout](docs3(), tmp_path / "made")
    folder = tmp_path / "dump"
    folder.mkdir()
    odd = os.fsdecode(bytes(folder) + b"/ev\xff" + written.name.encode())
    os.rename(written, odd)
    assert pairs(run_hunt([odd], HuntSpec(now=NOW))) == EXPECTED
    walked = run_hunt([str(folder)], HuntSpec(now=NOW))
    assert pairs(walked) == EXPECTED
    assert [report.name for report in walked.files] == [odd]


@pytest.mark.parametrize("layout", ["scroll-dump", "es-archive-lines-gzip"])
def test_a_long_line_of_values_is_read_a_batch_of_hits_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    """A line of the values layout over STREAMED_VALUE is read as a JSON document is, a
    bounded batch of its hits at a time, each at the line's position: the same rows and
    counts as decoded whole. (One line of a million empty hits took 1.56 GB and 17.8 s,
    now 144 MB and 3.0 s; 10 million, in a 2.7 KB zstd file, 14 GB.)"""
    path = LAYOUTS[layout](docs3(), tmp_path)
    whole = result_of(path)
    monkeypatch.setattr(tuning, "STREAMED_VALUE", 10)
    monkeypatch.setattr(tuning, "DECODE_RECORDS", 1)
    lines: list[int] = []
    streamed_line = values._streamed
    monkeypatch.setattr(
        values, "_streamed", lambda *a, **k: lines.append(a[2]) or streamed_line(*a, **k)
    )
    streamed = result_of(path)
    assert lines  # read by the streaming path
    assert pairs(streamed) == pairs(whole) == EXPECTED
    assert streamed.counts == whole.counts


def test_garbage_after_gzip_member_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "tail.gz"
    path.write_bytes(gzip.compress(ndjson(docs3())) + b"this is not gzip")
    result = result_of(path)
    assert pairs(result) == EXPECTED
    assert "not gzip" in (result.files[0].damage or "")


def test_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.TextIOWrapper(io.BytesIO(gzip.compress(ndjson(docs3()))))
    monkeypatch.setattr(sys, "stdin", stream)
    result = run_hunt(["-"], HuntSpec(now=NOW))
    assert pairs(result) == EXPECTED
    assert result.files[0].name == "<stdin>"


def test_gzip_member_ending_exactly_at_a_read_block(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    a, b, c = docs3()
    first = gzip.compress(ndjson([a]) + b"\xff\xfe\n")  # not UTF-8: the careful reader runs
    path = tmp_path / "members.gz"
    path.write_bytes(first + gzip.compress(ndjson([b, c])))
    monkeypatch.setattr(tuning, "BLOCK", len(first))
    result = result_of(path)
    assert pairs(result) == EXPECTED
    assert (result.files[0].reader, result.counts.malformed) == ("careful", 1)
    assert result.files[0].damage is None


@pytest.mark.parametrize(
    "late",
    [
        '{"@timestamp": "2024-05-01T20:00:00Z", "event": {"action": "x"}}',  # odd spacing
        '{"@timestamp":"2024-05-01T20:00:00.0000000Z","event":{"action":"x"}}',  # canonical
        '{"@timestamp":1714593600000,"event":{"action":"x"}}',  # epoch millis
    ],
)
def test_records_that_cannot_match_still_anchor_latest(tmp_path: Path, late: str) -> None:
    # 20:00 is 9 hours after the event at 11:00: the event falls out of the 8 h window.
    path = tmp_path / "late.ndjson"
    path.write_text(json.dumps(event()) + "\n" + late + "\n")
    result = result_of(path, now="latest")
    assert result.now is not None and result.now.isoformat() == "2024-05-01T20:00:00+00:00"
    assert pairs(result) == []
    assert result.counts.records == 2


def test_parquet_rows_that_cannot_match_still_anchor_latest(tmp_path: Path) -> None:
    path = tmp_path / "late.parquet"
    pl.DataFrame(
        {
            "@timestamp": ["2024-05-01T11:00:00Z", "2024-05-01T20:00:00+00:00"],
            "host.os.family": ["windows", "windows"],
            "event.category": ["network", "network"],
            "event.action": ["disconnect_received", "connection_attempted"],
            "destination.ip": ["8.8.8.8", "8.8.8.8"],
            "process.entity_id": ["E1", "E1"],
            "source.bytes": [GiB, GiB],
        }
    ).write_parquet(path)
    result = result_of(path, now="latest")
    assert result.now is not None and result.now.isoformat() == "2024-05-01T20:00:00+00:00"
    assert pairs(result) == []
    assert result_of(path, now=NOW).rows.height == 1


def read_as_read(monkeypatch: pytest.MonkeyPatch, as_read: bool) -> None:
    """``as_read``: every NDJSON file's output is handed on as it is read, as a large
    file's is, each frame at once (none waits to be gathered), and the spill's every
    part written to disk: a file given up on is then taken back out of the spill
    (``Spill.rollback``), its files removed."""
    if as_read:
        monkeypatch.setattr(tuning, "OUTPUT_AS_READ", 0)
        monkeypatch.setattr(tuning, "SMALL_BATCH", 0)
        monkeypatch.setattr(tuning, "SPILL_HELD", 0)


@pytest.mark.fast_reader
@pytest.mark.parametrize("as_read", [False, True])
def test_a_file_read_again_carefully_drops_its_own_gathered_rows_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_read: bool
) -> None:
    """Small field batches are gathered across files and reduced together between files.
    A file the fast reader gives up on after it has yielded rows is read again by the
    careful reader: its own gathered rows must go (or they would count twice), and the
    earlier files' rows must stay. The fast reader is made to fail once it has yielded
    the second file's rows (damage met late, as in a file of many GB)."""
    read_as_read(monkeypatch, as_read)
    monkeypatch.setattr(tuning, "DECODE_BYTES", 1)  # every batch's lines decoded at once
    batches = fail_after_batches(monkeypatch, 2)
    a = tmp_path / "a.ndjson"
    a.write_bytes(ndjson([event(**{"source.bytes": 2 * GiB})] * 3))
    b = tmp_path / "b.ndjson"
    lines = 10_000  # batches of 4,096 lines at least
    b.write_bytes(ndjson([event(**{"process.entity_id": "E2", "source.bytes": GiB})] * lines))
    result = run_hunt([str(a), str(b)], HuntSpec(now=NOW))
    assert batches == [3, lines]  # the careful reader does not use _line_batch
    assert [report.reader for report in result.files] == ["fast", "careful"]
    assert pairs(result) == [(lines * GiB, "E2"), (6 * GiB, "E1")]
    assert (result.counts.records, result.counts.event_match) == (3 + lines, 3 + lines)
    # the scan given up on was stopped with the reader: its pulling thread is gone
    assert not [t for t in threading.enumerate() if t.name == ahead.THREAD_NAME]


@pytest.mark.fast_reader
def test_a_file_that_fails_before_yielding_drops_its_lines_to_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lines to decode of small files wait in one queue shared across files. A file
    the fast reader gives up on before it has yielded anything is read again whole by
    the careful reader: its lines must leave the queue, the earlier file's must stay."""
    calls = fail_after_batches(monkeypatch, 2)  # every line may match: nothing yielded
    (tmp_path / "a.ndjson").write_bytes(ndjson([event(**{"source.bytes": 2 * GiB})] * 3))
    (tmp_path / "b.ndjson").write_bytes(
        ndjson([event(**{"process.entity_id": "E2", "source.bytes": GiB})] * 5)
    )
    result = run_hunt([str(tmp_path)], HuntSpec(now=NOW))
    assert calls == [3, 5]
    assert [report.reader for report in result.files] == ["fast", "careful"]
    assert pairs(result) == [(6 * GiB, "E1"), (5 * GiB, "E2")]
    assert (result.counts.records, result.counts.event_match) == (8, 8)


def test_lines_decoded_with_other_files_are_told_to_their_own_file(tmp_path: Path) -> None:
    """Damage found when the small files' lines are decoded together is counted in each
    line's own file, at its own line number, as when each file is read alone."""
    good = event(**{"source.bytes": 2 * GiB})
    # shaped like an object, may match, not JSON: found only when decoded
    broken = json.dumps(event(**{"process.entity_id": "E9"}))[:-1] + ',"x":}'
    names = []
    for number in range(6):
        lines = [json.dumps(good)] * (number + 1)
        lines.insert(number % 3, broken)
        names.append(tmp_path / f"{number}.ndjson")
        names[-1].write_text("\n".join(lines) + "\n")
    together = run_hunt([str(tmp_path)], HuntSpec(now=NOW))
    for number, (path, report) in enumerate(zip(names, together.files, strict=True)):
        alone = run_hunt([str(path)], HuntSpec(now=NOW)).files[0]
        assert report.name == str(path)
        assert (report.records, report.malformed, report.positions) == (
            alone.records,
            alone.malformed,
            alone.positions,
        )
        assert report.positions[0].startswith(f"line {number % 3 + 1}: ")
    assert pairs(together) == [(2 * GiB * sum(range(1, 7)), "E1")]
    assert (together.counts.records, together.counts.malformed) == (sum(range(2, 8)), 6)


def _small_files(tmp_path: Path) -> list[Path]:
    """Small files of every kind the line scan reads, each with something of its own."""
    good = event(**{"source.bytes": GiB})
    broken = json.dumps(event(**{"process.entity_id": "E9"}))[:-1] + ',"x":}'
    texts = {
        "a.ndjson": ndjson([good] * 2),
        "b[1].ndjson": ndjson([good]).rstrip(b"\n"),  # no line end, a glob character
        "c.ndjson": b"",
        "d.ndjson": b"\r\n".join([json.dumps(good).encode(), b"", json.dumps(good).encode()]),
        "e.ndjson": ndjson([good]) + broken.encode() + b"\n[1]\n" + ndjson([good]),
        "f.ndjson.gz": gzip.compress(ndjson([good] * 3)),
        "g.ndjson.zst": zstd_compress(ndjson([good] * 4)),
        "h.ndjson": ndjson([event(**{"@timestamp": "2024-04-01T00:00:00Z"})] * 2),
        # compact, as Endpoint writes it: the timestamps of lines not decoded are read in
        # the scan; two in the window that cannot match (one just in it), one older
        "i.ndjson": b"".join(
            json.dumps(doc, separators=(",", ":")).encode() + b"\n"
            for doc in (
                event(**{"host.os.family": "linux", "@timestamp": "2024-05-01T11:30:00.000Z"}),
                event(**{"host.os.family": "linux", "@timestamp": "2024-05-01T04:00:00.001Z"}),
                good,
                event(**{"host.os.family": "linux", "@timestamp": "2024-04-30T11:30:00.000Z"}),
            )
        ),
    }
    for name, text in texts.items():
        (tmp_path / name).write_bytes(text)
    return [tmp_path / name for name in texts]


@pytest.mark.fast_reader
@pytest.mark.parametrize("now", [NOW, "latest"])
def test_small_files_scanned_together_are_each_read_as_if_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, now: Any
) -> None:
    """The lines of small files are judged in one scan, and each file's are then read
    as its own: its line numbers, its damage, its records and time range are those it
    has when read alone, whatever its compression or last line."""
    paths = _small_files(tmp_path)
    groups: list[int] = []
    real = batching._scan_together
    monkeypatch.setattr(
        batching, "_scan_together", lambda files, *a: groups.append(len(files)) or real(files, *a)
    )
    together = run_hunt([str(tmp_path)], HuntSpec(now=now))
    assert groups == [len(paths)]
    events = in_window = 0
    for path, report in zip(paths, together.files, strict=True):
        result = run_hunt([str(path)], HuntSpec(now=NOW))
        alone, events = result.files[0], events + result.counts.event_match
        in_window += result.counts.time_window
        assert report.name == str(path)
        assert (report.records, report.malformed, report.positions, report.reader) == (
            alone.records,
            alone.malformed,
            alone.positions,
            "fast",
        )
        assert (report.first_ms, report.last_ms) == (alone.first_ms, alone.last_ms)
    reports = {Path(report.name).name: report for report in together.files}
    assert reports["e.ndjson"].positions == [
        "line 2: not valid JSON (Expecting value)",
        "line 3: not a complete JSON object",
    ]
    assert [reports[name].records for name in ("b[1].ndjson", "c.ndjson", "d.ndjson")] == [1, 0, 2]
    assert pairs(together) == [(15 * GiB, "E1")]
    assert (together.counts.records, together.counts.malformed) == (22, 2)
    assert together.counts.event_match == events == 15
    if now is NOW:  # records that cannot match are counted in the window too
        assert together.counts.time_window == in_window == 17


@pytest.mark.fast_reader
def test_a_damaged_file_among_small_files_has_them_scanned_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the scan together fails (bytes that are not UTF-8 in one file), each file is
    scanned alone: the damaged one is read by the careful reader, the others as before,
    and nothing is counted twice."""
    paths = _small_files(tmp_path)
    (tmp_path / "e.ndjson").write_bytes(ndjson([event(**{"source.bytes": GiB})]) + b"\xff\n")
    failed: list[int] = []
    real = batching._scan_together

    def spy(files: Any, *args: Any) -> Any:
        try:
            return real(files, *args)
        except pl.exceptions.PolarsError:
            failed.append(len(files))
            raise

    monkeypatch.setattr(batching, "_scan_together", spy)
    result = run_hunt([str(tmp_path)], HuntSpec(now=NOW))
    assert failed == [len(paths)]
    readers = {Path(report.name).name: report.reader for report in result.files}
    assert readers == {
        path.name: "careful" if path.name == "e.ndjson" else "fast" for path in paths
    }
    reports = {Path(report.name).name: report for report in result.files}
    assert reports["e.ndjson"].positions == ["line 2: bytes that are not UTF-8"]
    assert pairs(result) == [(14 * GiB, "E1")]
    assert (result.counts.records, result.counts.malformed) == (20, 1)


@pytest.mark.parametrize("packing", ["none", "gzip"])
def test_names_with_glob_characters_are_read_literally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, packing: str
) -> None:
    """A file or scratch directory whose name holds ``[``, ``*`` or ``?`` is read as
    named: Polars' readers expand such a path as a pattern unless told not to, and an
    input named ``export[1].ndjson`` was read as empty (no records, no error)."""
    folder = tmp_path / "case [7]"
    folder.mkdir()
    scratch = tmp_path / "tmp[*]"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    text = ndjson(docs3())
    path = folder / ("export[1].ndjson" + (".gz" if packing == "gzip" else ""))
    path.write_bytes(gzip.compress(text) if packing == "gzip" else text)
    for spec in ({"now": NOW}, {}):
        for given in (path, folder):
            result = run_hunt([str(given)], HuntSpec(**spec))
            assert pairs(result) == EXPECTED
            assert result.counts.records == 3


@pytest.mark.fast_reader
@pytest.mark.parametrize("as_read", [False, True])
def test_a_file_read_again_carefully_keeps_the_earlier_files_timestamps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_read: bool
) -> None:
    """The timestamps of records that cannot match are held, then written to the spill
    in one file with those of earlier files. A file read again by the careful reader
    drops its own from the count in the window, never an earlier file's, even when they
    were written together since the file began."""
    read_as_read(monkeypatch, as_read)
    monkeypatch.setattr(spill_module, "_STAMP_FLUSH", 4)
    batches = fail_after_batches(monkeypatch, 2)
    linux = event(**{"host.os.family": "linux"})
    a = tmp_path / "a.ndjson"
    a.write_bytes(ndjson([linux] * 3))
    b = tmp_path / "b.ndjson"
    lines = 10_000  # batches of 4,096 lines at least: the first is yielded before the damage
    b.write_bytes(ndjson([linux] * lines))
    result = run_hunt([str(a), str(b)], HuntSpec(now=NOW))
    # then the diagnosis reads them again (no windows event: its census of the values)
    assert batches[:2] == [3, lines]
    assert [report.reader for report in result.files] == ["fast", "careful"]
    assert (result.counts.records, result.counts.time_window) == (3 + lines, 3 + lines)
