"""Every export a responder is handed, on real public Elastic events (tests/fixtures): the
same rows as the events' _source as NDJSON, in hunt, sweep and pivot; or a loud refusal.
Never "0 rows, exit 0" for input that was not understood."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from egress_offline import HuntSpec, InputError, SweepSpec, run_hunt, run_pivot, run_sweep
from egress_offline.cli import app
from egress_offline.readers.sniff import KNOWN_LAYOUTS
from tests.helpers import (
    ES_ARCHIVE,
    FIXTURES,
    LAYOUTS,
    NOW,
    SAMPLE_EVENT,
    GiB,
    event,
    fields_api,
    flatten_keys,
    hit,
    ndjson,
    zstd_compress,
)

SAMPLE: dict[str, Any] = json.loads(SAMPLE_EVENT.read_text())
ENTITY = SAMPLE["process"]["entity_id"]
PROCESS: dict[str, Any] = json.loads(
    (FIXTURES / "endpoint-package" / "process" / "sample_event.json").read_text()
)
ALL_TIME: dict[str, Any] = {"window": None, "threshold": 0}
EXPECTED = [(498, ENTITY, "64.233.191.95", SAMPLE["process"]["executable"])]


def _sample_events() -> list[dict[str, Any]]:
    """The real sample event three times over an hour, as three documents of one process,
    and the real process start event."""
    docs = []
    for minute in (0, 20, 40):
        doc = json.loads(json.dumps(SAMPLE))
        doc["@timestamp"] = f"2022-04-04T18:{minute:02d}:00.6007809Z"
        docs.append(doc)
    return [*docs, PROCESS]


def rows(result: Any) -> list[tuple[Any, ...]]:
    return result.rows.select(
        "total_bytes_out", "process.entity_id", "destination.address", "process.executable"
    ).rows()


# ----------------------------------------------------------- every layout, real events


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_gives_the_rows_of_the_events_source(tmp_path: Path, layout: str) -> None:
    """The real events, written in each layout a responder is handed: the hunt, the sweep
    and pivot give what the events' _source as plain NDJSON gives, with one record each."""
    events = _sample_events()
    plain = tmp_path / "plain"
    plain.mkdir()
    wrapped = tmp_path / "wrapped"
    wrapped.mkdir()
    source = LAYOUTS["nested"](events, plain)
    path = LAYOUTS[layout](events, wrapped)
    reference = run_hunt([str(source)], HuntSpec(**ALL_TIME))
    result = run_hunt([str(path)], HuntSpec(**ALL_TIME))
    assert rows(reference) == [(3 * 498, *EXPECTED[0][1:])]
    assert rows(result) == rows(reference)
    assert (result.counts.records, result.counts.malformed) == (4, 0)
    assert result.counts.event_match == reference.counts.event_match == 3
    swept = run_sweep([str(path)], SweepSpec(threshold=0))
    assert swept.rows.select("peak_bytes", "process.entity_id").rows() == [(3 * 498, ENTITY)]
    pivot = run_pivot([ENTITY], [str(path)]).as_dict()
    alone = run_pivot([ENTITY], [str(source)]).as_dict()
    if not layout.startswith("parquet-"):  # those writers keep the hunt's fields only
        assert pivot["entities"] == alone["entities"]
    assert pivot["entities"][0]["events"] == 3  # the process sample is another process


def test_kibana_s_esarchiver_archive_of_endpoint_7_9_events() -> None:
    """Kibana's test archive (8 real Endpoint 7.9 events, pretty-printed, one space
    indents, no final line end): every document is a record. These events carry neither
    source.bytes nor destination.ip, so nothing can be flagged, and the diagnosis says so."""
    result = run_hunt([str(ES_ARCHIVE)], HuntSpec(**ALL_TIME, os_families=None))
    assert (result.counts.records, result.counts.valid) == (8, 8)
    assert result.counts.event_match == 2  # the two disconnect_received events
    assert result.counts.event_match_with_bytes == 0
    assert result.counts.public_destination == 0  # no destination.ip at all
    assert result.rows.height == 0
    assert [d.message for d in result.diagnoses] == [
        "public destination: none of the 2 network disconnect_received events has a public "
        "destination.ip: 2 lack destination.ip (2 of them have a destination.address, which "
        "the query groups by but does not test); none of them carries source.bytes either, so "
        "their bytes could not be summed"
    ]


