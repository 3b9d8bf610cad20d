"""Test helpers: write events in every layout the tool reads, and compare rows."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from egress_offline import HuntResult, HuntSpec, run_hunt
from egress_offline.readers.compression import zstd_module

GiB = 1024**3
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def event(**overrides: Any) -> dict[str, Any]:
    """A nested Endpoint disconnect event that the default hunt keeps; dotted keys in
    ``overrides`` replace (or, given ``None``... as a value, null) the nested field."""
    doc: dict[str, Any] = {
        "@timestamp": "2024-05-01T11:00:00.0000000Z",
        "host": {"os": {"family": "windows"}, "name": "WKS-1"},
        "event": {"category": ["network"], "action": "disconnect_received"},
        "destination": {"ip": "8.8.8.8", "address": "8.8.8.8", "port": 443},
        "process": {"entity_id": "E1", "executable": "C:\\evil.exe"},
        "source": {"bytes": GiB},
        "user": {"name": "alice"},
    }
    for dotted, value in overrides.items():
        parts = dotted.split(".") if dotted != "@timestamp" else ["@timestamp"]
        node = doc
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return doc


DELETE = object()


def flatten_keys(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            out.update(flatten_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def half_flat(doc: dict[str, Any]) -> dict[str, Any]:
    """Dot the first two levels only: {"host.os": {"family": ...}}."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            for sub, inner in value.items():
                out[f"{key}.{sub}"] = inner
        else:
            out[key] = value
    return out


