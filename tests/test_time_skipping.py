"""Lines older than the window are skipped before decoding; nothing in it may be lost.

Every case is also run with ``strict=True``, which decodes every line and skips nothing by
time, and the two must agree on the rows and on every count.
"""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from egress_offline import HuntSpec, run_hunt
from egress_offline.errors import DataError
from egress_offline.readers import POS, batching, open_inputs, parquet_screen, parquet_spans, tuning
from egress_offline.readers.parquet import kept_rows
from egress_offline.readers.timefloor import TimeFloor
from tests.helpers import NOW, GiB, compact, event, ndjson

HOUR = timedelta(hours=1)


def stamp(moment: Any) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


#: the random tests' settings: each example writes files under one tmp_path_factory
_RANDOM = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def both(path: Path, **spec: Any) -> Any:
    """The fast result, after checking that it equals the strict one in rows and counts."""
    fast = run_hunt([str(path)], HuntSpec(**spec))
    strict = run_hunt([str(path)], HuntSpec(strict=True, **spec))
    assert fast.rows.to_dicts() == strict.rows.to_dicts()
    assert asdict(fast.counts) == asdict(strict.counts)
    assert (fast.now, fast.data_first, fast.data_last) == (
        strict.now,
        strict.data_first,
        strict.data_last,
    )
    return fast


def entities(result: Any) -> list[str]:
    return [row["process.entity_id"] for row in result.rows.to_dicts()]


def write(tmp_path: Path, docs: list[Any], name: str = "x.ndjson") -> Path:
    path = tmp_path / name
    path.write_bytes(ndjson(docs))
    return path


def test_a_nested_old_timestamp_key_before_the_real_one_does_not_hide_it(
    tmp_path: Path,
) -> None:
    doc = {"meta": {"@timestamp": "2001-01-01T00:00:00.0000000Z"}, **event()}
    path = tmp_path / "x.ndjson"
    path.write_text(json.dumps(doc) + "\n")
    assert entities(both(path, now=NOW)) == ["E1"]
    assert entities(both(path)) == ["E1"]  # --now latest


def test_a_record_whose_only_timestamp_is_nested_is_outside_the_window(
    tmp_path: Path,
) -> None:
    doc = event(**{"@timestamp": None})
    del doc["@timestamp"]
    docs = [
        {"meta": {"@timestamp": stamp(NOW - HOUR)}, **doc},  # in the window, but not its own
        event(**{"process.entity_id": "E2"}),
    ]
    result = both(write(tmp_path, docs), now=NOW)
    assert entities(result) == ["E2"]


@pytest.mark.parametrize("gzipped", [False, True])
@pytest.mark.parametrize("order", ["ascending", "descending"])
def test_latest_anchor_in_either_time_order(tmp_path: Path, order: str, gzipped: bool) -> None:
    docs = [
        event(
            **{
                "@timestamp": stamp(NOW - i * HOUR),
                "process.entity_id": f"E{i}",
                "source.bytes": GiB,
            }
        )
        for i in range(48)
    ]
    if order == "ascending":
        docs.reverse()
    path = write(tmp_path, docs)
    if gzipped:  # no end to sample: lines that may match wait until they are old
        packed = tmp_path / "x.ndjson.gz"
        packed.write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
        path = packed
    result = both(path)  # --now latest: NOW itself is the newest event
    assert sorted(entities(result)) == sorted(f"E{i}" for i in range(8))
    assert result.counts.time_window == 8