def test_an_esarchiver_index_entry_is_not_a_record(tmp_path: Path) -> None:
    text = ES_ARCHIVE.read_text()
    index = json.dumps({"type": "index", "value": {"index": "x", "mappings": {}}}, indent=1)
    path = tmp_path / "data.json.gz"
    path.write_bytes(gzip.compress((index + "\n\n" + text).encode()))
    assert run_hunt([str(path)], HuntSpec(**ALL_TIME)).counts.records == 8


def test_a_bulk_body_counts_only_its_documents(tmp_path: Path) -> None:
    """Action lines are not records; a delete has no document line; an update's record
    is its doc."""
    lines = [
        {"index": {"_index": "logs-endpoint.events.network-default", "_id": "a"}},
        SAMPLE,
        {"delete": {"_index": "logs-endpoint.events.network-default", "_id": "b"}},
        {"update": {"_index": "logs-endpoint.events.network-default", "_id": "c"}},
        {"doc": {**SAMPLE, "process": {**SAMPLE["process"], "entity_id": "C"}}},
    ]
    path = tmp_path / "bulk.ndjson"
    path.write_bytes(ndjson(lines).replace(b"\n", b"\r\n"))  # CRLF, as the API allows
    result = run_hunt([str(path)], HuntSpec(**ALL_TIME))
    assert result.counts.records == 2
    assert sorted(r[1] for r in rows(result)) == ["C", ENTITY]
    # the cluster would apply the delete and the update: the answer may differ, said so
    assert (
        f"{path}: "
        + (
            "the _bulk body's 1 delete action and 1 update action are not applied as the "
            "cluster would apply them: a deleted document still counts; an update's doc is "
            "read as a document of its own, not merged into the one it updates (and dropped "
            "as the same document when that was read first); the cluster's rows may differ"
        )
        in result.alerts
    )


@pytest.mark.parametrize("damaged", [False, True])
def test_a_bulk_body_of_index_actions_only_says_nothing_of_actions(
    tmp_path: Path, damaged: bool
) -> None:
    """Index and create actions are what the cluster holds; a delete counted line by line
    (a block with damage) is told as one counted in bulk is."""
    meta = {"_index": "logs-endpoint.events.network-default"}
    # a document may hold a key named as an action: no action for all that
    lines = [{"index": {**meta, "_id": "a"}}, {**SAMPLE, "update": {"by": "admin"}},
             {"create": {**meta, "_id": "b"}}, {"delete": {"_id": "x"}}]  # fmt: skip
    path = tmp_path / "bulk.ndjson"
    path.write_bytes(ndjson(lines) + (b'{"delete": {"_id": "a"}}\n{not json\n' if damaged else b""))
    notes = [note for note in run_hunt([str(path)], HuntSpec(**ALL_TIME)).alerts if "_bulk" in note]
    assert notes == (
        [f"{path}: the _bulk body's 1 delete action is not applied as the cluster would "
         "apply it: a deleted document still counts; the cluster's rows may differ"]
        if damaged else []
    )  # fmt: skip


def test_a_scroll_dump_and_an_async_search_count_each_hit(tmp_path: Path) -> None:
    hits = [hit(doc, i) for i, doc in enumerate(_sample_events())]
    lines = [{"_scroll_id": "x", "hits": {"hits": hits[:2]}}, {"hits": {"hits": hits[2:]}}]
    dump = tmp_path / "scroll.ndjson"
    dump.write_bytes(ndjson(lines))
    assert run_hunt([str(dump)], HuntSpec(**ALL_TIME)).counts.records == 4
    waiting = tmp_path / "async.json"
    waiting.write_text(json.dumps({"id": "x", "is_running": False, "is_partial": True,
                                   "response": {"hits": {"hits": hits}}}))  # fmt: skip
    partial = run_hunt([str(waiting)], HuntSpec(**ALL_TIME))
    assert partial.counts.records == 4
    assert any("marked partial" in note for note in partial.alerts)