def hit(doc: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return {
        "_index": "logs-endpoint.events.network-default",
        "_id": f"id{i}",
        "_score": 1,
        "_source": doc,
    }


def zstd_compress(data: bytes) -> bytes:
    """One zstd frame of ``data``."""
    return bytes(zstd_module().compress(data))


def ndjson(docs: list[Any]) -> bytes:
    return b"".join(json.dumps(d).encode() + b"\n" for d in docs)


LAYOUTS: dict[str, Callable[[list[dict[str, Any]], Path], Path]] = {}

#: Every command that reads a file's rows, each with the arguments before the file (a
#: fixed --now of 2024-05-01T12:00:00Z; pivot's entity E1).
EVERY_READING_COMMAND = pytest.mark.parametrize(
    "command",
    [["hunt", "--now", "2024-05-01T12:00:00Z"], ["hunt", "--strict", "--now", "2024-05-01T12:00:00Z"],
     ["sweep"], ["pivot", "E1"]],
    ids=["hunt", "strict", "sweep", "pivot"],
)  # fmt: skip


def layout(name: str) -> Callable[[Callable[..., Path]], Callable[..., Path]]:
    def register(fn: Callable[..., Path]) -> Callable[..., Path]:
        LAYOUTS[name] = fn
        return fn

    return register


@layout("nested")
def _nested(docs: list[dict[str, Any]], directory: Path) -> Path:
    path = directory / "nested.ndjson"
    path.write_bytes(ndjson(docs))
    return path


def compact(docs: list[Any]) -> bytes:
    """NDJSON as Endpoint and Elasticsearch write it: no space after ``:`` or ``,``."""
    return b"".join(json.dumps(d, separators=(",", ":")).encode() + b"\n" for d in docs)


@layout("compact")
def _compact(docs: list[dict[str, Any]], directory: Path) -> Path:
    path = directory / "compact.ndjson"
    path.write_bytes(compact(docs))
    return path


@layout("compact-gzip")
def _compact_gzip(docs: list[dict[str, Any]], directory: Path) -> Path:
    path = directory / "compact.ndjson.gz"
    path.write_bytes(gzip.compress(compact(docs)))
    return path


@layout("dotted")
def _dotted(docs: list[dict[str, Any]], directory: Path) -> Path:
    path = directory / "dotted.jsonl"
    path.write_bytes(ndjson([flatten_keys(d) for d in docs]))
    return path


@layout("mixed")
def _mixed(docs: list[dict[str, Any]], directory: Path) -> Path:
    path = directory / "mixed.json"
    rows = [half_flat(d) if i % 2 else flatten_keys(d) if i % 3 else d for i, d in enumerate(docs)]
    path.write_bytes(ndjson(rows))
    return path


@layout("elasticdump-crlf-gzip")
def _elasticdump(docs: list[dict[str, Any]], directory: Path) -> Path:
    path = directory / "dump.ndjson.gz"
    body = b"".join(json.dumps(hit(d, i)).encode() + b"\r\n" for i, d in enumerate(docs))
    half = len(body) // 2
    cut = body.rfind(b"\n", 0, half) + 1
    path.write_bytes(gzip.compress(body[:cut]) + gzip.compress(body[cut:]))  # two members
    return path


@layout("json-array")
def _array(docs: list[dict[str, Any]], directory: Path) -> Path:
    path = directory / "array.json"
    path.write_text(json.dumps(docs, indent=2))
    return path


@layout("search-response")
def _search(docs: list[dict[str, Any]], directory: Path) -> Path:
    path = directory / "search.json"
    response = {
        "took": 3,
        "timed_out": False,
        "hits": {"total": {"value": len(docs)}, "hits": [hit(d, i) for i, d in enumerate(docs)]},
    }
    path.write_text(json.dumps(response, indent=1))
    return path


@layout("zstd-bom")
def _zstd(docs: list[dict[str, Any]], directory: Path) -> Path:
    path = directory / "events.ndjson.zst"
    path.write_bytes(zstd_compress(b"\xef\xbb\xbf" + ndjson(docs)))
    return path


@layout("es-archive")
def _es_archive(docs: list[dict[str, Any]], directory: Path) -> Path:
    """Kibana's esArchiver: pretty-printed entries, a blank line between them, an index
    entry first (not a record), keys sorted, as its writer (json-stable-stringify) does."""
    entries: list[dict[str, Any]] = [
        {"type": "index", "value": {"index": "logs-endpoint.events.network-default",
                                    "mappings": {"properties": {}}}},
    ]  # fmt: skip
    entries += [
        {"type": "doc", "value": {"id": f"id{i}", "index": "logs-endpoint.events.network-default",
                                  "source": doc}}
        for i, doc in enumerate(docs)
    ]  # fmt: skip
    path = directory / "data.json"
    path.write_text("\n\n".join(json.dumps(e, indent=2, sort_keys=True) for e in entries))
    return path


@layout("es-archive-lines-gzip")
def _es_archive_lines(docs: list[dict[str, Any]], directory: Path) -> Path:
    """esArchiver entries one per line, gzipped (``data.json.gz``)."""
    entries = [
        {"type": "doc", "value": {"index": "logs-endpoint.events.network-default",
                                  "id": f"id{i}", "source": doc}}
        for i, doc in enumerate(docs)
    ]  # fmt: skip
    path = directory / "data.json.gz"
    path.write_bytes(gzip.compress(ndjson(entries)))
    return path


@layout("bulk")
def _bulk(docs: list[dict[str, Any]], directory: Path) -> Path:
    """A _bulk body: create and index actions, a delete (no document line) and an
    update whose doc is the document."""
    lines: list[Any] = [
        {"delete": {"_index": "logs-endpoint.events.network-default", "_id": "gone"}}
    ]
    for i, doc in enumerate(docs):
        meta = {"_index": "logs-endpoint.events.network-default", "_id": f"id{i}"}
        if i % 3 == 2:
            lines += [{"update": meta}, {"doc": doc, "doc_as_upsert": True}]
        else:
            lines += [{"create" if i % 2 else "index": meta}, doc]
    path = directory / "body.ndjson"
    path.write_bytes(ndjson(lines))
    return path


def _response(hits: list[dict[str, Any]], scroll: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "took": 2,
        "timed_out": False,
        "hits": {"total": {"value": len(hits), "relation": "eq"}, "hits": hits},
    }
    if scroll is not None:
        body["_scroll_id"] = scroll
    return body


@layout("scroll-dump")
def _scroll_dump(docs: list[dict[str, Any]], directory: Path) -> Path:
    """A scroll dump: one _search response per line, two hits a page, an empty last page."""
    hits = [hit(doc, i) for i, doc in enumerate(docs)]
    pages = [_response(hits[i : i + 2], scroll="c2Nyb2xs") for i in range(0, len(hits), 2)]
    path = directory / "scroll.ndjson"
    path.write_bytes(ndjson([*pages, _response([], scroll="c2Nyb2xs")]))
    return path


@layout("responses-array")
def _responses_array(docs: list[dict[str, Any]], directory: Path) -> Path:
    """A search_after / PIT dump: a JSON array of _search responses."""
    hits = [hit(doc, i) for i, doc in enumerate(docs)]
    pages = [_response(hits[i : i + 3]) for i in range(0, len(hits), 3)]
    path = directory / "pages.json"
    path.write_text(json.dumps(pages, indent=2))
    return path


@layout("async-search")
def _async_search(docs: list[dict[str, Any]], directory: Path) -> Path:
    path = directory / "async.json"
    body = {
        "id": "FmRldE8zREVEUzA2ZVpUeGs2ejJFUFEaMkZ5QTVrSTZSaVN3WlNFVmtlWHJsdzoxMDc=",
        "is_partial": False,
        "is_running": False,
        "start_time_in_millis": 1583945890986,
        "response": _response([hit(doc, i) for i, doc in enumerate(docs)]),
    }
    path.write_text(json.dumps(body, indent=2))
    return path


def fields_api(doc: dict[str, Any]) -> dict[str, Any]:
    """What the fields API gives for a document: flat dotted names, every value an array
    (null values, and empty objects and arrays, left out)."""
    out: dict[str, Any] = {}
    for name, value in flatten_keys(doc).items():
        values = value if isinstance(value, list) else [value]
        kept = [v for v in values if v is not None and v != {}]
        if kept:
            out[name] = kept
    return out


@layout("fields-api")
def _fields(docs: list[dict[str, Any]], directory: Path) -> Path:
    """Hits with fields and no _source, one per line."""
    path = directory / "fields.ndjson"
    path.write_bytes(
        ndjson([{"_index": "i", "_id": f"id{n}", "_score": 1.0, "fields": fields_api(d)}
                for n, d in enumerate(docs)])
    )  # fmt: skip
    return path


@layout("utf16-le-crlf")
def _utf16(docs: list[dict[str, Any]], directory: Path) -> Path:
    """As Windows PowerShell 5.1's ``>`` writes: UTF-16 LE, a byte order mark, CRLF."""
    path = directory / "export.json"
    text = ndjson(docs).decode("utf-8").replace("\n", "\r\n")
    path.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    return path


@layout("utf16-be-array")
def _utf16_array(docs: list[dict[str, Any]], directory: Path) -> Path:
    path = directory / "export-be.json"
    path.write_bytes(b"\xfe\xff" + json.dumps(docs, indent=2).encode("utf-16-be"))
    return path


@layout("cr-lines")
def _carriage_returns(docs: list[dict[str, Any]], directory: Path) -> Path:
    """Lines ended by a carriage return alone (old Mac line ends)."""
    path = directory / "mac.ndjson"
    path.write_bytes(ndjson(docs).replace(b"\n", b"\r"))
    return path


def hunt(
    docs: list[Any], tmp_path: Path, *, layout_name: str = "nested", **spec: Any
) -> HuntResult:
    spec.setdefault("now", NOW)
    path = LAYOUTS[layout_name](docs, tmp_path)
    return run_hunt([str(path)], HuntSpec(**spec))


def rows_of(result: HuntResult) -> list[dict[str, Any]]:
    """Engine rows in the reference model's form (times as epoch ms, all columns)."""
    frame = result.rows
    for name in ("destination.port", "destination.as.organization.name"):
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit([], dtype=pl.List(pl.String)).alias(name))
    frame = frame.with_columns(
        pl.col("first_seen", "last_seen").dt.epoch("ms"),
        *[
            pl.col(c).list.sort()
            for c in (
                "host.name",
                "user.name",
                "destination.port",
                "destination.as.organization.name",
            )
        ],
    )
    return frame.to_dicts()


