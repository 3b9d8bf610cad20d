"""readers.session: one object owns a read, and hands on only finished batches."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from concurrent.futures import Future
from pathlib import Path

import polars as pl
import pytest

from egress_offline.errors import InputError
from egress_offline.fields import HUNT
from egress_offline.readers import (
    FILE,
    ID,
    INDEX,
    POS,
    TS,
    FieldBatch,
    Prefilter,
    ReadPlan,
    ReadSession,
    StampBatch,
    open_inputs,
    textcheck,
    tuning,
)
from egress_offline.readers import ndjson as fast_reader
from egress_offline.readers.model import InputFile
from egress_offline.readers.textcheck import TextCheck
from egress_offline.scratch import MARKER
from tests.helpers import GiB, event, fail_after_batches, ndjson

HOUR = 3_600_000
PLAN = ReadPlan(prefilter=Prefilter(families=("windows",), actions=("disconnect_received",)))


def read_all(
    paths: list[str], plan: ReadPlan = PLAN
) -> tuple[list[FieldBatch | StampBatch], ReadSession]:
    with open_inputs(paths) as inputs, ReadSession(inputs, plan) as session:
        items = list(session)
    return items, session


def frames(items: list[FieldBatch | StampBatch]) -> pl.DataFrame:
    return pl.concat([item.frame for item in items if isinstance(item, FieldBatch)])


def test_field_batches_carry_file_line_time_and_the_fields(tmp_path: Path) -> None:
    (tmp_path / "a.ndjson").write_bytes(ndjson([event(), event(**{"host.os.family": "linux"})]))
    (tmp_path / "b.ndjson").write_bytes(ndjson([{"x": 1}, event(**{"source.bytes": 5})]))
    items, session = read_all([str(tmp_path)])
    frame = frames(items)
    assert frame.columns == [FILE, POS, TS, INDEX, ID, *HUNT.names]
    assert sorted(frame.select(FILE, POS).rows()) == [(0, 1), (1, 2)]
    assert frame.get_column(TS).to_list() == [1714561200000] * 2
    assert [report.records for report in session.reports] == [2, 2]
    assert (session.first_ms, session.last_ms) == (1714561200000, 1714561200000)


def test_records_older_than_a_fixed_floor_are_not_handed_on(tmp_path: Path) -> None:
    old = event(**{"@timestamp": "2024-05-01T01:00:00.0000000Z", "process.entity_id": "old"})
    (tmp_path / "a.ndjson").write_bytes(ndjson([old, event()]))
    plan = ReadPlan(prefilter=None, window_ms=HOUR, floor_ms=1714561200000 - HOUR)
    items, session = read_all([str(tmp_path)], plan)
    assert frames(items).get_column("process.entity_id").to_list() == [["E1"]]
    assert session.first_ms == 1714525200000  # still in the data's range


@pytest.mark.parametrize("held", [1 << 30, 1])
def test_a_file_s_output_waits_for_its_end_in_memory_or_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: int
) -> None:
    """Whether the output waits in memory or in the scratch directory, the same items
    come out, in the same order, and the scratch directory is gone afterwards."""
    monkeypatch.setattr(tuning, "HELD_OUTPUT", held)
    monkeypatch.setattr(tuning, "DECODE_BYTES", 1)  # each batch's lines decoded at once
    monkeypatch.setattr(fast_reader, "batch_rows", lambda _file, _text: 3)
    docs = [event(**{"process.entity_id": f"E{i}", "source.bytes": i}) for i in range(20)]
    docs += [event(**{"host.os.family": "linux"})] * 3
    path = tmp_path / "a.ndjson"
    path.write_bytes(ndjson(docs))
    plan = ReadPlan(prefilter=PLAN.prefilter, window_ms=24 * HOUR, floor_ms=0)
    with open_inputs([str(path)]) as inputs, ReadSession(inputs, plan) as session:
        items = list(session)
        assert (session.scratch.peak > 0) is (held == 1)
        root = session.scratch.root
        # what waited there is gone once handed on: the directory's marker alone is left
        assert [path.name for path in root.iterdir()] == [MARKER]
    assert not root.exists()
    ids = frames(items).get_column("process.entity_id").to_list()
    assert ids == [[f"E{i}"] for i in range(20)]
    stamps = [item for item in items if isinstance(item, StampBatch)]
    assert sum(stamp.ms.len() for stamp in stamps) == 3


def test_a_file_the_fast_reader_gives_up_on_hands_on_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast reader gives up on a file after it has produced output, some of it
    waiting on disk: none of that is handed on, the careful reader's output is, once;
    the earlier file's output is untouched."""
    from egress_offline.readers import held as held_module  # noqa: PLC0415

    monkeypatch.setattr(tuning, "HELD_OUTPUT", 1)
    monkeypatch.setattr(tuning, "DECODE_BYTES", 1)
    monkeypatch.setattr(tuning, "SMALL_TEXT", 0)  # each file scanned alone
    monkeypatch.setattr(fast_reader, "batch_rows", lambda _file, _text: 2)
    discarded: list[list[object]] = []
    real_discard = held_module.FileOutput.discard

    def discard(self: held_module.FileOutput) -> None:
        made = [item.result() if isinstance(item, Future) else item for item in self._items]
        discarded.append([item for item in made if isinstance(item, Path) and item.exists()])
        real_discard(self)

    monkeypatch.setattr(held_module.FileOutput, "discard", discard)
    accounted = fail_after_batches(monkeypatch, 3)  # a's batch, then two of b's
    (tmp_path / "a.ndjson").write_bytes(ndjson([event(**{"process.entity_id": "A"})]))
    (tmp_path / "b.ndjson").write_bytes(
        ndjson([event(**{"process.entity_id": f"B{i}"}) for i in range(9)])
    )
    items, session = read_all([str(tmp_path)])
    assert accounted == [1, 2, 2]
    assert len(discarded) == 1 and len(discarded[0]) >= 2  # b's first output, on disk
    assert not any(path.exists() for path in discarded[0])  # type: ignore[attr-defined]
    ids = frames(items).select(FILE, pl.col("process.entity_id").list.first()).rows()
    assert ids == [(0, "A"), *[(1, f"B{i}") for i in range(9)]]
    assert [report.reader for report in session.reports] == ["fast", "careful"]
    assert [report.records for report in session.reports] == [1, 9]


