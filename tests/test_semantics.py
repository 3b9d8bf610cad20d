"""Every rule of ESQL_SEMANTICS.md on a few inline events, with the exact expected rows."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from egress_offline import HuntSpec, run_hunt
from egress_offline.ranges import parse_cidr
from tests.helpers import DELETE, NOW, GiB, event, hunt


def totals(docs: list[Any], tmp_path: Path, **spec: Any) -> list[tuple[Any, ...]]:
    result = hunt(docs, tmp_path, **spec)
    return [
        (
            r["total_bytes_out"],
            r["process.entity_id"],
            r["destination.address"],
            r["process.executable"],
            r["connections"],
        )
        for r in result.rows.iter_rows(named=True)
    ]


# 1. time -----------------------------------------------------------------------------


def test_window_is_strictly_after_now_minus_window(tmp_path: Path) -> None:
    docs = [
        event(**{"@timestamp": "2024-05-01T04:00:00.000Z", "process.entity_id": "edge"}),
        event(**{"@timestamp": "2024-05-01T04:00:00.001Z", "process.entity_id": "inside"}),
    ]
    assert totals(docs, tmp_path) == [(GiB, "inside", "8.8.8.8", "C:\\evil.exe", 1)]


def test_sub_millisecond_digits_are_dropped(tmp_path: Path) -> None:
    # 04:00:00.0009999 is 04:00:00.000 to a date field: on the edge, so excluded.
    docs = [event(**{"@timestamp": "2024-05-01T04:00:00.0009999Z"})]
    assert totals(docs, tmp_path) == []


@pytest.mark.parametrize(
    ("stamp", "kept"),
    [
        ("2024-05-01T06:00:00+02:00", False),  # 04:00Z: on the edge
        ("2024-05-01T06:00:01+02:00", True),
        ("2024-05-01T04:00:01", True),  # no offset: UTC
        ("2024-05-01T03:59:59-0000", False),
        (1714536001000, True),  # epoch milliseconds
        ("1714536000000", False),  # epoch milliseconds as text, on the edge
        ("2024-05-01", False),
        ("not a date", False),
        ("2024-02-30T10:00:00Z", False),
        # as the cluster's Iso8601Parser: a comma before the fraction is a point ...
        ("2024-05-01T04:00:00,001Z", True),
        ("2024-05-01T04:00:00,000Z", False),  # on the edge
        ("2024-05-01T06:00:00,5+02:00", True),
        # ... there is no 60th second (Polars would read 03:59:60 as 04:00:00) ...
        ("2024-05-01T04:00:60Z", False),
        ("2024-05-01T04:00:60.5Z", False),
        # ... and no offset beyond 18 hours
        ("2024-05-01T23:00:00+18:00", True),
        ("2024-05-02T05:00:00+24:00", False),  # would be 2024-05-01T05:00:00Z
        ("2024-04-30T10:00:01-18:01", False),  # would be 04:01:01Z
    ],
)
def test_timestamp_forms(tmp_path: Path, stamp: Any, kept: bool) -> None:
    assert bool(totals([event(**{"@timestamp": stamp})], tmp_path)) is kept


def test_events_after_now_are_kept_as_the_query_has_no_upper_bound(tmp_path: Path) -> None:
    docs = [event(**{"@timestamp": "2024-05-02T00:00:00Z"})]
    assert totals(docs, tmp_path) == [(GiB, "E1", "8.8.8.8", "C:\\evil.exe", 1)]


def test_missing_or_multi_valued_timestamp_drops_the_row(tmp_path: Path) -> None:
    docs = [
        event(**{"@timestamp": DELETE}),
        event(**{"@timestamp": ["2024-05-01T11:00:00Z", "2024-05-01T11:00:00Z"]}),
        event(**{"@timestamp": ["2024-05-01T11:00:00Z"], "process.entity_id": "one"}),
    ]
    assert totals(docs, tmp_path) == [(GiB, "one", "8.8.8.8", "C:\\evil.exe", 1)]


# 2. exact keyword comparisons -----------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "kept"),
    [
        ("host.os.family", "Windows", False),  # case-sensitive
        ("host.os.family", ["windows"], True),  # a one-element array is its value
        ("host.os.family", ["windows", "windows"], True),  # a repeated keyword is one value
        ("host.os.family", ["windows", "linux"], False),  # two values: null, dropped
        ("host.os.family", [], False),  # [] is missing
        ("host.os.family", [None, "windows"], True),  # nulls in a list are not stored
        ("host.os.family", DELETE, False),
        ("event.category", "network", True),
        ("event.category", ["network", "process"], False),
        ("event.action", "disconnect_received ", False),
        ("event.action", ["disconnect_received"], True),
        ("event.action", "connection_accepted", False),
    ],
)
def test_keyword_equality(tmp_path: Path, field: str, value: Any, kept: bool) -> None:
    assert bool(totals([event(**{field: value})], tmp_path)) is kept


# 3. CIDR_MATCH ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "kept"),
    [
        ("8.8.8.8", True),
        ("10.1.2.3", False),
        ("::ffff:10.1.2.3", False),  # IPv4-mapped IPv6 is its IPv4 address
        ("::ffff:8.8.8.8", True),
        ("::10.1.2.3", True),  # IPv4-compatible is IPv6, outside every range
        ("::1", False),
        ("fe80::1", False),
        ("FF02::1", False),
        ("2001:4860:4860::8888", True),
        ("fc00::1", True),  # not in the seed's list: public to this query
        ("2001:db8::1", True),
        ("0.0.0.1", True),
        ("64:ff9b::808:808", True),
        ("192.0.0.9", False),
        ("203.0.113.200", False),
        ("100.127.255.255", False),
        ("100.128.0.0", True),
        ("not an ip", False),  # malformed: null, so NOT CIDR_MATCH is null
        ("fe80::1%eth0", False),
        (["8.8.8.8", "1.1.1.1"], False),  # multi-valued: null
        (["8.8.8.8", "8.8.8.8"], True),  # the same ip twice is one value
        (["8.8.8.8", "::ffff:8.8.8.8"], True),  # the same 16 bytes
        (["8.8.8.8", "junk"], True),  # a malformed value is ignored, the other stays
        ([], False),
        (DELETE, False),
    ],
)
def test_cidr_match(tmp_path: Path, ip: Any, kept: bool) -> None:
    assert bool(totals([event(**{"destination.ip": ip})], tmp_path)) is kept


def test_extra_cidrs_are_excluded_too(tmp_path: Path) -> None:
    docs = [event(), event(**{"destination.ip": "1.1.1.1", "process.entity_id": "E2"})]
    rows = totals(docs, tmp_path, extra_cidrs=(parse_cidr("8.8.8.0/24"),))
    assert rows == [(GiB, "E2", "8.8.8.8", "C:\\evil.exe", 1)]


def test_grouping_is_on_destination_address_not_ip(tmp_path: Path) -> None:
    docs = [
        event(**{"destination.ip": "8.8.8.8", "destination.address": "dns.google"}),
        event(**{"destination.ip": "8.8.4.4", "destination.address": "dns.google"}),
    ]
    assert totals(docs, tmp_path) == [(2 * GiB, "E1", "dns.google", "C:\\evil.exe", 2)]


# 4. grouping ------------------------------------------------------------------------------


def test_missing_key_is_a_null_group_of_its_own(tmp_path: Path) -> None:
    docs = [
        event(**{"process.entity_id": DELETE}),
        event(**{"process.entity_id": []}),
        event(),
    ]
    assert totals(docs, tmp_path) == [
        (2 * GiB, None, "8.8.8.8", "C:\\evil.exe", 2),
        (GiB, "E1", "8.8.8.8", "C:\\evil.exe", 1),
    ]


def test_multi_valued_keys_put_the_row_in_every_group(tmp_path: Path) -> None:
    docs = [event(**{"process.entity_id": ["A", "B"], "process.executable": ["x", "y"]})]
    assert totals(docs, tmp_path) == [
        (GiB, "A", "8.8.8.8", "x", 1),
        (GiB, "A", "8.8.8.8", "y", 1),
        (GiB, "B", "8.8.8.8", "x", 1),
        (GiB, "B", "8.8.8.8", "y", 1),
    ]


# 5. sum of source.bytes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "total"),
    [
        (GiB, GiB),
        (str(GiB), GiB),  # numeric strings are numbers
        (GiB + 0.9, GiB),  # fractions truncated
        (f"{GiB}.99", GiB),
        ("1.073741824e9", GiB),
        ([GiB // 2, GiB // 2], GiB),  # every element counts
        ([GiB // 2, GiB // 2, None], GiB),
        ([GiB, GiB], 2 * GiB),  # a long keeps repeated values
        ("9223372036854775808", None),  # outside int64: malformed, null
        (1e400, None),
        (18446744073709551616, None),
        ("NaN", None),
        (True, None),
        ({}, None),
        ("12abc", None),
    ],
)
def test_source_bytes_coercion(tmp_path: Path, value: Any, total: int | None) -> None:
    path = tmp_path / "one.ndjson"
    doc = event()
    doc["source"]["bytes"] = "__VALUE__"
    literal = "1e400" if value == 1e400 else json.dumps(value)
    path.write_text(json.dumps(doc).replace('"__VALUE__"', literal) + "\n")
    result = run_hunt([str(path)], HuntSpec(now=NOW, threshold=0))
    got = result.rows["total_bytes_out"].to_list()
    assert got == ([] if total is None else [total])
    assert result.counts.malformed == 0


def test_null_values_are_skipped_in_the_sum(tmp_path: Path) -> None:
    docs = [event(), event(**{"source.bytes": None}), event(**{"source.bytes": "junk"})]
    assert totals(docs, tmp_path) == [(GiB, "E1", "8.8.8.8", "C:\\evil.exe", 3)]


def test_a_group_with_no_values_is_null_and_never_flagged(tmp_path: Path) -> None:
    docs = [event(**{"source.bytes": DELETE}), event(**{"source.bytes": []})]
    assert totals(docs, tmp_path, threshold=0) == []


def test_a_sum_beyond_int64_is_null(tmp_path: Path) -> None:
    docs = [event(**{"source.bytes": 2**62}) for _ in range(2)]
    assert totals(docs, tmp_path, threshold=0) == []
    docs = [
        event(**{"source.bytes": 2**62}),
        event(**{"source.bytes": 2**62 - 1}),
        event(**{"source.bytes": 2**62 - 1}),
        event(**{"source.bytes": -(2**62)}),
    ]
    assert totals(docs, tmp_path, threshold=0) == [(2**63 - 2, "E1", "8.8.8.8", "C:\\evil.exe", 4)]


# 6. threshold -----------------------------------------------------------------------------


def test_threshold_is_inclusive(tmp_path: Path) -> None:
    docs = [
        event(**{"source.bytes": GiB, "process.entity_id": "at"}),
        event(**{"source.bytes": GiB - 1, "process.entity_id": "under"}),
    ]
    assert totals(docs, tmp_path) == [(GiB, "at", "8.8.8.8", "C:\\evil.exe", 1)]


# output -----------------------------------------------------------------------------------


def test_output_columns_order_and_context(tmp_path: Path) -> None:
    docs = [
        event(**{"destination.port": 443}),
        event(
            **{"destination.port": 8443, "user.name": "bob", "@timestamp": "2024-05-01T11:30:00Z"}
        ),
        event(
            **{
                "process.entity_id": "E9",
                "source.bytes": 3 * GiB,
                "destination.as": {"organization": {"name": "GOOGLE"}},
            }
        ),
    ]
    result = hunt(docs, tmp_path)
    assert result.rows.columns == [
        "total_bytes_out",
        "process.entity_id",
        "destination.address",
        "process.executable",
        "host.name",
        "user.name",
        "connections",
        "first_seen",
        "last_seen",
        "destination.port",
        "destination.as.organization.name",
    ]
    first, second = result.rows.to_dicts()
    assert first["process.entity_id"] == "E9"
    assert first["destination.as.organization.name"] == ["GOOGLE"]
    assert second["total_bytes_out"] == 2 * GiB
    assert second["user.name"] == ["alice", "bob"]
    assert second["destination.port"] == ["443", "8443"]
    assert second["first_seen"].isoformat() == "2024-05-01T11:00:00+00:00"
    assert second["last_seen"].isoformat() == "2024-05-01T11:30:00+00:00"


def test_context_per_group_with_shared_events_and_a_missing_key(tmp_path: Path) -> None:
    """An event in two flagged groups (a multi-valued key) gives its context to both;
    a group whose key is missing (null) gets its own events' context, no other's; a
    group with no value of a field gets an empty list."""
    docs = [
        event(**{"process.entity_id": ["A", "B"], "host.name": "both", "source.bytes": GiB}),
        event(
            **{
                "process.entity_id": "A",
                "host.name": "a-only",
                "user.name": "ua",
                "source.bytes": 1,
            }
        ),
        event(
            **{
                "process.entity_id": DELETE,
                "host.name": "nobody",
                "user.name": DELETE,
                "destination.port": 53,
                "source.bytes": GiB,
            }
        ),
        event(**{"process.entity_id": "C", "host.name": "not-flagged", "source.bytes": 5}),
    ]
    rows = {row["process.entity_id"]: row for row in hunt(docs, tmp_path).rows.to_dicts()}
    assert set(rows) == {"A", "B", None}
    assert rows["A"]["host.name"] == ["a-only", "both"]
    assert rows["A"]["user.name"] == ["alice", "ua"]
    assert rows["B"]["host.name"] == ["both"]
    assert rows[None]["host.name"] == ["nobody"]
    assert rows[None]["user.name"] == []
    assert rows[None]["destination.port"] == ["53"]
    assert rows["B"]["destination.port"] == ["443"]


def test_optional_context_columns_are_left_out_when_absent(tmp_path: Path) -> None:
    docs = [event(**{"destination.port": DELETE})]
    assert "destination.port" not in hunt(docs, tmp_path).rows.columns
    assert "destination.as.organization.name" not in hunt(docs, tmp_path).rows.columns


def test_sorted_by_total_then_keys_with_every_row(tmp_path: Path) -> None:
    docs = [
        event(**{"process.entity_id": f"P{i:04d}", "source.bytes": GiB + i % 3})
        for i in range(1500)
    ]
    rows = totals(docs, tmp_path)
    assert len(rows) == 1500  # no 1000-row cap
    assert rows[0] == (GiB + 2, "P0002", "8.8.8.8", "C:\\evil.exe", 1)
    assert rows[1][1] == "P0005"
    assert rows[-1] == (GiB, "P1497", "8.8.8.8", "C:\\evil.exe", 1)


def test_other_os_family_and_any(tmp_path: Path) -> None:
    docs = [event(**{"host.os.family": "debian", "process.entity_id": "L"}), event()]
    assert [r[1] for r in totals(docs, tmp_path, os_families=("debian",))] == ["L"]
    assert [r[1] for r in totals(docs, tmp_path, os_families=None)] == ["E1", "L"]


def test_all_time_keeps_old_events_and_ones_without_timestamp(tmp_path: Path) -> None:
    docs = [event(**{"@timestamp": "2001-01-01T00:00:00Z"}), event(**{"@timestamp": DELETE})]
    assert totals(docs, tmp_path, window=None) == [(2 * GiB, "E1", "8.8.8.8", "C:\\evil.exe", 2)]
    assert totals(docs, tmp_path, window=timedelta(days=1)) == []


def test_each_step_counts_what_is_left_in_every_mode(tmp_path: Path) -> None:
    """``--all-time`` counted every event match twice in the time step. A document read
    twice is two records in the window, as any record is, and one event match (the other
    dropped as the same document again): the time step counted it once, so 5,000 copies
    of one event were said to leave 1 of 5,000 records in the window."""
    linux = {"host.os.family": "linux"}
    docs = [
        event(),  # in the window
        event(**{"@timestamp": "2001-01-01T00:00:00Z"}),  # old
        event(**{"@timestamp": DELETE}),  # no timestamp
        event(**linux),  # does not match, in the window
        event(**linux, **{"@timestamp": DELETE}),  # does not match, no timestamp
    ]
    hits = [{"_index": "i", "_id": str(n), "_source": doc} for n, doc in enumerate(docs)]
    path = tmp_path / "hits.ndjson"
    path.write_text("".join(json.dumps(h) + "\n" for h in [*hits, hits[0], hits[2]]))

    def steps(**spec: Any) -> tuple[int, ...]:
        c = run_hunt([str(path)], HuntSpec(now=NOW, **spec)).counts
        return (c.records, c.valid, c.time_window, c.event_match, c.duplicates, c.flagged)

    assert steps() == (7, 7, 3, 1, 1, 1)
    assert steps(window=None) == (7, 7, 7, 3, 2, 1)
    assert steps(window=timedelta(days=10000)) == (7, 7, 4, 2, 1, 1)
