"""Fuzzing: random byte damage to exports, and the invariants that must survive it.

For any damage: no exception but the tool's own (a clear error); every record accounted
for (``records = malformed + valid``, and the record count is the count of non-blank
lines); the counts of the steps never grow; and the flagged rows are exactly those of the
reference model over the lines that are still valid documents, so damage costs the lines
it hits and nothing else.

Bounded and derandomized in CI. For a longer run:
``EGRESS_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import tempfile
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egress_offline import EgressError, HuntSpec, run_hunt
from tests.helpers import keyed, rows_of, zstd_compress
from tests.reference import reference_hunt
from tests.test_properties import HOUR, NOW_MS, documents

FUZZ = settings(
    max_examples=int(os.environ.get("EGRESS_FUZZ_EXAMPLES", "40")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SPEC = HuntSpec(
    now=datetime.fromtimestamp(NOW_MS / 1000, tz=UTC), window=timedelta(hours=2), threshold=90
)
# Unicode White_Space, which is what makes a line blank (Polars' regex \s)
WHITE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    chr(c) for c in range(0x2000, 0x200B)
)
NOISE = st.one_of(
    st.binary(min_size=1, max_size=12),
    st.sampled_from(
        [b"\n", b"\x00\x00\x00", b"\xff\xfe", b'"', b"{", b"}", b"\\u00", b"\r\n", b"\xef\xbb\xbf"]
    ),
)
damage_ops = st.lists(
    st.one_of(
        st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 255)),
        st.tuples(st.just("insert"), st.floats(0, 1), NOISE),
        st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 40)),
        st.tuples(st.just("truncate"), st.floats(0, 1), st.none()),
    ),
    min_size=1,
    max_size=6,
)


def damaged(body: bytes, ops: list[tuple[str, float, Any]]) -> bytes:
    data = bytearray(body)
    for kind, where, arg in ops:
        at = int(where * len(data))
        if kind == "flip" and data:
            data[min(at, len(data) - 1)] = arg
        elif kind == "insert":
            data[at:at] = arg
        elif kind == "delete":
            del data[at : at + arg]
        elif kind == "truncate":
            del data[max(1, at) :]
    return bytes(data)


def _first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


def _reject(token: str) -> Any:
    raise ValueError(token)


def _as_indexed(value: Any) -> Any:
    """Strings as Elasticsearch indexes them: a lone surrogate (a ``\\ud800`` escape
    with no pair) becomes U+FFFD, as Lucene writes it."""
    if isinstance(value, str):
        return re.sub("[\ud800-\udfff]", "\ufffd", value)
    if isinstance(value, dict):
        return {key: _as_indexed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_indexed(item) for item in value]
    return value


def surviving(text: bytes) -> tuple[list[dict[str, Any]], int]:
    """The documents a line-by-line reader finds in ``text`` by the rules of the cluster's
    JSON (first key wins, no NaN), and the number of non-blank lines."""
    docs: list[dict[str, Any]] = []
    records = 0
    for raw in text.split(b"\n"):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            records += 1
            continue
        if all(ch in WHITE for ch in line):
            continue
        records += 1
        try:
            doc = json.loads(
                line.removeprefix("\ufeff"), object_pairs_hook=_first_wins, parse_constant=_reject
            )
        except (ValueError, RecursionError):
            continue
        if isinstance(doc, dict):
            docs.append(_as_indexed(doc))
    return docs, records


def check(path: Path, text: bytes, *, exact_records: bool) -> None:
    try:
        result = run_hunt([str(path)], SPEC)
    except EgressError:
        return  # a clear, typed error (for example: damage made the file unrecognisable)
    counts = result.counts
    assert counts.records == counts.malformed + counts.valid
    assert counts.valid >= counts.time_window >= counts.event_match >= counts.public_destination
    assert counts.groups >= counts.flagged == result.rows.height
    docs, records = surviving(text)
    if exact_records:
        assert counts.records == records
    if result.files[0].format != "ndjson":
        return  # damage turned it into something else, read as a whole document
    reference = reference_hunt(docs, now_ms=NOW_MS, window_ms=2 * HOUR, threshold=90)
    assert keyed(rows_of(result)) == keyed(reference)


@pytest.mark.slow
@FUZZ
@given(docs=st.lists(documents(), min_size=1, max_size=25), ops=damage_ops)
def test_random_damage_to_ndjson(docs: list[dict[str, Any]], ops: list[Any]) -> None:
    anchor = json.dumps({"event": {"category": "process"}}).encode()
    body = anchor + b"\n" + b"".join(json.dumps(d).encode() + b"\n" for d in docs)
    text = damaged(body, ops)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "damaged.ndjson"
        path.write_bytes(text)
        check(path, text, exact_records=True)


@pytest.mark.slow
@FUZZ
@given(docs=st.lists(documents(), min_size=1, max_size=25), ops=damage_ops)
def test_random_damage_to_a_gzip_stream(docs: list[dict[str, Any]], ops: list[Any]) -> None:
    anchor = json.dumps({"event": {"category": "process"}}).encode()
    body = anchor + b"\n" + b"".join(json.dumps(d).encode() + b"\n" for d in docs)
    packed = damaged(gzip.compress(body), ops)
    decoder = zlib.decompressobj(wbits=31)
    try:
        text = decoder.decompress(packed)  # what can be recovered, up to the damage
    except zlib.error:
        text = None  # damage inside the stream: where the reader stops is its own choice
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "damaged.ndjson.gz"
        path.write_bytes(packed)
        if text is None:
            try:
                result = run_hunt([str(path)], SPEC)
            except EgressError:
                return
            counts = result.counts
            assert counts.records == counts.malformed + counts.valid
            return
        check(path, text, exact_records=False)


KEYS = st.sampled_from(
    [
        "@timestamp", "host", "os", "family", "host.os.family", "event", "category", "action",
        "event.action", "destination", "ip", "address", "process", "entity_id", "executable",
        "source", "bytes", "source.bytes", "_source", "user", "name", "x", "",
    ]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["windows", "network", "disconnect_received", "8.8.8.8", "E1", "120"]),
    st.text(max_size=8),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=25,
)


@pytest.mark.slow
@FUZZ
@given(values=st.lists(st.one_of(st.dictionaries(KEYS, JSON_VALUES, max_size=8), JSON_VALUES),
                       min_size=1, max_size=20))  # fmt: skip
def test_random_documents(values: list[Any]) -> None:
    anchor = json.dumps({"event": {"category": "process"}}).encode()
    body = anchor + b"\n" + b"".join(json.dumps(v).encode() + b"\n" for v in values)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "random.ndjson"
        path.write_bytes(body)
        check(path, body, exact_records=True)


# ------------------------------------------------------------ bombs and huge lines

LIMITS = {"FAST_LINE": 2_048, "LINE_LIMIT": 8_192, "INFLATE_CAP": 4_096}


@pytest.mark.slow
@FUZZ
@pytest.mark.local_engine  # lowers the line limits in this process only
@given(
    docs=st.lists(documents(), min_size=1, max_size=25),
    where=st.floats(0, 1),
    length=st.integers(1_000, 40_000),
    ends=st.booleans(),
    compression=st.sampled_from(["none", "gzip", "zstd"]),
)
def test_a_huge_line_anywhere(docs: list[dict[str, Any]], where: float, length: int, ends: bool,
                              compression: str) -> None:  # fmt: skip
    """A line of ``length`` bytes among the documents (at the end: possibly never ended),
    with the line limits lowered to a few KiB: a line over the limit is one malformed
    record, skipped unread; one under it is read; everything else is read as without it."""
    lines = [json.dumps(d).encode() for d in docs]
    huge = b'{"message":"' + b"A" * length + b'"}'
    at = int(where * len(lines))
    lines.insert(at, huge)
    body = b"\n".join(lines) + (b"\n" if ends or at < len(lines) - 1 else b"")
    packed = {"none": body, "gzip": gzip.compress(body, 1), "zstd": zstd_compress(body)}
    with tempfile.TemporaryDirectory() as scratch, pytest.MonkeyPatch.context() as patch:
        for name, value in LIMITS.items():
            patch.setattr(f"egress_offline.readers.tuning.{name}", value)
        path = (
            Path(scratch)
            / f"huge.ndjson{ {'none': '', 'gzip': '.gz', 'zstd': '.zst'}[compression] }"
        )
        path.write_bytes(packed[compression])
        result = run_hunt([str(path)], SPEC)
    over = len(huge) > LIMITS["LINE_LIMIT"]
    assert result.counts.records == len(docs) + 1
    assert result.counts.malformed == int(over)
    if over:
        assert "line longer than 8,192 bytes" in " ".join(result.files[0].positions)
    reference = reference_hunt([_as_indexed(d) for d in docs], now_ms=NOW_MS,
                               window_ms=2 * HOUR, threshold=90)  # fmt: skip
    assert keyed(rows_of(result)) == keyed(reference)


@pytest.mark.slow
@pytest.mark.local_engine  # caps the decompression calls in this process only
@FUZZ
@given(
    docs=st.lists(documents(), min_size=1, max_size=8),
    copies=st.integers(1, 400),
    compression=st.sampled_from(["gzip", "zstd"]),
)
def test_a_bomb_of_valid_events(docs: list[dict[str, Any]], copies: int, compression: str) -> None:
    """The same documents over and over, compressed to almost nothing, read with every
    decompression call capped at 4 KiB: the rows are the reference's over every copy."""
    body = b"".join(json.dumps(d).encode() + b"\n" for d in docs) * copies
    packed = gzip.compress(body, 9) if compression == "gzip" else zstd_compress(body)
    with tempfile.TemporaryDirectory() as scratch, pytest.MonkeyPatch.context() as patch:
        for name, value in LIMITS.items():
            patch.setattr(f"egress_offline.readers.tuning.{name}", value)
        path = Path(scratch) / ("bomb.ndjson.gz" if compression == "gzip" else "bomb.ndjson.zst")
        path.write_bytes(packed)
        result = run_hunt([str(path)], SPEC)
    assert result.counts.records == len(docs) * copies
    reference = reference_hunt([_as_indexed(d) for d in docs] * copies, now_ms=NOW_MS,
                               window_ms=2 * HOUR, threshold=90)  # fmt: skip
    assert keyed(rows_of(result)) == keyed(reference)