def ids_of(items: list[FieldBatch | StampBatch]) -> list[tuple[int, str]]:
    """Each record's file and entity id."""
    return [
        row
        for item in items
        if isinstance(item, FieldBatch)
        for row in item.frame.select(FILE, pl.col("process.entity_id").list.first()).rows()
    ]


class Taken:
    """A caller that can go back (a ``session.Checkpoint``): what it was handed, in a
    list, and each rollback with what it took back."""

    def __init__(self) -> None:
        self.items: list[FieldBatch | StampBatch] = []
        self.taken_back: list[list[FieldBatch | StampBatch]] = []

    def mark(self) -> int:
        return len(self.items)

    def rollback(self, mark: int) -> None:
        self.taken_back.append(self.items[mark:])
        del self.items[mark:]


@pytest.mark.parametrize("gather", [1, 1 << 30])
def test_a_caller_that_can_go_back_takes_back_what_a_given_up_file_handed_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gather: int
) -> None:
    """With a checkpoint, a large file's output is handed on as it is read: when the fast
    reader gives up on it, what it handed on is taken back and what waited to be
    gathered (all of it, gathering much) is dropped; the careful reader's output is
    handed on once; the earlier file's output, handed on before the file began, is
    untouched."""
    monkeypatch.setattr(tuning, "OUTPUT_AS_READ", 0)  # every file is large
    monkeypatch.setattr(tuning, "HELD_OUTPUT", 0)  # nothing may wait on disk: it would show
    monkeypatch.setattr(tuning, "DECODE_BYTES", 1)
    monkeypatch.setattr(tuning, "GATHER_BYTES", gather)  # 1: each frame handed on at once
    monkeypatch.setattr(tuning, "SMALL_TEXT", 0)
    monkeypatch.setattr(fast_reader, "batch_rows", lambda _file, _text: 2)
    accounted = fail_after_batches(monkeypatch, 3)  # a's batch, then two of b's
    (tmp_path / "a.ndjson").write_bytes(ndjson([event(**{"process.entity_id": "A"})]))
    (tmp_path / "b.ndjson").write_bytes(
        ndjson([event(**{"process.entity_id": f"B{i}"}) for i in range(9)])
    )
    taken = Taken()
    with (
        open_inputs([str(tmp_path)]) as inputs,
        ReadSession(inputs, PLAN, checkpoint=taken) as session,
    ):
        for item in session:
            taken.items.append(item)
        assert session.scratch.peak == 0
    assert accounted == [1, 2, 2]
    [back] = taken.taken_back
    handed = [(1, f"B{i}") for i in range(4)] if gather == 1 else []
    assert ids_of(back) == handed  # b's first two batches, unless still gathering
    assert ids_of(taken.items) == [(0, "A"), *[(1, f"B{i}") for i in range(9)]]
    assert [report.reader for report in session.reports] == ["fast", "careful"]
    assert [report.records for report in session.reports] == [1, 9]