def test_the_fields_api_s_own_response(tmp_path: Path) -> None:
    """Elasticsearch's documented fields API response: one hit, dotted keys, every value
    an array, the date asked for as epoch milliseconds (a string)."""
    path = FIXTURES / "es-docs-snippets" / "search_fields_api__response.json"
    result = run_hunt([str(path)], HuntSpec(**ALL_TIME))
    assert (result.counts.records, result.counts.valid) == (1, 1)
    assert result.last_ms == 4098435132000


def test_fields_api_hits_of_the_sample(tmp_path: Path) -> None:
    hits = {"hits": {"hits": [{"_index": "i", "_id": "1", "fields": fields_api(SAMPLE)}]}}
    path = tmp_path / "fields.json"
    path.write_text(json.dumps(hits))
    assert rows(run_hunt([str(path)], HuntSpec(**ALL_TIME))) == EXPECTED


def _sweep_and_pivot_agree(path: Path, events: list[dict[str, Any]]) -> None:
    """The sweep's peaks and pivot's network timeline of ``path`` are those of the same
    events as _source NDJSON (a layout that keeps only some fields: the hunt's)."""
    source = path.with_name("as-source.ndjson")
    source.write_bytes(ndjson(events))
    peaks = [run_sweep([str(p)], SweepSpec(threshold=0)).rows.select(
        "peak_bytes", "process.entity_id", "peak_window_start") for p in (path, source)]  # fmt: skip
    assert peaks[0].rows() == peaks[1].rows()
    network = [run_pivot([ENTITY], [str(p)]).entities[0].network for p in (path, source)]
    keep = ("destination.address", "bytes_out", "connections", "first_seen", "last_seen")
    assert [{k: n[k] for k in keep} for n in network[0]] == [
        {k: n[k] for k in keep} for n in network[1]
    ]
    source.unlink()


# ------------------------------------------------------------------------------ ES|QL


def _esql(docs: list[dict[str, Any]], *, columnar: bool) -> dict[str, Any]:
    """What ES|QL gives for ``FROM logs-endpoint.events.network-* | KEEP ...``."""
    columns = [
        ("@timestamp", "date"), ("host.os.family", "keyword"), ("event.category", "keyword"),
        ("event.action", "keyword"), ("destination.ip", "ip"), ("destination.address", "keyword"),
        ("process.entity_id", "keyword"), ("process.executable", "keyword"),
        ("source.bytes", "long"), ("host.name", "keyword"),
    ]  # fmt: skip
    table = []
    for doc in docs:
        flat = flatten_keys(doc)
        row = []
        for name, kind in columns:
            value = flat.get(name)
            if kind == "date" and value is not None:  # ES|QL writes dates in ms, UTC
                value = value[:23] + "Z"
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            row.append(value)
        table.append(row)
    values = [list(column) for column in zip(*table, strict=True)] if columnar else table
    return {"columns": [{"name": n, "type": t} for n, t in columns], "values": values}


@pytest.mark.parametrize("columnar", [False, True])
def test_an_esql_response_row_by_row_or_columnar(tmp_path: Path, columnar: bool) -> None:
    events = _sample_events()[:3]
    path = tmp_path / "esql.json"
    path.write_text(json.dumps(_esql(events, columnar=columnar), indent=2))
    result = run_hunt([str(path)], HuntSpec(**ALL_TIME))
    assert result.counts.records == 3
    assert rows(result) == [(3 * 498, *EXPECTED[0][1:])]
    _sweep_and_pivot_agree(path, events)


def test_an_async_esql_response_and_a_running_one(tmp_path: Path) -> None:
    done = tmp_path / "done.json"
    done.write_text(json.dumps({"id": "x", "is_running": False, **_esql([SAMPLE], columnar=False)}))
    assert rows(run_hunt([str(done)], HuntSpec(**ALL_TIME))) == EXPECTED
    running = FIXTURES / "es-docs-snippets" / "esql_async__running_response.json"
    with pytest.raises(InputError, match=r"still running .* holds no rows yet"):
        run_hunt([str(running)], HuntSpec(**ALL_TIME))


def test_an_esql_response_of_exactly_1000_rows_is_said_to_be_cut(tmp_path: Path) -> None:
    path = tmp_path / "esql.json"
    path.write_text(json.dumps(_esql([SAMPLE] * 1000, columnar=False)))
    result = run_hunt([str(path)], HuntSpec(**ALL_TIME))
    assert result.counts.records == 1000
    assert any("exactly 1,000 rows" in note for note in result.alerts)