@pytest.mark.parametrize("lists", [False, True], ids=["plain", "text-lists"])
@pytest.mark.parametrize("order", ["ascending", "descending"])
def test_latest_over_parquet_is_seeded_from_its_end_row_groups(
    tmp_path: Path, order: str, lists: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--now latest over Parquet: the first and last row groups give a lower bound of the
    anchor before reading, so old rows are skipped from the start (a rising bound alone
    skips nothing in a file in time order)."""
    docs = [
        event(**{"@timestamp": stamp(NOW - i * HOUR), "process.entity_id": f"E{i}"})
        for i in range(48)
    ]
    if order == "ascending":
        docs.reverse()
    frame = pl.read_ndjson(write(tmp_path, docs))
    if lists:  # every value in a one-element list, as some exports write them
        frame = frame.with_columns(pl.concat_list("@timestamp").alias("@timestamp"))
    path = tmp_path / "x.parquet"
    frame.write_parquet(path, row_group_size=5)
    seen: list[int | None] = []
    real = parquet_screen.latest_sampled
    monkeypatch.setattr(
        parquet_screen, "latest_sampled", lambda *args: seen.append(real(*args)) or seen[-1]
    )
    result = both(path)
    assert sorted(entities(result)) == sorted(f"E{i}" for i in range(8))
    assert result.counts.time_window == 8
    assert seen == [int(NOW.timestamp() * 1000)]


def test_a_nested_timestamp_in_a_line_that_cannot_match(tmp_path: Path) -> None:
    """With a fixed anchor it changes nothing. With --now latest, a line that is not
    decoded gives its first @timestamp key, wherever it is, to the anchor: a documented
    limit (the README's "Doubtful" list) that --strict removes."""
    fake = {"note": {"@timestamp": stamp(NOW + 100 * HOUR)}, "message": "no timestamp"}
    docs = [event(**{"@timestamp": stamp(NOW - i * HOUR)}) for i in range(10, -1, -1)]
    path = write(tmp_path, [*docs, fake])
    fast = run_hunt([str(path)], HuntSpec(now=NOW))
    strict = run_hunt([str(path)], HuntSpec(now=NOW, strict=True))
    assert fast.rows.to_dicts() == strict.rows.to_dicts()
    assert fast.counts.event_match == strict.counts.event_match == 8
    # the count of records in the window reads the line's timestamp by pattern too
    assert (fast.counts.time_window, strict.counts.time_window) == (9, 8)
    assert run_hunt([str(path)], HuntSpec(strict=True)).now == NOW
    assert run_hunt([str(path)], HuntSpec()).now == NOW + 100 * HOUR


@pytest.mark.parametrize("reading", ["plain", "gzip"])
@pytest.mark.parametrize("nested", [-100, 100], ids=["older", "newer"])
@pytest.mark.parametrize("compact", [True, False], ids=["compact", "spaced"])
def test_a_nested_timestamp_key_before_the_records_own_in_a_line_that_cannot_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reading: str, nested: int, compact: bool
) -> None:
    """A line that is not decoded gives a timestamp read from its text only when it holds
    one ``"@timestamp"`` key. With several, the first may be nested in another object, so
    the line is decoded for its own: the anchor, the count in the window and the time
    range stay exact (a newer nested key first used to move the anchor and lose rows)."""
    doc = event(**{"event.action": "connection_attempted", "process.entity_id": "X"})
    other = {"meta": {"@timestamp": stamp(NOW + nested * HOUR)}, **doc}
    other["@timestamp"] = stamp(NOW - HOUR)
    docs = [event(**{"@timestamp": stamp(NOW - i * HOUR)}) for i in range(10, -1, -1)]
    # at both ends, where an uncompressed file is sampled, and in the middle
    lines = [other, *docs[:5], other, *docs[5:], other]
    path = tmp_path / "x.ndjson"
    # compact, as Endpoint writes it, its timestamps are read from the text without a pattern
    separators = (",", ":") if compact else (", ", ": ")
    path.write_text("".join(json.dumps(doc, separators=separators) + "\n" for doc in lines))
    if reading != "plain":
        packed = tmp_path / "x.ndjson.gz"
        packed.write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
        path = packed
    for now in (None, NOW):
        result = both(path, **({} if now is None else {"now": now}))
        assert entities(result) == ["E1"]
        assert (result.now, result.data_first, result.data_last) == (
            NOW,
            NOW - 10 * HOUR,
            NOW,
        )
        assert (result.counts.records, result.counts.time_window) == (14, 11)


def test_a_line_with_several_timestamp_keys_that_is_not_json_is_malformed(
    tmp_path: Path,
) -> None:
    """Such a line is decoded for its timestamp, so damage inside it is found, as
    ``--strict`` finds it."""
    broken = '{"meta":{"@timestamp":"2024-05-01T10:00:00Z"},"@timestamp":"2024-05-01T10:00:00Z",}'
    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson([event()]) + broken.encode() + b"\n")
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert (result.counts.records, result.counts.malformed) == (2, 1)
    assert entities(result) == ["E1"]
    (report,) = result.files
    assert report.positions == [
        "line 2: not valid JSON (Expecting property name enclosed in double quotes)"
    ]
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        run_hunt([str(path)], HuntSpec(now=NOW, strict=True))


def test_the_window_start_is_exclusive_to_the_millisecond(tmp_path: Path) -> None:
    cutoff = NOW - 8 * HOUR
    docs = [
        event(**{"@timestamp": "2024-05-01T04:00:00.0000000Z", "process.entity_id": "at"}),
        event(**{"@timestamp": "2024-05-01T04:00:00.0009999Z", "process.entity_id": "same-ms"}),
        event(**{"@timestamp": "2024-05-01T04:00:00.0010000Z", "process.entity_id": "next-ms"}),
    ]
    assert stamp(cutoff).startswith("2024-05-01T04:00:00")
    assert entities(both(write(tmp_path, docs), now=NOW)) == ["next-ms"]


def test_records_in_the_window_are_counted_whatever_they_are(tmp_path: Path) -> None:
    docs = [
        event(),
        event(**{"host.os.family": "linux"}),  # in the window, another OS
        event(**{"event.action": "connection_attempted"}),
        event(**{"@timestamp": "2024-04-30T01:00:00Z"}),  # outside
        {"@timestamp": "2024-05-01T10:00:00Z", "message": "not a network event"},
    ]
    result = both(write(tmp_path, docs), now=NOW)
    assert (result.counts.time_window, result.counts.event_match) == (4, 1)


@pytest.mark.parametrize("gzipped", [False, True])
@pytest.mark.parametrize("order", ["ascending", "descending"])
def test_a_directory_in_time_order_decodes_only_its_window_under_latest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, order: str, gzipped: bool
) -> None:
    """--now latest over many files: the ends of every file (the start of a compressed
    one) are sampled before any is read, so the early files' old lines are skipped too
    (each file alone looks new when it is read, and was decoded whole)."""
    hours = list(range(47, -1, -1))
    if order == "descending":
        hours.reverse()
    for n, i in enumerate(hours):
        doc = event(**{"@timestamp": stamp(NOW - i * HOUR), "process.entity_id": f"E{i}"})
        body = compact([doc, doc])
        name = f"part-{n:02d}.ndjson" + (".gz" if gzipped else "")
        (tmp_path / name).write_bytes(gzip.compress(body) if gzipped else body)
    result = both(tmp_path)
    assert sorted(entities(result)) == sorted(f"E{i}" for i in range(8))
    decoded: list[int] = []
    real = batching.decode_lines
    monkeypatch.setattr(
        batching,
        "decode_lines",
        lambda lines, *args: decoded.append(lines.height) or real(lines, *args),
    )
    run_hunt([str(tmp_path)], HuntSpec())
    assert sum(decoded) == 16  # the 8 hours in the window, two events each


