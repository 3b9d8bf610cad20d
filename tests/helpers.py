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
import zstandard

from egress_offline import HuntResult, HuntSpec, run_hunt

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


def ndjson(docs: list[Any]) -> bytes:
    return b"".join(json.dumps(d).encode() + b"\n" for d in docs)


LAYOUTS: dict[str, Callable[[list[dict[str, Any]], Path], Path]] = {}


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
    path.write_bytes(zstandard.ZstdCompressor().compress(b"\xef\xbb\xbf" + ndjson(docs)))
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
def _parquet(docs: list[dict[str, Any]], directory: Path) -> Path:
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
        path
    )
    return path


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