def test_reading_errors_become_input_errors_with_their_cause(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pl.DataFrame({"event.action": [["disconnect_received"]]}).write_parquet(path)
    with open_inputs([str(path)]) as inputs:
        path.write_bytes(path.read_bytes()[:-12] + b"\x00" * 8 + b"PAR1")  # footer gone
        with pytest.raises(InputError) as raised, ReadSession(inputs, PLAN) as session:
            list(session)
    assert str(raised.value).startswith(f"{path}: not a readable Parquet file (")
    assert raised.value.__cause__ is not None and raised.value.file == str(path)


def test_a_file_that_vanishes_while_read_is_named(tmp_path: Path) -> None:
    path = tmp_path / "gone.ndjson.gz"
    path.write_bytes(gzip.compress(ndjson([event()])))
    with open_inputs([str(path)]) as inputs:
        path.unlink()
        with pytest.raises(InputError) as raised, ReadSession(inputs, PLAN) as session:
            list(session)
    assert str(raised.value).startswith(f"{path}: cannot be read (No such file or directory)")
    assert isinstance(raised.value.__cause__, OSError)


def test_inputs_are_hashed_on_request(tmp_path: Path) -> None:
    path = tmp_path / "a.ndjson"
    path.write_bytes(ndjson([event(**{"source.bytes": GiB})]))
    _, session = read_all([str(path)], ReadPlan(prefilter=None, hash_inputs=True))
    assert session.reports[0].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    _, unhashed = read_all([str(path)])
    assert unhashed.reports[0].sha256 is None
    assert json.loads(path.read_text())["source"]["bytes"] == GiB


def test_the_next_compressed_file_is_checked_while_one_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fixed floor samples nothing: each compressed file's text check (a whole pass over
    its text) is made on a thread while the file before it is read; the same records."""
    for number in range(3):
        records = [event(**{"process.entity_id": f"E{number}-{k}"}) for k in range(3)]
        (tmp_path / f"{number}.ndjson.gz").write_bytes(gzip.compress(ndjson(records)))
    threads: list[str] = []
    check_text = textcheck.check_text

    def recorded(file: InputFile, stop: threading.Event | None = None) -> TextCheck:
        threads.append(threading.current_thread().name)
        return check_text(file, stop)

    monkeypatch.setattr(textcheck, "check_text", recorded)
    monkeypatch.setattr(tuning, "CHECK_AHEAD_SIZE", 0)  # these files are small
    plan = ReadPlan(prefilter=PLAN.prefilter, window_ms=24 * HOUR, floor_ms=0)
    items, session = read_all([str(tmp_path)], plan)
    assert len(threads) == 3  # each file once
    assert all(name.startswith("egress-offline-check") for name in threads)
    assert sorted(frames(items).get_column("process.entity_id").explode().to_list()) == [
        f"E{n}-{k}" for n in range(3) for k in range(3)
    ]
    assert [report.reader for report in session.reports] == ["fast"] * 3