def test_a_sampled_line_that_is_not_utf8_does_not_bound_the_anchor(tmp_path: Path) -> None:
    """Every file's ends are sampled before any is read; a line there that the careful
    reader will count as malformed must not raise the bound for the other files."""
    docs = [event(**{"@timestamp": stamp(NOW - i * HOUR)}) for i in range(10, -1, -1)]
    (tmp_path / "a.ndjson").write_bytes(compact(docs))
    future = b'{"@timestamp":"' + stamp(NOW + 100 * HOUR).encode() + b'","note":"\xff"}\n'
    (tmp_path / "b.ndjson").write_bytes(compact(docs[:1]) + future)
    result = run_hunt([str(tmp_path)], HuntSpec())  # --strict stops at that line
    assert result.now == NOW
    assert entities(result) == ["E1"]
    assert result.rows["total_bytes_out"].to_list() == [8 * GiB]
    assert (result.counts.malformed, result.counts.time_window) == (1, 8)


@pytest.mark.parametrize("name", ["gone.ndjson", "gone.ndjson.gz"])
def test_sampling_a_file_that_went_away_leaves_the_error_to_the_reading(
    tmp_path: Path, name: str
) -> None:
    """The ends of every file are sampled before any is read; a file that can no longer
    be read gives no bound there, and the reading that follows reports it."""
    path = tmp_path / name
    body = compact([event()])
    path.write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    with open_inputs([str(path)]) as inputs:
        path.unlink()
        floor = TimeFloor(window_ms=8 * 3_600_000)
        floor.sample(inputs.files)
    assert floor.latest_ms is None


def test_files_anchor_latest_together(tmp_path: Path) -> None:
    old = write(
        tmp_path,
        [event(**{"@timestamp": stamp(NOW - 30 * HOUR), "process.entity_id": "old"})],
        "a.ndjson",
    )
    new = write(tmp_path, [event(**{"process.entity_id": "new"})], "b.ndjson")
    for paths in ([old, new], [new, old]):
        result = run_hunt([str(p) for p in paths], HuntSpec())
        assert entities(result) == ["new"]
        assert result.counts.time_window == 1