def test_esql_s_documented_multi_values_and_nulls() -> None:
    """Elasticsearch's documented ES|QL responses (a multi-valued cell, null cells, a
    columnar response) are read; their columns hold no field the hunt reads, so they
    are refused, naming them, rather than read as nothing found."""
    for name in ("esql_multivalued__rows_with_null.json", "esql_rest__columnar_response.json"):
        path = FIXTURES / "es-docs-snippets" / name
        with pytest.raises(InputError, match="no record holds any field the hunt reads"):
            run_hunt([str(path)], HuntSpec(**ALL_TIME))


# ------------------------------------------------------------------------- Kibana CSV


def _kibana_csv(docs: list[dict[str, Any]], *, zone_hours: int = 0) -> str:
    """What Discover's Generate CSV writes for the hunt's fields: quoted cells, Kibana's
    date format in the user's zone, numbers with thousands separators, - for missing."""
    names = ["@timestamp", "host.os.family", "event.category", "event.action",
             "destination.ip", "destination.address", "process.entity_id",
             "process.executable", "source.bytes", "host.name"]  # fmt: skip
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writerow(names)
    for doc in docs:
        flat = flatten_keys(doc)
        row: list[Any] = []
        for name in names:
            value = flat.get(name)
            if value is None:
                row.append("-")
            elif name == "@timestamp":
                moment = datetime.fromisoformat(value[:23]).replace(tzinfo=UTC)
                local = moment.timestamp() + zone_hours * 3600
                shown = datetime.fromtimestamp(local, tz=UTC)
                row.append(
                    shown.strftime("%b %-d, %Y @ %H:%M:%S.") + f"{shown.microsecond // 1000:03d}"
                )
            elif name == "source.bytes":
                row.append(f"{value:,}")
            elif isinstance(value, list):
                row.append(", ".join(map(str, value)))
            else:
                row.append(str(value))
        writer.writerow(row)
    return out.getvalue()


@pytest.mark.parametrize("packed", ["none", "gzip", "zstd"])
def test_a_kibana_csv_export(tmp_path: Path, packed: str) -> None:
    """Compressed too (read through a copy of its text in the scratch directory): a
    gzipped or zstd CSV read as holding no record, exit 0, before."""
    big = json.loads(json.dumps(SAMPLE))
    big["source"]["bytes"] = 2 * GiB  # written as "2,147,483,648"
    text = _kibana_csv([SAMPLE, big]).encode()
    path = (
        tmp_path / {"none": "discover.csv", "gzip": "discover.csv.gz", "zstd": "d.csv.zst"}[packed]
    )
    pack = {"none": bytes, "gzip": gzip.compress, "zstd": zstd_compress}[packed]
    path.write_bytes(pack(text))
    result = run_hunt([str(path)], HuntSpec(**ALL_TIME))
    assert result.counts.records == 2
    assert rows(result) == [(2 * GiB + 498, *EXPECTED[0][1:])]
    _sweep_and_pivot_agree(path, [SAMPLE, big])
    assert result.first_ms == result.last_ms == 1649098320600  # 2022-04-04T18:52:00.600Z
    assert any("dates carry no time zone" in note for note in result.alerts)


def test_a_kibana_csv_export_s_zone_is_given(tmp_path: Path) -> None:
    path = tmp_path / "discover.csv"
    path.write_text(_kibana_csv([SAMPLE], zone_hours=2))  # a user in UTC+2
    as_utc = run_hunt([str(path)], HuntSpec(**ALL_TIME))
    told = run_hunt([str(path)], HuntSpec(**ALL_TIME, csv_timezone="+02:00"))
    paris = run_hunt([str(path)], HuntSpec(**ALL_TIME, csv_timezone="Europe/Paris"))
    assert as_utc.first_ms == 1649098320600 + 2 * 3_600_000
    assert told.first_ms == paris.first_ms == 1649098320600  # CEST in April


