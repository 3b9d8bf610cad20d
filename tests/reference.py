"""A slow, obviously-correct model of the hunt, written from ESQL_SEMANTICS.md alone.

One Python loop over parsed documents, no Polars. It flattens each document into dotted
paths (instead of enumerating key splits, as the engine does) so that the two do not share
a mistake. Property tests hold the engine to it.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

SEED_CIDRS = [
    "10.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.0.0/29",
    "192.0.0.8/32",
    "192.0.0.9/32",
    "192.0.0.10/32",
    "192.0.0.170/32",
    "192.0.0.171/32",
    "192.0.2.0/24",
    "192.31.196.0/24",
    "192.52.193.0/24",
    "192.168.0.0/16",
    "192.88.99.0/24",
    "224.0.0.0/4",
    "100.64.0.0/10",
    "192.175.48.0/24",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "240.0.0.0/4",
    "::1",
    "FE80::/10",
    "FF00::/8",
]
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
# Elasticsearch's Iso8601Parser: the fraction after "." or ",", seconds up to 59, and
# offsets of at most 18 hours (java.time's ZoneOffset)
ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?$"
)


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, list[Any]]:
    """Dotted path -> every non-null leaf value, arrays flattened."""
    out: dict[str, list[Any]] = {}
    for key, value in doc.items():
        path = prefix + key
        if isinstance(value, dict):
            for sub, values in flatten(value, path + ".").items():
                out.setdefault(sub, []).extend(values)
        else:
            out.setdefault(path, []).extend(_leaves(value))
    return out


def _leaves(value: Any) -> list[Any]:
    if value is None or isinstance(value, dict):
        return []
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def as_keyword(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    # a lone surrogate (a "\\ud800" escape with no pair) is indexed as U+FFFD by Lucene
    return re.sub("[\ud800-\udfff]", "\ufffd", str(value))


def keywords(values: list[Any]) -> list[str]:
    return sorted({as_keyword(v) for v in values})


def as_long(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if LONG_MIN <= value <= LONG_MAX else None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        number = int(value)
    else:
        text = str(value)
        if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
            return None
        try:
            number = int(Decimal(text))
        except (InvalidOperation, ValueError):
            return None
    return number if LONG_MIN <= number <= LONG_MAX else None


def as_millis(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    text = str(value)
    if re.fullmatch(r"[+-]?\d+(\.\d*)?", text):
        return int(text.split(".", maxsplit=1)[0])
    match = ISO.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    millis = int(moment.timestamp()) * 1000 + int((fraction or "").ljust(3, "0")[:3])
    if zone and zone != "Z":
        digits = zone[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + int(digits[2:4] or 0)
        if minutes > 18 * 60:
            return None
        millis -= (1 if zone[0] == "+" else -1) * minutes * 60_000
    return millis


def as_ip(value: Any) -> int | None:
    text = as_keyword(value)
    if "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return int(address) + (0xFFFF << 32 if address.version == 4 else 0)


def in_cidr(ip: int, cidr: str) -> bool:
    network = ipaddress.ip_network(cidr.strip(), strict=False)
    base = int(network.network_address)
    prefix = network.prefixlen
    if network.version == 4:
        base += 0xFFFF << 32
        prefix += 96
    return ip >> (128 - prefix) == base >> (128 - prefix)


def single(values: list[Any]) -> Any:
    """ES|QL comparisons: one value is that value; none or several make ``null``."""
    return values[0] if len(values) == 1 else None


@dataclass
class Group:
    total: int = 0
    values: int = 0
    connections: int = 0
    seen: list[int] = field(default_factory=list)
    context: dict[str, set[str]] = field(default_factory=dict)


CONTEXT = ("host.name", "user.name", "destination.port", "destination.as.organization.name")


def source_of(doc: dict[str, Any]) -> dict[str, Any]:
    source = doc.get("_source")
    return source if isinstance(source, dict) else doc


def timestamp_of(doc: dict[str, Any]) -> int | None:
    parsed = [as_millis(v) for v in flatten(source_of(doc)).get("@timestamp", [])]
    return single([p for p in parsed if p is not None])


def reference_hunt(
    docs: Iterable[dict[str, Any]],
    *,
    now_ms: int | None = None,
    window_ms: int | None = 8 * 3600 * 1000,
    families: tuple[str, ...] | None = ("windows",),
    threshold: int = 1024**3,
    extra_cidrs: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Rows the cluster would return, as dicts with every output column (context as
    sorted lists, times as epoch ms). ``now_ms=None`` means the newest @timestamp."""
    docs = list(docs)
    if now_ms is None and window_ms is not None:
        stamps = [t for t in (timestamp_of(d) for d in docs) if t is not None]
        if not stamps:
            return []
        now_ms = max(stamps)
    cidrs = SEED_CIDRS + list(extra_cidrs)
    groups: dict[tuple[str | None, ...], Group] = {}
    for doc in docs:
        fields = flatten(source_of(doc))
        ts = timestamp_of(doc)
        if window_ms is not None and (ts is None or not ts > now_ms - window_ms):  # type: ignore[operator]
            continue
        family = single(keywords(fields.get("host.os.family", [])))
        if families is not None and family not in families:
            continue
        if single(keywords(fields.get("event.category", []))) != "network":
            continue
        if single(keywords(fields.get("event.action", []))) != "disconnect_received":
            continue
        ips = {ip for ip in (as_ip(v) for v in fields.get("destination.ip", [])) if ip is not None}
        ip = single(sorted(ips))
        if ip is None or any(in_cidr(ip, c) for c in cidrs):
            continue
        key_lists = [
            keywords(fields.get(name, [])) or [None]
            for name in ("process.entity_id", "destination.address", "process.executable")
        ]
        numbers = [n for n in (as_long(v) for v in fields.get("source.bytes", [])) if n is not None]
        for key in itertools.product(*key_lists):
            group = groups.setdefault(key, Group())
            group.total += sum(numbers)
            group.values += len(numbers)
            group.connections += 1
            if ts is not None:
                group.seen.append(ts)
            for name in CONTEXT:
                group.context.setdefault(name, set()).update(keywords(fields.get(name, [])))
    rows = []
    for key, group in groups.items():
        total = group.total if group.values and LONG_MIN <= group.total <= LONG_MAX else None
        if total is None or total < threshold:
            continue
        rows.append(
            {
                "total_bytes_out": total,
                "process.entity_id": key[0],
                "destination.address": key[1],
                "process.executable": key[2],
                "connections": group.connections,
                "first_seen": min(group.seen) if group.seen else None,
                "last_seen": max(group.seen) if group.seen else None,
                **{name: sorted(group.context.get(name, set())) for name in CONTEXT},
            }
        )
    return rows