@pytest.mark.parametrize("kind", ["datetime", "string", "epoch-ms"])
def test_parquet_rows_are_skipped_by_time_exactly(tmp_path: Path, kind: str) -> None:
    moments = [NOW - i * HOUR for i in range(12)] + [NOW - 8 * HOUR]
    frame = pl.DataFrame(
        {
            "@timestamp": moments,
            "host.os.family": ["windows"] * len(moments),
            "event.category": [["network"]] * len(moments),
            "event.action": ["disconnect_received"] * len(moments),
            "destination.ip": ["8.8.8.8"] * len(moments),
            "destination.address": ["8.8.8.8"] * len(moments),
            "process.entity_id": [f"E{i}" for i in range(len(moments))],
            "process.executable": ["x.exe"] * len(moments),
            "source.bytes": [GiB] * len(moments),
        }
    )
    column = pl.col("@timestamp")
    if kind == "string":
        frame = frame.with_columns(column.dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ"))
    elif kind == "epoch-ms":
        frame = frame.with_columns(column.dt.epoch("ms"))
    path = tmp_path / "x.parquet"
    frame.write_parquet(path)
    for spec in ({"now": NOW}, {}):
        result = both(path, **spec)
        assert sorted(entities(result)) == sorted(f"E{i}" for i in range(8))
        assert result.counts.time_window == 8


@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
def test_canonical_looking_timestamps_are_judged_by_the_general_rule(
    tmp_path: Path, fmt: str
) -> None:
    """Year 9999 is after ``now() - 8 hours``, so in the window (a nanosecond parse once
    overflowed it into 1816 and skipped the line); a one-digit month is no date at all.
    A fraction of three digits or more is read by the canonical parse, a shorter one by
    the general rule."""
    docs = [
        event(**{"@timestamp": "9999-12-31T23:59:59.9Z", "process.entity_id": "future"}),
        event(**{"@timestamp": "9999-12-31T23:59:59.123Z", "process.entity_id": "future-ms"}),
        event(**{"@timestamp": "2024-5-01T10:00:00.50Z", "process.entity_id": "no-date"}),
        event(**{"@timestamp": "2024-05-01T10:00:00Z", "process.entity_id": "plain"}),
    ]
    path = write(tmp_path, docs)
    if fmt == "parquet":
        parquet = tmp_path / "x.parquet"
        pl.read_ndjson(path).write_parquet(parquet)
        path = parquet
    result = both(path, now=NOW)
    assert sorted(entities(result)) == ["future", "future-ms", "plain"]
    assert result.counts.time_window == 3


@pytest.mark.parametrize("order", ["oldest-first", "newest-first"])
def test_latest_over_a_compressed_file_in_time_order(
    tmp_path: Path, order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--now latest over a gzipped export in time order, either way, read in several
    batches: the anchor's first bound comes from the file's ends (its last lines from
    the text check's pass), so old lines are skipped from the start, and the rows and
    counts equal --strict's."""
    monkeypatch.setattr("egress_offline.readers.ndjson.batch_rows", lambda _file, _text: 1000)
    docs = []
    for i in range(12_000, -1, -1):  # 48 hours, one event every 14.4 s, oldest first
        moment = NOW - i * 14_400 * timedelta(milliseconds=1)
        family = "windows" if i % 2 else "debian"  # the others raise the floor
        docs.append(
            event(
                **{
                    "@timestamp": stamp(moment),
                    "host.os.family": family,
                    "process.entity_id": f"E{i % 7}",
                    "source.bytes": GiB // 128,
                }
            )
        )
    if order == "newest-first":
        docs.reverse()
    path = tmp_path / "x.ndjson.gz"
    compact = b"".join(json.dumps(d, separators=(",", ":")).encode() + b"\n" for d in docs)
    path.write_bytes(gzip.compress(compact))  # as exports are written: no spaces
    result = both(path)
    assert result.files[0].reader == "fast"
    assert result.counts.time_window == 2000
    assert result.counts.event_match == 1000
    assert sorted(entities(result)) == [f"E{i}" for i in range(7)]


@pytest.mark.slow
@given(
    st.lists(
        st.tuples(
            st.integers(0, 48 * 60),  # minutes before NOW
            st.sampled_from(["windows", "debian"]),
            st.sampled_from(["disconnect_received", "connection_attempted"]),
            st.sampled_from(["E1", "E2", "E3"]),
            st.sampled_from(["compact", "spaced", "late-key"]),
        ),
        max_size=60,
    ),
    st.booleans(),
)
@_RANDOM
@pytest.mark.local_engine  # reads in batches of 8 lines in this process only
def test_latest_over_gzip_agrees_with_strict_at_random(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[int, str, str, str, str]],
    ordered: bool,
) -> None:
    """Random events, in time order or not, some written so that the line scan cannot
    read their @timestamp; read in batches of 8 lines: the rows and counts equal
    --strict's."""
    if ordered:
        rows = sorted(rows, key=lambda r: -r[0])
    lines = []
    for minutes, family, action, entity, style in rows:
        doc = event(
            **{
                "@timestamp": stamp(NOW - timedelta(minutes=minutes)),
                "host.os.family": family,
                "event.action": action,
                "process.entity_id": entity,
                "source.bytes": GiB // 4,
            }
        )
        if style == "late-key":  # the key after the others: not where the scan looks first
            doc = {**{k: v for k, v in doc.items() if k != "@timestamp"}, "x": doc["@timestamp"]}
            doc["@timestamp"] = doc.pop("x")
        text = json.dumps(doc) if style == "spaced" else json.dumps(doc, separators=(",", ":"))
        lines.append(text.encode() + b"\n")
    directory = tmp_path_factory.mktemp("latest")
    path = directory / "x.ndjson.gz"
    path.write_bytes(gzip.compress(b"".join(lines)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("egress_offline.readers.ndjson.batch_rows", lambda _file, _text: 8)
        both(path)


def test_an_os_family_with_pattern_characters_is_taken_literally(tmp_path: Path) -> None:
    """The prefilter looks for the families as one pattern: "win+dows" must find the
    family written "win+dows" (a pattern would have found "winndows" instead)."""
    docs = [
        event(**{"host.os.family": "win+dows", "process.entity_id": "literal"}),
        event(**{"host.os.family": "winndows", "process.entity_id": "pattern"}),
    ]
    result = both(write(tmp_path, docs), now=NOW, os_families=("win+dows", "(x"))
    assert entities(result) == ["literal"]
    assert result.files[0].reader == "fast"  # not the careful reader after a bad pattern


@pytest.mark.parametrize("decoded", [1, 2, 64])
@pytest.mark.parametrize("at_once", [1, 5, 8192])
def test_the_ends_of_many_files_are_decoded_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at_once: int, decoded: int
) -> None:
    """The lines sampled at the ends of many files are judged in one query, some
    thousands at a time, and decoded newest first, a few at a time, until one counts.
    Whatever the grouping, the bound is the newest timestamp that a line scan would read
    there; a damaged line, or a nested key, in one file's sample gives no bound (here
    they are the newest by their text), and leaves the other lines theirs."""
    monkeypatch.setattr(tuning, "SAMPLED_AT_ONCE", at_once)
    monkeypatch.setattr(tuning, "DECODED_NEWEST", decoded)
    for number in range(12):
        docs = [event(**{"@timestamp": stamp(NOW - (40 - number - i) * HOUR)}) for i in range(3)]
        (tmp_path / f"{number:02}.ndjson").write_bytes(compact(docs))
    broken = b'{"@timestamp":"' + stamp(NOW + 50 * HOUR).encode() + b'","x":\n'
    nested = compact([{"a": {"@timestamp": stamp(NOW + 60 * HOUR)}, **event()}])
    (tmp_path / "03.ndjson").write_bytes((tmp_path / "03.ndjson").read_bytes() + broken)
    (tmp_path / "07.ndjson").write_bytes((tmp_path / "07.ndjson").read_bytes() + nested)
    (tmp_path / "12.ndjson.gz").write_bytes(
        gzip.compress(compact([event(**{"@timestamp": stamp(NOW - 20 * HOUR)})]))
    )
    newest = NOW - 20 * HOUR
    with open_inputs([str(tmp_path)]) as inputs:
        floor = TimeFloor(window_ms=8 * 3_600_000)
        told: list[float] = []
        floor.sample(inputs.files, tell=lambda fraction, _size: told.append(fraction))
    assert floor.latest_ms == int(newest.timestamp() * 1000)
    assert len(told) == 13 and told[-1] == 1.0


@pytest.mark.parametrize("anchor", ["fixed", "latest"])
def test_parquet_row_groups_older_than_the_window_are_judged_by_their_timestamps_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anchor: str
) -> None:
    """A row group whose rows are all older than the window is not read further than its
    timestamps; one with a single row in the window is judged whole. A timestamp that
    looks old but is not (its offset), or none at all, is judged by the general rule."""
    docs = [
        event(**{"@timestamp": stamp(NOW - (23 - i) * 2 * HOUR), "process.entity_id": f"E{i}"})
        for i in range(24)
    ]  # in time order, every 2 hours up to NOW: row groups of 4 rows, the last in the window
    docs[4]["@timestamp"] = (NOW - 16 * HOUR).strftime("%Y-%m-%dT%H:%M:%S-12:00")  # NOW - 4h
    docs[8]["@timestamp"] = None
    path = tmp_path / "x.parquet"
    pl.read_ndjson(write(tmp_path, docs)).write_parquet(path, row_group_size=4)
    monkeypatch.setattr(tuning, "STRETCH_ROWS", 4)  # each row group a stretch of its own
    reads: list[tuple[int, tuple[str, ...]]] = []
    real = pq.ParquetFile.iter_batches

    def spy(self: Any, *args: Any, row_groups: Any = None, columns: Any = None, **kw: Any) -> Any:
        reads.extend((group, tuple(columns)) for group in row_groups or ())
        return real(self, *args, row_groups=row_groups, columns=columns, **kw)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    spec = {"now": NOW} if anchor == "fixed" else {}
    result = both(path, **spec)
    reads.clear()  # --strict reads every row: only the screening's reads count here
    run_hunt([str(path)], HuntSpec(**spec))
    assert sorted(entities(result)) == ["E20", "E21", "E22", "E23", "E4"]
    assert result.counts.time_window == 5
    assert (result.now, result.data_first, result.data_last) == (NOW, NOW - 46 * HOUR, NOW)
    read_further = {group for group, columns in reads if "event.action" in columns}
    # with --now latest the ends give a first anchor from their timestamps alone too
    assert read_further == {1, 5}


def test_a_row_group_whose_statistics_say_it_is_recent_is_screened_not_spanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's statistics only hint that a row group is in the window: its span is
    then not found (it would hold nothing back), and its rows are screened. Texts that
    sort as recent but are old (``+09:00``: nine hours earlier) lose no row and gain
    none; a row group of old canonical texts is still passed over by its span."""
    docs = [
        event(**{"@timestamp": stamp(NOW - (11 - i) * 2 * HOUR), "process.entity_id": f"E{i}"})
        for i in range(12)
    ]  # every 2 hours up to NOW, 4 rows a row group: the last group in the window
    for i in range(4, 8):  # the middle group: texts that sort 7 to 4 hours old, read 16 to 13
        written = NOW - (11 - i) * HOUR
        docs[i]["@timestamp"] = written.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+09:00"
    path = tmp_path / "x.parquet"
    pl.read_ndjson(write(tmp_path, docs)).write_parquet(path, row_group_size=4)
    monkeypatch.setattr(tuning, "STRETCH_ROWS", 4)  # each row group a stretch of its own
    stated = [pq.ParquetFile(path).metadata.row_group(g).column(0).statistics.max for g in (1, 2)]
    assert all(text >= stamp(NOW - 8 * HOUR)[:19] for text in stated)
    spanned: list[int] = []
    real = parquet_spans.stretch_span
    monkeypatch.setattr(parquet_spans, "stretch_span",
                        lambda parquet, stretch, timed: spanned.extend(stretch) or real(parquet, stretch, timed))  # fmt: skip
    result = both(path, now=NOW)
    assert sorted(entities(result)) == ["E10", "E11", "E8", "E9"]
    assert result.counts.time_window == 4
    spanned.clear()
    run_hunt([str(path)], HuntSpec(now=NOW))
    assert spanned == [0]  # the old group's span alone: the others are written as recent


_TEXTS = st.sampled_from(
    ["canonical", "offset", "short-fraction", "epoch", "none", "no-fraction", "leap-second",
     "bad-hour", "bad-least", "bad-greatest", "lowercase", "comma"]
)  # fmt: skip


@pytest.mark.slow
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=16 * 60),  # minutes before NOW
            _TEXTS,
            st.sampled_from(["windows", "linux"]),
            st.sampled_from(["disconnect_received", "connection_attempted"]),
            st.sampled_from(["A", "B", "C"]),
        ),
        min_size=1,
        max_size=40,
    ),
    st.tuples(st.integers(min_value=1, max_value=9), st.sampled_from([1, 10, 65_536])),
    st.booleans(),
    st.booleans(),
)
@example(  # a 60th second, which the cluster does not read, sorts before 08:00:00
    [(481, "leap-second", "windows", "disconnect_received", "A"),
     (480, "canonical", "windows", "disconnect_received", "A")],
    (2, 1), False, True,
)  # fmt: skip
@example(  # a row group older than the window, its oldest row not first
    [(720, "canonical", "windows", "disconnect_received", "A"),
     (840, "canonical", "windows", "disconnect_received", "A"),
     (600, "canonical", "windows", "disconnect_received", "A"),
     (60, "canonical", "windows", "disconnect_received", "A")],
    (3, 1), False, True,
)  # fmt: skip
@_RANDOM
def test_parquet_row_groups_agree_with_strict_at_random(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[int, str, str, str, str]],
    groups: tuple[int, int],
    ordered: bool,
    fixed: bool,
) -> None:
    """Random events in row groups of 1 to 9 rows, their timestamps written in every way
    the general rule reads (or none): the rows, counts and time range equal --strict's,
    which judges nothing before decoding; whether each row group is spanned and screened
    alone or with those around it (``groups``: rows a row group, ``STRETCH_ROWS``)."""
    group_rows, stretch_rows = groups
    if ordered:  # newest first, as a search sorted by time gives them
        rows = sorted(rows, key=lambda r: r[0])
    texts = []
    for minutes, style, *_ in rows:
        moment = NOW - timedelta(minutes=minutes)
        texts.append(
            {
                "canonical": stamp(moment),
                "offset": (moment - 5 * HOUR).strftime("%Y-%m-%dT%H:%M:%S-05:00"),
                "short-fraction": moment.strftime("%Y-%m-%dT%H:%M:%S.5Z"),
                "epoch": str(int(moment.timestamp() * 1000)),
                "none": None,
                "no-fraction": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                # the width of the canonical form, read or not by the general rule
                "leap-second": moment.strftime("%Y-%m-%dT%H:%M:60.5000000Z"),
                # read as a point, but sorts before one: 00,9 before 00.1
                "comma": moment.strftime("%Y-%m-%dT%H:%M:%S,") + f"{minutes % 10}000000Z",
                "bad-hour": moment.strftime("%Y-%m-%dT25:%M:%S.0000000Z"),
                "bad-least": "0000-00-00T00:00:00.0000000Z",
                "bad-greatest": "9999-99-99T99:99:99.9999999Z",
                "lowercase": stamp(moment).lower(),
            }[style]
        )
    frame = pl.DataFrame(
        {
            "@timestamp": pl.Series(texts, dtype=pl.String),
            "host.os.family": [row[2] for row in rows],
            "event.category": [["network"]] * len(rows),
            "event.action": [row[3] for row in rows],
            "destination.ip": ["8.8.8.8"] * len(rows),
            "destination.address": ["8.8.8.8"] * len(rows),
            "process.entity_id": [row[4] for row in rows],
            "process.executable": ["x.exe"] * len(rows),
            "source.bytes": [GiB // 4] * len(rows),
        }
    )
    path = tmp_path_factory.mktemp("groups") / "x.parquet"
    frame.write_parquet(path, row_group_size=group_rows)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tuning, "STRETCH_ROWS", stretch_rows)
        both(path, **({"now": NOW} if fixed else {}))


@pytest.mark.parametrize(
    ("texts", "span"),
    [
        (["2026-11-20T10:00:00.5000000Z", None, "2026-11-20T09:00:00.0009999Z"],
         ("2026-11-20T09:00:00.000Z", "2026-11-20T10:00:00.500Z")),
        # a text of the same width that the general rule cannot read counts for nothing
        (["2026-11-20T10:00:00.5000000Z", "2026-11-20T09:99:00.0000000Z",
          "2026-11-20T09:00:00.0000000Z"],
         ("2026-11-20T09:00:00.000Z", "2026-11-20T10:00:00.500Z")),
        ([None, None], (None, None)),
        # widths differ, the least or greatest is unreadable, or no Z: every row is read
        (["2026-11-20T10:00:00Z", "2026-11-20T09:00:00.0000000Z"], None),
        (["2026-11-20T10:00:00.5000000Z", "9999-99-99T99:99:99.9999999Z"], None),
        (["0000-00-00T00:00:00.0000000Z", "2026-11-20T10:00:00.5000000Z"], None),
        (["2026-11-20T10:00:00.0000+0500", "2026-11-20T09:00:00.0000+0500"], None),
        # the cluster reads no 60th second: as the least or greatest text, every row is
        # read; between them, it counts for nothing
        (["2026-11-20T10:00:60.5000000Z", "2026-11-20T10:01:00.0000000Z"], None),
        (["2026-11-20T09:00:00.0000000Z", "2026-11-20T10:01:60.5000000Z",
          "2026-11-20T10:01:59.0000000Z"], None),
        (["2026-11-20T09:00:00.0000000Z", "2026-11-20T10:00:60.5000000Z",
          "2026-11-20T10:01:00.0000000Z"],
         ("2026-11-20T09:00:00.000Z", "2026-11-20T10:01:00.000Z")),
        (["2026-11-20T09:00:00.0000000Z", "2026-11-20T09:57:60.5000000Z",
          "2026-11-20T10:00:00.0000000Z"],
         ("2026-11-20T09:00:00.000Z", "2026-11-20T10:00:00.000Z")),
        # a comma before the fraction reads as a point, but sorts before it: as the least
        # or greatest text, or hidden below the greatest in its second, every row is read
        (["2026-11-20T10:00:00,9000000Z", "2026-11-20T10:00:00.1000000Z"], None),
        (["2026-11-20T09:00:00.0000000Z", "2026-11-20T10:00:00,9000000Z",
          "2026-11-20T10:00:00.1000000Z"], None),
        (["2026-11-20T09:00:00.0000000Z", "2026-11-20T10:00:00,1000000Z"], None),
        # ... far from both, it lies between them
        (["2026-11-20T09:00:00.0000000Z", "2026-11-20T09:30:00,5000000Z",
          "2026-11-20T10:00:00.0000000Z"],
         ("2026-11-20T09:00:00.000Z", "2026-11-20T10:00:00.000Z")),
    ],
)  # fmt: skip
def test_a_row_groups_timestamp_span_is_read_from_its_texts_only_when_exact(
    texts: list[str | None], span: tuple[str | None, str | None] | None
) -> None:
    frames = [pl.DataFrame({"@timestamp": pl.Series(texts[:1], dtype=pl.String)}),
              pl.DataFrame({"@timestamp": pl.Series(texts[1:], dtype=pl.String)})]  # fmt: skip
    expected = (
        None
        if span is None
        else tuple(
            None if text is None else int(datetime.fromisoformat(text).timestamp() * 1000)
            for text in span
        )
    )
    assert parquet_spans.plain_span(frames) == expected
    listed = [frame.select(pl.concat_list("@timestamp")) for frame in frames]
    assert parquet_spans.plain_span(listed) is None  # not a plain text column: read row by row


_PLAIN_TEXTS = [
    "2026-11-20T10:00:00.5000000Z", "2026-11-20T10:00:00Z", "2026-11-20T10:00:00.123Z",
    "1970-01-01T00:00:00.000Z", "9999-12-31T23:59:59.9999999Z", "2024-02-29T12:00:00.000Z",
    "2026-02-29T12:00:00.000Z", "2026-11-20T24:00:00.000Z", "2026-11-20T10:60:00.000Z",
    "2026-11-20T10:00:60.500Z", "2026-11-20T10:00:61.000Z", "2026-13-01T00:00:00.000Z",
    "2026-11-00T00:00:00.000Z", "1969-12-31T23:59:59.999Z", "2026-11-20T10:00:00.12Z",
    "2026-11-20T10:00:00.5000000+00:00", "2026-11-20T10:00:00.5000000z", "2026-11-20",
    "2026-11-20T10:00:00.5000000Z ", " 2026-11-20T10:00:00Z", "2026-11-20T10:00:00.Z",
    "\uff12026-11-20T10:00:00Z", "1795168800000",  # a full-width digit
]  # fmt: skip


@pytest.mark.parametrize("text", _PLAIN_TEXTS)
def test_a_plain_timestamp_is_read_without_a_query_as_the_engine_reads_it(text: str) -> None:
    """The span's two texts are read in Python where they are plainly a valid time: the
    same milliseconds as the engine's rule, or None and the rule reads them."""
    engine = parquet_spans.text_ms(pl.Series([text], dtype=pl.String)).item()
    fast = parquet_spans._plain_ms(text)
    assert fast is None or fast == engine
    if text in _PLAIN_TEXTS[:6]:
        assert fast is not None  # the plain ones take the shortcut


@pytest.mark.parametrize(("stretch", "converted_rows"), [(100, [50, 50, 50]), (None, [150])])
def test_parquet_rows_kept_are_picked_before_polars_sees_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stretch: int | None,
    converted_rows: list[int],
) -> None:  # fmt: skip
    """Of a row group where some row may match, only the rows kept are converted to
    Polars, copied out of the batch: a Polars filter would leave them pointing into the
    whole batch's buffers, and a sparse export held every batch (1 GB at 4 GB). Small
    row groups read as one stretch are converted together."""
    if stretch is not None:
        monkeypatch.setattr(tuning, "STRETCH_ROWS", stretch)
    docs = [
        event(**{"process.entity_id": f"E{i}", **({} if i % 50 else {"source.bytes": GiB})})
        for i in range(300)
    ]
    for doc in docs[1::2]:
        doc["event"]["action"] = "connection_attempted"
    path = tmp_path / "x.parquet"
    pl.read_ndjson(write(tmp_path, docs)).write_parquet(path, row_group_size=100)
    converted: list[tuple[int, bool]] = []
    real = pl.from_arrow

    def spy(data: Any, *args: Any, **kwargs: Any) -> Any:
        converted.append((data.num_rows, "process" in data.schema.names))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(pl, "from_arrow", spy)
    result = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1))
    assert sorted(entities(result)) == sorted(f"E{i}" for i in range(0, 300, 2))
    assert sorted(rows for rows, wide in converted if wide) == converted_rows