def test_csv_values_kibana_formatted_are_read_back(tmp_path: Path) -> None:
    """- is missing, (empty) an empty string, several values joined by ", " are split
    again (not a group key's), a formula escape is dropped, and a value that is not its
    field's type is missing and counted, never guessed."""
    path = tmp_path / "x.csv"
    path.write_text(
        '"@timestamp","event.category","event.action","host.os.family","destination.ip",'
        '"process.entity_id","destination.address","process.executable","source.bytes"\n'
        '"2024-05-01T11:00:00.000Z","network","disconnect_received","windows","8.8.8.8",'
        '"E1","a, b","\'=cmd.exe","1.2KB"\n'
        '"2024-05-01T11:00:01.000Z","network, x","disconnect_received","windows","8.8.8.8",'
        '"E1","a, b","\'=cmd.exe","5"\n'
        '"2024-05-01T11:00:02.000Z","network","disconnect_received","windows","8.8.8.8",'
        '"E1","a, b","\'=cmd.exe","1,000"\n'
        '"not a date","network","disconnect_received","windows","8.8.8.8","E2","-","x","7"\n'
    )
    result = run_hunt([str(path)], HuntSpec(**ALL_TIME))
    assert rows(result) == [(1000, "E1", "a, b", "=cmd.exe"), (7, "E2", None, "x")]
    assert result.counts.event_match == 3  # the "network, x" row has two categories
    (report,) = result.files
    assert report.unreadable == 2
    assert report.unreadable_first == [
        "row 1: source.bytes '1.2KB' is not a number",
        "row 4: @timestamp 'not a date' is not a date",
    ]


_CSV_HEADER = (
    "@timestamp,event.category,event.action,host.os.family,destination.ip,"
    "process.entity_id,destination.address,process.executable,source.bytes,message\n"
)


def _csv_row(entity: str, message: str, second: int = 0) -> str:
    return (f"2024-05-01T11:00:0{second}.000Z,network,disconnect_received,windows,8.8.8.8,"
            f"{entity},8.8.8.8,x.exe,{GiB},{message}\n")  # fmt: skip


def test_rows_read_into_a_value_by_a_quote_left_open_are_told(tmp_path: Path) -> None:
    """A quote left open makes the rows after it, up to the next quote, part of one value
    (as CSV quoting reads them, and Python's csv module too): E2's row and E3's were
    lost without a word, 1 row flagged where 3 are, exit 0."""
    path = tmp_path / "open.csv"
    path.write_text(_CSV_HEADER + _csv_row("E1", '"left open', 1) + _csv_row("E2", "fine", 2)
                    + _csv_row("E3", 'closed"', 3) + _csv_row("E4", "after", 4))  # fmt: skip
    result = run_hunt([str(path)], HuntSpec(**ALL_TIME))
    assert [row[1] for row in rows(result)] == ["E1", "E4"]
    assert result.counts.records == 2
    assert result.alerts == [
        f"{path}: a row holds a value with lines shaped like rows (row 1): a quote left "
        "open makes the rows after it, up to the next quote, part of one value, and they "
        "are then not read as records; check the export, or export it again"
    ]


def test_values_holding_lines_are_values(tmp_path: Path) -> None:
    """Kibana quotes a value holding a line break: read as one value, with no word, when
    its lines are not shaped like rows."""
    path = tmp_path / "lines.csv"
    script = '"powershell -c ""\n$list = @(1,2,3,4,5,6,7,8,9,10)\nforeach ($x in $list) {}"""'
    path.write_text(_CSV_HEADER + _csv_row("E1", '"a message\non, two lines"', 1)
                    + _csv_row("E2", script, 2))  # fmt: skip
    result = run_hunt([str(path)], HuntSpec(**ALL_TIME))
    assert [row[1] for row in rows(result)] == ["E1", "E2"]
    assert result.alerts == []  # a script's line of commas, as wide as a row, is no row


def test_a_csv_cut_short_within_its_last_row_is_told(tmp_path: Path) -> None:
    """Cut five bytes before its end, the last row's bytes (1073741824) read as 10737418
    (and its message as missing), nothing said. Kibana ends every row with a line end."""
    path = tmp_path / "cut.csv"
    path.write_text((_CSV_HEADER + _csv_row("E1", "x"))[:-5])
    result = run_hunt([str(path)], HuntSpec(**ALL_TIME))
    assert rows(result) == [(10737418, "E1", "8.8.8.8", "x.exe")]  # as it stands
    assert result.alerts[-1] == (
        f"{path}: its last row (row 1) has no line end: the copy may be cut short within "
        "it, and its values read as they stand; check the copy"
    )
    path.write_text(_CSV_HEADER + _csv_row("E1", "x"))  # whole: nothing said
    assert run_hunt([str(path)], HuntSpec(**ALL_TIME)).alerts == []


