"""The engine agrees with the reference model on random event sets, in every layout."""

from __future__ import annotations

import gzip
import itertools
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egress_offline import HuntSpec, run_hunt
from egress_offline.normalise import canonical_ms, timestamp_text_ms
from tests.helpers import LAYOUTS, NOW, keyed, rows_of
from tests.reference import reference_hunt, timestamp_of

NOW_MS = int(NOW.timestamp() * 1000)
HOUR = 3_600_000

MISSING = object()


def maybe(values: st.SearchStrategy[Any], *, lists: bool = True) -> st.SearchStrategy[Any]:
    """A field value: mostly plain, sometimes a list, null, empty or missing."""
    options = [values, values, values, st.none(), st.just([]), st.just(MISSING)]
    if lists:
        options.append(st.lists(values, min_size=1, max_size=3))
    return st.one_of(options)


def _iso(ms: int, digits: int, zone: str) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    offset = {"Z": 0, "+02:00": 120, "-0530": -330}[zone]
    local = moment + timedelta(minutes=offset)
    fraction = f"{local.microsecond:06d}0000"[:digits]
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    return text + ("." + fraction if digits else "") + zone


timestamps = st.one_of(
    st.builds(
        _iso,
        st.integers(NOW_MS - 3 * HOUR, NOW_MS + HOUR),
        st.sampled_from([0, 3, 7, 9]),
        st.sampled_from(["Z", "+02:00", "-0530"]),
    ),
    st.integers(NOW_MS - 3 * HOUR, NOW_MS + HOUR),  # epoch millis
    st.just(NOW_MS - 2 * HOUR),  # exactly on the window's edge: excluded
    st.sampled_from(["yesterday", "2024-02-30T00:00:00Z"]),
)
in_window = st.one_of(
    st.builds(
        _iso,
        st.integers(NOW_MS - HOUR, NOW_MS),
        st.sampled_from([7, 0, 3]),
        st.sampled_from(["Z", "+02:00"]),
    ),
    st.integers(NOW_MS - HOUR, NOW_MS),
)
ips = st.sampled_from(
    [
        "8.8.8.8",
        "1.1.1.1",
        "::ffff:8.8.8.8",
        "10.1.2.3",
        "::ffff:10.1.2.3",
        "::10.1.2.3",
        "192.168.1.1",
        "2001:4860::8888",
        "fe80::1",
        "::1",
        "not-an-ip",
        "203.0.113.9",
        "64:ff9b::808:808",
        "fc00::1",
        "0.0.0.1",
    ]
)
byte_values = st.one_of(
    st.integers(-5, 200),
    st.integers(2**62, 2**63 + 5),
    st.sampled_from(["120", "12.9", "+7", "1e2", "abc", "", "-3", "9223372036854775808"]),
    st.floats(-10, 300, allow_nan=False).map(lambda x: round(x, 2)),
    st.booleans(),
)