def test_kept_rows_keep_their_positions() -> None:
    batch = pa.record_batch({"a": ["v", "w", "x", "y", "z"]})
    keep = pl.Series([False, True, False, False, True])
    frame = kept_rows(batch, keep, 11)
    assert frame.to_dicts() == [{"a": "w", POS: 12}, {"a": "z", POS: 15}]


@pytest.mark.parametrize("anchor", ["fixed", "latest"])
def test_parquet_files_with_empty_row_groups_are_read(tmp_path: Path, anchor: str) -> None:
    """A file of no rows has one row group of none; a writer may leave an empty row
    group between others. Neither is an error."""
    empty = pa.table({"@timestamp": pa.array([], pa.string()),
                      "event.action": pa.array([], pa.string())})  # fmt: skip
    pq.write_table(empty, tmp_path / "empty.parquet")
    old, new = (stamp(NOW - 20 * HOUR), stamp(NOW - HOUR))
    with pq.ParquetWriter(tmp_path / "gaps.parquet", empty.schema) as writer:
        for texts in ([old], [], [new]):
            actions = ["x"] * len(texts)
            writer.write_table(
                pa.table({"@timestamp": texts, "event.action": actions}, empty.schema)
            )
    spec = {"now": NOW} if anchor == "fixed" else {}
    assert both(tmp_path / "empty.parquet", **spec).counts.records == 0
    gaps = both(tmp_path / "gaps.parquet", **spec)
    assert (gaps.counts.records, gaps.counts.time_window) == (2, 1)