def test_csv_columns_of_flattened_hits_are_the_fields(tmp_path: Path) -> None:
    """``_source.host.os.family``: hits flattened by pandas' json_normalize."""
    path = tmp_path / "hits.csv"
    path.write_text(_CSV_HEADER.replace("@timestamp", "_source.@timestamp")
                    .replace(",process.", ",_source.process.") + _csv_row("E1", "x"))  # fmt: skip
    assert [row[1] for row in rows(run_hunt([str(path)], HuntSpec(**ALL_TIME)))] == ["E1"]


def test_a_field_in_two_csv_columns_is_told(tmp_path: Path) -> None:
    """The first column of a field was read, the other not, without a word."""
    path = tmp_path / "twice.csv"
    header = _CSV_HEADER.replace(",message", ",Action (event.action)")
    path.write_text(header + _csv_row("E1", "connection_attempted"))
    result = run_hunt([str(path)], HuntSpec(**ALL_TIME))
    assert [row[1] for row in rows(result)] == ["E1"]
    assert result.alerts == [
        f"{path}: more than one column holds event.action: the first of each is read, the "
        "others are not"
    ]


def test_a_real_kibana_csv_of_other_data_is_refused_naming_its_columns() -> None:
    """A real Discover CSV export (Kibana's e-commerce test data): its columns hold no
    field the hunt reads, and it is refused, naming them."""
    path = FIXTURES / "kibana-csv" / "DERIVED_ecommerce_discover_csv_header_plus_1_row.csv"
    with pytest.raises(InputError) as raised:
        run_hunt([str(path)])
    assert "a CSV file whose columns hold none of the fields the hunt reads (_id, _index" in str(
        raised.value
    )


# ------------------------------------------------------------ encodings and line ends


def test_a_powershell_utf16_export_is_read(tmp_path: Path) -> None:
    """Windows PowerShell 5.1's `>` writes UTF-16 LE with a byte order mark and CRLF: read
    as the same events, not as malformed records."""
    path = tmp_path / "export.json"
    text = ndjson(_sample_events()).decode().replace("\n", "\r\n")
    path.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    result = run_hunt([str(path)], HuntSpec(**ALL_TIME))
    assert (result.counts.records, result.counts.malformed) == (4, 0)
    assert rows(result) == [(3 * 498, *EXPECTED[0][1:])]
    assert result.files[0].encoding == "utf-16-le"


# ------------------------------------------------------------------------- Parquet


def test_parquet_from_other_writers_with_columns_the_stack_cannot_read(tmp_path: Path) -> None:
    """A Parquet file from another writer, with unrelated columns of types the stack does
    not read (unsigned 64-bit, 128-bit decimals, binary): only the needed columns are
    read, and they change nothing."""
    flat = flatten_keys(SAMPLE)
    needed = {
        name: [str(flat[name]) if not isinstance(flat[name], list) else flat[name][0]]
        for name in ("@timestamp", "host.os.family", "event.category", "event.action",
                     "destination.ip", "destination.address", "process.entity_id",
                     "process.executable")
    }  # fmt: skip
    table = pa.table(
        {
            **{name: pa.array(values) for name, values in needed.items()},
            "source.bytes": pa.array([498], type=pa.int64()),
            "dns.Ext.options": pa.array([2**64 - 1], type=pa.uint64()),
            "big": pa.array([10**30], type=pa.decimal128(38, 0)),
            "blob": pa.array([b"\x00\xff"], type=pa.binary()),
        }
    )
    path = tmp_path / "spark.parquet"
    pq.write_table(table, path)
    assert rows(run_hunt([str(path)], HuntSpec(**ALL_TIME))) == EXPECTED


# ----------------------------------------------------------- the same document, once