def keyed(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {
        (r["process.entity_id"], r["destination.address"], r["process.executable"]): r for r in rows
    }


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return json.dumps(value)
    # Parquet holds UTF-8, which has no lone surrogates: an exporter writes U+FFFD
    return re.sub("[\ud800-\udfff]", "\ufffd", str(value))


PARQUET_COLUMNS = (
    "@timestamp",
    "host.os.family",
    "host.name",
    "event.category",
    "event.action",
    "destination.ip",
    "destination.address",
    "destination.port",
    "process.entity_id",
    "process.executable",
    "source.bytes",
    "user.name",
    "destination.as.organization.name",
)


@layout("parquet-text-lists")
def _parquet(docs: list[dict[str, Any]], directory: Path, group_rows: int | None = None) -> Path:
    """A Spark-style flat export: every field a list-of-strings column, dotted names."""
    path = directory / "flat.parquet"
    rows = [flatten_keys(d) for d in docs]
    columns: dict[str, list[list[str | None] | None]] = {}
    for name in PARQUET_COLUMNS:
        values: list[list[str | None] | None] = []
        for row in rows:
            value = row.get(name)
            if value is None or isinstance(value, dict):
                values.append(None)
            elif isinstance(value, list):
                values.append([_text(v) for v in value])
            else:
                values.append([_text(value)])
        columns[name] = values
    pl.DataFrame(columns, schema={n: pl.List(pl.String) for n in PARQUET_COLUMNS}).write_parquet(
        path, row_group_size=group_rows
    )
    return path


@layout("parquet-bytes")
def _parquet_bytes(docs: list[dict[str, Any]], directory: Path) -> Path:
    """The same, every text stored as bytes (Parquet ``BINARY`` without the UTF-8
    annotation), as Impala, older Hive and some other writers store text."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    text = _parquet(docs, directory)
    table = pq.read_table(text)
    text.unlink()  # the layout's directory holds its own file only
    path = directory / "bytes.parquet"
    pq.write_table(table.cast(pa.schema([(n, pa.list_(pa.binary())) for n in table.column_names])),
                   path)  # fmt: skip
    return path


@layout("parquet-small-row-groups")
def _parquet_small_groups(docs: list[dict[str, Any]], directory: Path) -> Path:
    """The same in row groups of 2 rows, as a writer that flushes often leaves them
    (read as stretches of row groups: ``parquet_batches.stretches``)."""
    return _parquet(docs, directory, group_rows=2)


def fail_after_batches(monkeypatch: Any, count: int) -> list[int]:
    """Make the fast NDJSON reader fail once it has accounted for ``count`` batches of
    lines, as on damage met late in a file of many GB (the careful reader then reads the
    file again). Returns the heights of the batches it accounted for, as they come."""
    from egress_offline.readers import ndjson as reader  # noqa: PLC0415

    batches: list[int] = []
    real = reader._account_batch

    def failing(batch: Any, *args: Any, **kwargs: Any) -> Any:
        batches.append(batch.height)
        yield from real(batch, *args, **kwargs)
        if len(batches) == count:
            raise pl.exceptions.ComputeError("damage met late")

    monkeypatch.setattr(reader, "_account_batch", failing)
    return batches


#: Real public Elastic events copied into the repository (tests/fixtures/SOURCES.md).
FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: Elastic's sample network event (endpoint-package): a Windows disconnect_received.
SAMPLE_EVENT = FIXTURES / "endpoint-package" / "network" / "sample_event.json"
#: A legacy (2020, schema v1) outbound disconnect example: action "disconnected".
LEGACY_EVENT = (
    FIXTURES
    / "endpoint-package"
    / "schemas_examples_v1"
    / "network_outbound_disconnect_windows.json"
)
#: The first 8 documents of a Kibana esArchiver archive of Endpoint 7.9 events.
ES_ARCHIVE = FIXTURES / "kibana-es-archive" / "resolver_tree_events_data.subset-first8docs.json"