def test_row_group_spans_found_ahead_are_those_found_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spans found ahead on the span threads are each row group's own, in any order
    asked; a finding that fails raises its error when its group is asked for (not
    before: the groups before it still read); once closed, no span thread runs on."""
    hours = [
        f"2026-11-20T{hour:02d}:{minute:02d}:00.000Z" for hour in range(12) for minute in (0, 30)
    ]
    path = tmp_path / "x.parquet"
    pl.DataFrame({"@timestamp": hours, "n": range(len(hours))}).write_parquet(
        path, row_group_size=2
    )
    source = pa.OSFile(str(path))
    parquet = pq.ParquetFile(source)
    gathered = [(g,) for g in range(parquet.metadata.num_row_groups)]
    expected = [
        parquet_spans.stretch_span(parquet, stretch, ["@timestamp"]) for stretch in gathered
    ]
    assert expected[3] == (
        int(datetime.fromisoformat("2026-11-20T03:00:00Z").timestamp() * 1000),
        int(datetime.fromisoformat("2026-11-20T03:30:00Z").timestamp() * 1000),
    )
    ahead = parquet_spans.SpansAhead(source, parquet, ["@timestamp"], gathered)
    try:
        assert [ahead.span(g) for g in range(len(expected))] == expected
        assert ahead.span(5) == expected[5]  # asked again, out of order: found then
    finally:
        ahead.close()
    real = parquet_spans.stretch_span

    def failing(parquet: Any, stretch: tuple[int, ...], timed: list[str]) -> Any:
        if stretch == (4,):
            raise OSError("row group 4 is damaged")
        return real(parquet, stretch, timed)

    monkeypatch.setattr(parquet_spans, "stretch_span", failing)
    ahead = parquet_spans.SpansAhead(source, parquet, ["@timestamp"], gathered)
    try:
        assert [ahead.span(g) for g in range(4)] == expected[:4]
        with pytest.raises(OSError, match="row group 4 is damaged"):
            ahead.span(4)
    finally:
        ahead.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("egress-offline-span")]


def _line(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def _own(**first: Any) -> dict[str, Any]:
    """:func:`event` with the keys ``first`` before all of its own."""
    doc = event()
    del doc["@timestamp"]
    return {**first, **doc}


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize("now", ["latest", NOW], ids=["latest", "fixed"])
def test_a_character_cut_after_the_timestamp_stops_neither_the_run_nor_the_fast_reader(
    tmp_path: Path, now: Any
) -> None:
    # the 31 bytes after "@timestamp":" end inside the second "é": a cast of them raised
    # (with --now latest, the run stopped: "invalid utf8"; with a fixed --now, the whole
    # file went to the careful reader)
    cut = _line(_own(**{"@timestamp": "2024-05-01T11:00:00Z", "hx": "ééé"}))
    assert cut.encode()[1 + 14 + 31] & 0xC0 == 0x80  # after {"@timestamp":" and 31 bytes
    old = _line(event(**{"@timestamp": "2024-04-01T11:00:00Z", "process.entity_id": "E0"}))
    path = _write(tmp_path / "x.ndjson", [old, cut, old])
    result = both(path, now=now)
    assert entities(result) == ["E1"]
    assert [file.reader for file in result.files] == ["fast"]


def test_a_timestamp_key_spelled_with_an_escape_is_the_record_s(tmp_path: Path) -> None:
    # the only literal "@timestamp" is nested and old; the record's own is escaped: the
    # line was taken for an old one and skipped unread
    escaped = _line(_own(meta={"@timestamp": "2024-04-01T00:00:00Z"})).replace(
        '"meta"', '"\\u0040timestamp":"2024-05-01T11:00:00Z","meta"'
    )
    assert json.loads(escaped)["@timestamp"] == "2024-05-01T11:00:00Z"
    path = _write(tmp_path / "x.ndjson", [escaped])
    assert entities(both(path, now=NOW)) == ["E1"]


def test_a_key_whose_quote_is_escaped_is_not_the_record_s_timestamp(tmp_path: Path) -> None:
    # '"\"@timestamp":"' is a key named '"@timestamp': read as the record's, its newer
    # time anchored --now latest a day late, and the window held nothing
    fake = '{"\\"@timestamp":"2024-05-02T12:00:00Z","event":{"category":"process"}}'
    assert "@timestamp" not in json.loads(fake)
    path = _write(tmp_path / "x.ndjson", [_line(event()), fake])
    result = both(path)
    assert entities(result) == ["E1"]
    assert result.now == datetime(2024, 5, 1, 11, tzinfo=NOW.tzinfo)


@pytest.mark.parametrize(
    "value",
    [
        '"2024-05-01T19:30:00.000Z "',  # read as 19:30 by a pattern: no time when decoded
        '"2024-05-01T19:30:00,5Z"',
        '[null,"2024-05-01T19:30:00.000Z"]',  # no time by the pattern: 19:30 decoded
        '["2024-05-01T19:30:00.000Z",{}]',
        "1.7145918e12",
        '"2024-05-01T19:30:00.000\\u005a"',
    ],
)
def test_a_passed_over_line_s_timestamp_is_what_decoding_gives(tmp_path: Path, value: str) -> None:
    # a line that cannot match, whose one @timestamp is not in the canonical form: read
    # by a pattern, it moved --now latest (and the data's range) where decoding does not
    other = '{"@timestamp":' + value + ',"host":{"os":{"family":"linux"}}}'
    path = _write(tmp_path / "x.ndjson", [_line(event()), other])
    both(path)  # --now latest: rows, counts, anchor and range as --strict's
    both(path, now=NOW)


@pytest.mark.parametrize("family", ["mac/os", 'a"b', "a\\b"])
def test_a_family_written_with_an_escape_is_not_passed_over(tmp_path: Path, family: str) -> None:
    # the prefilter allowed for \u escapes only: "mac\/os" was never decoded
    line = _line(event(**{"host.os.family": family})).replace("/", "\\/")
    assert json.loads(line)["host"]["os"]["family"] == family
    path = _write(tmp_path / "x.ndjson", [line])
    assert entities(both(path, now=NOW, os_families=(family,))) == ["E1"]