def test_two_copies_of_an_export_are_read_once(tmp_path: Path) -> None:
    body = ndjson([hit(event(**{"source.bytes": 600 * 2**20}), 1)])
    (tmp_path / "a.ndjson").write_bytes(body)
    (tmp_path / "copy of a.ndjson").write_bytes(body)
    result = run_hunt([str(tmp_path)], HuntSpec(window=None))
    assert result.rows.height == 0  # 600 MiB, not 1.2 GiB
    assert result.counts.records == 1
    assert result.skipped == [
        f"{tmp_path / 'copy of a.ndjson'}: the same bytes as {tmp_path / 'a.ndjson'} (read once)"
    ]


def test_overlapping_dumps_count_each_document_once(tmp_path: Path) -> None:
    """Two dumps that overlap (a different layout each, different bytes): a 600 MiB
    upload in both is 600 MiB, not 1.2 GiB; documents only one holds still count."""
    upload = event(**{"source.bytes": 600 * 2**20, "process.entity_id": "U"})
    other = event(**{"source.bytes": GiB, "process.entity_id": "V"})
    first = tmp_path / "monday.ndjson"
    first.write_bytes(ndjson([hit(upload, 7)]))
    second = tmp_path / "overlap.json"
    second.write_text(json.dumps({"hits": {"hits": [hit(upload, 7), hit(other, 8)]}}))
    result = run_hunt([str(first), str(second)], HuntSpec(window=None))
    assert result.rows.select("total_bytes_out", "process.entity_id").rows() == [(GiB, "V")]
    assert (result.counts.event_match, result.counts.duplicates) == (2, 1)
    assert [f.duplicates for f in result.files] == [0, 1]
    swept = run_sweep([str(first), str(second)], SweepSpec(threshold=0))
    assert sorted(swept.rows.select("process.entity_id", "peak_bytes").rows()) == [
        ("U", 600 * 2**20),
        ("V", GiB),
    ]
    pivot = run_pivot(["U"], [str(first), str(second)])
    assert pivot.entities[0].events == 1


def test_the_later_copy_is_dropped_among_rows_without_an_id(tmp_path: Path) -> None:
    """In one file, rows without an ``_id`` and rows outside the window come before and
    between two copies of a document whose second copy differs: the first read is kept,
    wherever the copies sit among the rows the duplicate step does not judge."""
    first = event(**{"source.bytes": GiB, "process.entity_id": "D"})
    later = event(**{"source.bytes": 5, "process.entity_id": "D"})
    old = event(**{"@timestamp": "2024-04-01T00:00:00Z", "process.entity_id": "OLD"})
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(ndjson([event(**{"process.entity_id": "BARE"}), hit(old, 3),
                             hit(first, 9), event(**{"process.entity_id": "BARE"}),
                             hit(later, 9)]))  # fmt: skip
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert result.rows.select("total_bytes_out", "process.entity_id").rows() == [
        (2 * GiB, "BARE"),
        (GiB, "D"),
    ]
    assert (result.counts.duplicates, result.files[0].duplicates) == (1, 1)
    swept = run_sweep([str(path)], SweepSpec(threshold=0))
    assert sorted(swept.rows.select("process.entity_id", "peak_bytes").rows()) == [
        ("BARE", 2 * GiB),
        ("D", GiB),
        ("OLD", GiB),
    ]


def test_documents_without_an_id_are_never_dropped(tmp_path: Path) -> None:
    path = tmp_path / "plain.ndjson"
    path.write_bytes(ndjson([event(), event(**{"host.name": "other"})]))
    result = run_hunt([str(path)], HuntSpec(window=None))
    assert result.rows.get_column("total_bytes_out").to_list() == [2 * GiB]
    assert result.counts.duplicates == 0


# -------------------------------------------------------------- never a silent zero


def run(*args: str) -> tuple[int, str, str]:
    done = CliRunner().invoke(app, ["hunt", *args])
    return done.exit_code, done.stdout, done.stderr