def usually(good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a value that passes the filters, sometimes any variant (list, null, ...)."""
    return st.integers(0, 9).flatmap(lambda n: good if n < 7 else maybe(st.one_of(good, odd)))


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    fields = {
        "@timestamp": usually(in_window, timestamps),
        "host.os.family": usually(st.just("windows"), st.sampled_from(["linux", "Windows"])),
        "host.name": maybe(st.sampled_from(["h1", "h2"])),
        "event.category": usually(st.just("network"), st.just("process")),
        "event.action": usually(st.just("disconnect_received"), st.just("connection_attempted")),
        "destination.ip": usually(st.sampled_from(["8.8.8.8", "::ffff:8.8.8.8", "1.1.1.1"]), ips),
        "destination.address": usually(st.sampled_from(["a.example", "8.8.8.8"]), st.none()),
        "destination.port": maybe(st.sampled_from([443, 80])),
        "process.entity_id": usually(st.sampled_from(["E1", "E2", "E3"]), st.none()),
        "process.executable": usually(
            st.sampled_from(["C:\\a.exe", "C:\\b.exe"]),
            st.sampled_from(["C:\\a\ud800.exe", "C:\\a\udc00.exe", None]),  # lone surrogates
        ),
        "source.bytes": usually(st.integers(60, 120), byte_values),
        "user.name": maybe(st.sampled_from(["u1", "u2"])),
    }
    values = {dotted: draw(strategy) for dotted, strategy in fields.items()}
    doc: dict[str, Any] = {}
    # sometimes an @timestamp key nested in another object comes before the record's own
    # (a record whose only one is nested is a documented limit of the fast reader)
    nested = draw(st.one_of(st.just(MISSING), st.just(MISSING), timestamps))
    if nested is not MISSING and values["@timestamp"] is not MISSING:
        doc["meta"] = {"@timestamp": nested}
    for dotted, value in values.items():
        if value is MISSING:
            continue
        parts = [dotted] if dotted == "@timestamp" else dotted.split(".")
        node = doc
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return doc


def _compare(docs: list[dict[str, Any]], layout: str, **spec: Any) -> None:
    reference = reference_hunt(
        docs,
        now_ms=spec.get("now_ms", NOW_MS),
        window_ms=spec.get("window_ms", 2 * HOUR),
        families=spec.get("families", ("windows",)),
        threshold=spec.get("threshold", 90),
    )
    now = spec.get("now_ms", NOW_MS)
    window = spec.get("window_ms", 2 * HOUR)
    hunt_spec = HuntSpec(
        now="latest" if now is None else datetime.fromtimestamp(now / 1000, tz=UTC),
        window=None if window is None else timedelta(milliseconds=window),
        os_families=spec.get("families", ("windows",)),
        threshold=spec.get("threshold", 90),
    )
    with tempfile.TemporaryDirectory() as scratch:
        path = LAYOUTS[layout](docs, Path(scratch))
        result = run_hunt([str(path)], hunt_spec)
    assert keyed(rows_of(result)) == keyed(reference)
    assert result.counts.records == len(docs)
    assert result.counts.malformed == 0
    # the anchor, the data's time range and the count in the window, as the cluster's
    stamps = [t for t in (timestamp_of(d) for d in docs) if t is not None]
    if stamps:
        assert (result.first_ms, result.last_ms) == (min(stamps), max(stamps))
    if window is not None and stamps:
        anchor = max(stamps) if now is None else now
        assert result.now_ms == anchor
        assert result.counts.time_window == sum(t > anchor - window for t in stamps)
    assert [r["total_bytes_out"] for r in rows_of(result)] == sorted(
        (r["total_bytes_out"] for r in reference), reverse=True
    )


SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.slow
@SETTINGS
@given(docs=st.lists(documents(), min_size=0, max_size=30), layout=st.sampled_from(sorted(LAYOUTS)))
def test_engine_matches_reference_in_every_layout(docs: list[dict[str, Any]], layout: str) -> None:
    _compare(docs, layout)


@pytest.mark.slow
@SETTINGS
@given(
    docs=st.lists(documents(), min_size=1, max_size=25),
    threshold=st.sampled_from([0, 1, 150, 2**62]),
    families=st.sampled_from([("windows",), ("windows", "linux"), None]),
    mode=st.sampled_from(["fixed", "latest", "all-time"]),
    layout=st.sampled_from(["nested", "compact", "compact-gzip"]),
)
def test_engine_matches_reference_across_options(
    docs: list[dict[str, Any]],
    threshold: int,
    families: tuple[str, ...] | None,
    mode: str,
    layout: str,
) -> None:
    now_ms: int | None = NOW_MS if mode == "fixed" else None
    window_ms = None if mode == "all-time" else 2 * HOUR
    _compare(
        docs, layout, now_ms=now_ms, window_ms=window_ms, threshold=threshold, families=families
    )


GARBAGE = [
    b'{"truncated": ',
    b"not json at all",
    b"[1, 2, 3]",
    b"null",
    b'"a string"',
    b"\xff\xfe\x00garbage",
    b'{"x": NaN}',
    b'{"_source": "not an object"}',
    b"\x00\x00\x00\x00",
]


@pytest.mark.slow
@SETTINGS
@given(
    docs=st.lists(documents(), min_size=0, max_size=40),
    damage=st.lists(st.tuples(st.integers(0, 40), st.sampled_from(GARBAGE)), max_size=6),
    odd=st.lists(st.integers(0, 40), max_size=3),
    gzipped=st.booleans(),
)
def test_malformed_lines_are_counted_and_change_nothing_else(
    docs: list[dict[str, Any]], damage: list[tuple[int, bytes]], odd: list[int], gzipped: bool
) -> None:
    lines = []
    for i, doc in enumerate(docs):
        text = json.dumps(doc)
        if i in odd:  # valid JSON the vectorised decoder rejects: an unrelated huge number
            text = text[:-1] + (', "dns": {"Ext": {"options": 1e400}}}' if doc else '"dns": 1e400}')
        lines.append(text.encode())
    for position, garbage in sorted(damage, key=lambda d: -d[0]):
        lines.insert(min(position, len(lines)), garbage)
    anchor = {"event": {"category": "process"}}  # a last valid line: the file is NDJSON
    body = b"\n".join([*lines, json.dumps(anchor).encode()]) + b"\n"
    reference = reference_hunt([*docs, anchor], now_ms=NOW_MS, window_ms=2 * HOUR, threshold=90)
    spec = HuntSpec(
        now=datetime.fromtimestamp(NOW_MS / 1000, tz=UTC), window=timedelta(hours=2), threshold=90
    )
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / ("damaged.ndjson.gz" if gzipped else "damaged.ndjson")
        path.write_bytes(gzip.compress(body) if gzipped else body)
        result = run_hunt([str(path)], spec)
    assert keyed(rows_of(result)) == keyed(reference)
    assert result.counts.records == len(docs) + len(damage) + 1
    if any(b"\xff" in garbage for _, garbage in damage):
        assert result.files[0].reader == "careful"  # invalid UTF-8: every line is checked
    if result.files[0].reader == "careful":
        malformed = len(damage)
    else:  # lines that cannot match are judged by their shape alone
        malformed = sum(not shaped(garbage) for _, garbage in damage)
    assert result.counts.malformed == malformed
    assert result.counts.valid == result.counts.records - malformed


# damage found only when a line that may match is decoded (shaped like an object, in the
# window); the damage above is mostly found before
_MAY_MATCH = (
    b'{"@timestamp": "'
    + datetime.fromtimestamp((NOW_MS - HOUR) / 1000, tz=UTC)
    .strftime("%Y-%m-%dT%H:%M:%S.000Z")
    .encode()
    + b'", "event": {"action": "disconnect_received"}, "host": {"os": {"family": "windows"}}, "x": }'
)


@pytest.mark.slow
@settings(SETTINGS, max_examples=40)
@given(
    docs=st.lists(documents(), min_size=0, max_size=40),
    cuts=st.lists(st.integers(0, 44), max_size=6),
    gzipped=st.lists(st.booleans(), min_size=7, max_size=7),
    damage=st.lists(st.tuples(st.integers(0, 40), st.sampled_from(GARBAGE)), max_size=3),
    undecodable=st.lists(st.integers(0, 40), min_size=1, max_size=3),
    latest=st.sampled_from([False, False, True]),
)
def test_a_directory_matches_the_reference_and_each_file_its_own_reading(
    *,
    docs: list[dict[str, Any]],
    cuts: list[int],
    gzipped: list[bool],
    damage: list[tuple[int, bytes]],
    undecodable: list[int],
    latest: bool,
) -> None:
    """Small files' lines to decode and their decoded rows are gathered across files. Over
    a directory the rows are the reference's over all its events; with a fixed anchor,
    each file's report (records, malformed records and where) is the one it gets alone,
    damaged files (the careful reader's) included."""
    lines = [json.dumps(doc).encode() for doc in docs]
    damage = damage + [(position, _MAY_MATCH) for position in undecodable]
    for position, garbage in sorted(damage, key=lambda d: -d[0]):
        lines.insert(min(position, len(lines)), garbage)
    # each file is NDJSON, and no two are the same bytes (those would be read once)
    anchors = [json.dumps({"event": {"category": "process"}, "part": n}).encode() for n in range(8)]
    bounds = [0, *sorted(min(cut, len(lines)) for cut in cuts), len(lines)]
    parts = [lines[a:b] for a, b in itertools.pairwise(bounds)]
    reference = reference_hunt(
        [*docs, *[{"event": {"category": "process"}}] * len(parts)],
        now_ms=None if latest else NOW_MS,
        window_ms=2 * HOUR,
        threshold=90,
    )
    spec = HuntSpec(
        now="latest" if latest else datetime.fromtimestamp(NOW_MS / 1000, tz=UTC),
        window=timedelta(hours=2),
        threshold=90,
    )
    with tempfile.TemporaryDirectory() as scratch:
        paths = []
        for number, part in enumerate(parts):
            body = b"\n".join([*part, anchors[number]]) + b"\n"
            packed = gzipped[number]
            paths.append(Path(scratch) / f"{number:02}.ndjson{'.gz' if packed else ''}")
            paths[-1].write_bytes(gzip.compress(body) if packed else body)
        result = run_hunt([scratch], spec)
        alone = [] if latest else [run_hunt([str(path)], spec).files[0] for path in paths]
    assert keyed(rows_of(result)) == keyed(reference)
    assert result.counts.records == len(lines) + len(parts)
    for report, own in zip(result.files, alone, strict=not latest):
        assert (report.records, report.malformed, report.positions, report.reader) == (
            own.records,
            own.malformed,
            own.positions,
            own.reader,
        )


def shaped(line: bytes) -> bool:
    text = line.strip()
    return text.startswith(b"{") and text.endswith(b"}")


def _edit(text: str, edits: list[tuple[int, str]]) -> str:
    for place, char in edits:
        where = place % (len(text) + 1)
        text = text[:where] + char + text[where + (1 if char else 0) :]
    return text


_CANONICAL_LIKE = st.builds(
    _edit,
    st.sampled_from(
        [
            "2026-11-18T16:00:00.0000001Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59.999999999Z",
            "9999-12-31T23:59:59.900Z",
            "2026-11-18T16:00:00.5Z",
            "1969-12-31T23:59:59.9Z",
            "2026-11-18T16:00:60Z",
        ]
    ),
    st.lists(
        st.tuples(st.integers(0, 30), st.sampled_from(["", *"0123456789-T:.Z+ x٣"])),
        max_size=2,
    ),
)


@pytest.mark.slow
@given(st.lists(_CANONICAL_LIKE, min_size=1, max_size=50))
@settings(max_examples=300, deadline=None)
def test_the_canonical_timestamp_parse_agrees_with_the_general_one(texts: list[str]) -> None:
    """The readers judge undecoded lines by :func:`canonical_ms`; wherever it gives a
    value, that value must be the general rule's."""
    frame = pl.DataFrame({"t": texts})
    fast = frame.select(canonical_ms(pl.col("t"))).to_series()
    general = frame.select(timestamp_text_ms(pl.col("t"))).to_series()
    known = fast.is_not_null()
    assert fast.filter(known).to_list() == general.filter(known).to_list()
    # the line scan reads the value's first 31 bytes, closing quote and what follows
    heads = pl.DataFrame(
        {"t": [(t + '","x":1}').encode()[:31].decode(errors="ignore") for t in texts]}
    )
    quoted = heads.select(canonical_ms(pl.col("t"), quoted=True)).to_series()
    assert quoted.to_list() == [
        v if len(t.encode()) <= 30 else None for t, v in zip(texts, fast.to_list(), strict=True)
    ]
    assert fast.filter(pl.Series(texts) == "9999-12-31T23:59:59.900Z").to_list() == (
        [253402300799900] * texts.count("9999-12-31T23:59:59.900Z")
    )


def test_the_canonical_parse_reads_what_it_can_and_leaves_the_rest() -> None:
    """No fraction, or one of three digits or more: read (first three digits). A shorter
    fraction, a year before 1970 or any other shape: null, for the general rule."""
    texts = [
        "2026-11-18T16:00:00Z",
        "2026-11-18T16:00:00.123Z",
        "2026-11-18T16:00:00.0823822Z",
        "2026-11-18T16:00:00.999999999Z",
        "2026-11-18T16:00:00.5Z",
        "2026-11-18T16:00:00.12Z",
        "1969-12-31T23:59:59.999Z",
        "2026-11-18T16:00:00.1234567890Z",
        "2026-11-18 16:00:00.123Z",
        None,
    ]
    base = 1795017600000
    got = pl.DataFrame({"t": texts}).select(canonical_ms(pl.col("t"))).to_series().to_list()
    assert got == [base, base + 123, base + 82, base + 999, None, None, None, None, None, None]