def test_a_named_file_in_an_unknown_layout_is_an_error_naming_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "cloudtrail.json"
    path.write_text(json.dumps({"Records": [{"eventName": "GetObject"}]}) + "\n")
    code, out, err = run(str(path), "-q")
    assert (code, out) == (1, "")
    assert err == (
        f"Error: {path}: no record holds any field the hunt reads, in any layout this tool "
        f"knows (the first record's top-level keys: Records); it reads {KNOWN_LAYOUTS}\n"
    )


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("escaped", [False, True])
def test_an_export_whose_first_records_hold_no_field_is_read_whole(
    tmp_path: Path, packed: bool, escaped: bool
) -> None:
    """Its first records (here 2,000, beyond the sniff's first bytes) hold no field the
    hunt reads, its last ones do: it is read, named or walked past, and its events found.
    Before, it was refused unread, said to hold no such record (and skipped unsaid under
    -q in a directory). The rest of its text is looked at for the fields' keys, which an
    escape may spell."""
    others = [{"message": f"line {i}", "labels": {"n": i}} for i in range(2000)]
    late = ndjson([event()])
    if escaped:
        late = late.replace(b'"process"', b'"\\u0070rocess"')
    body = ndjson(others) + late
    path = tmp_path / ("late.ndjson.gz" if packed else "late.ndjson")
    path.write_bytes(gzip.compress(body) if packed else body)
    for given in (path, tmp_path):
        result = run_hunt([str(given)], HuntSpec(now=NOW))
        assert [row[:2] for row in rows(result)] == [(GiB, "E1")]
        assert (result.skipped, result.counts.records) == ([], 2001)


@pytest.mark.parametrize("packed", [False, True])
def test_a_file_whose_text_holds_no_field_s_key_is_not_understood_however_long(
    tmp_path: Path, packed: bool
) -> None:
    """Records beyond the sniff's first bytes, none with a key the hunt reads anywhere
    (``eventName`` is not ``event``): refused as before, after a look through its text."""
    body = ndjson([{"eventName": "GetObject", "n": i} for i in range(5000)])
    path = tmp_path / ("odd.ndjson.gz" if packed else "odd.ndjson")
    path.write_bytes(gzip.compress(body) if packed else body)
    code, out, err = run(str(path), "-q")
    assert (code, out) == (1, "")
    assert err.startswith(f"Error: {path}: no record holds any field the hunt reads")


def test_in_a_directory_it_is_skipped_and_listed_and_nothing_understood_is_an_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "good.ndjson").write_bytes(ndjson([event()]))
    (tmp_path / "odd.ndjson").write_bytes(ndjson([{"Records": []}]))
    result = run_hunt([str(tmp_path)], HuntSpec(window=None))
    assert result.counts.records == 1
    assert result.skipped == [
        f"{tmp_path / 'odd.ndjson'}: no record holds a field the hunt reads "
        "(first record's keys: Records)"
    ]
    (tmp_path / "good.ndjson").unlink()
    code, _, err = run(str(tmp_path), "-q")
    assert code == 1
    assert err.startswith(f"Error: nothing in {tmp_path} is an export this tool understands")


def test_a_run_whose_every_record_is_malformed_is_an_error_even_quiet(tmp_path: Path) -> None:
    path = tmp_path / "broken.ndjson"
    path.write_bytes(b'{"@timestamp":"2024-05-01T11:00:00Z","x":1\n' * 3)  # cut short
    code, _, err = run(str(path), "-q")
    assert code == 1
    # the reason is the reader's: the careful one decodes every line
    assert err.startswith(
        f"Error: every one of the 3 records read is malformed (first: {path}, line 1: "
    )
    assert err.endswith(
        "), so the hunt read nothing; check the files' layout and encoding (an export "
        "re-saved by another tool?) and export them again\n"
    )


def test_a_csv_s_zone_note_is_printed_even_quiet(tmp_path: Path) -> None:
    path = tmp_path / "discover.csv"
    path.write_text(_kibana_csv([SAMPLE]))
    code, _, err = run(str(path), "-q", "--all-time", "--format", "csv")
    assert code == 0
    assert err == (
        f"warning: {path}: dates carry no time zone (Kibana writes them in the exporting "
        "user's); read as UTC: give --csv-timezone to say otherwise\n"
    )


def test_a_bad_zone_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson([event()]))
    code, _, err = run(str(path), "--csv-timezone", "Mars/Olympus")
    assert code == 2
    assert "--csv-timezone: 'Mars/Olympus' is not a time zone" in err
