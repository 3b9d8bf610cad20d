"""readers.batching: work shared across files, told back to each file."""

from __future__ import annotations

import json

import polars as pl
import pytest

from egress_offline.fields import HUNT
from egress_offline.readers import tuning
from egress_offline.readers.batching import DecodeQueue, FrameBatcher, frame_bytes
from egress_offline.readers.model import FILE, POS, FileReport

GOOD = json.dumps({"event": {"action": "disconnect_received"}})


def lines(*numbered: tuple[int, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {POS: [n for n, _ in numbered], "line": [t for _, t in numbered]},
        schema={POS: pl.Int64, "line": pl.String},
    )


def report(name: str) -> FileReport:
    return FileReport(name, "ndjson", "none", 0, "line")


def test_lines_of_several_files_decoded_together_keep_their_file_and_line() -> None:
    queue = DecodeQueue(HUNT)
    a, b = report("a"), report("b")
    queue.add(a, 0, lines((3, GOOD), (7, "{broken")))
    queue.begin_file()
    queue.add(b, 4, lines((1, "null"), (2, GOOD)))
    (frame,) = queue.decode_all(strict=False)
    assert sorted(frame.select(FILE, POS).rows()) == [(0, 3), (4, 2)]
    assert (a.malformed, a.positions) == (
        1,
        ["line 7: not valid JSON (Expecting property name enclosed in double quotes)"],
    )
    assert (b.malformed, b.positions) == (1, ["line 1: not a JSON object (null)"])


def test_a_file_given_up_on_takes_only_its_own_lines_out() -> None:
    queue = DecodeQueue(HUNT)
    queue.add(report("a"), 0, lines((1, GOOD)))
    queue.begin_file()
    queue.add(report("b"), 1, lines((1, GOOD), (2, GOOD)))
    assert queue.own_size == 2 * len(GOOD)
    queue.drop_own()
    (frame,) = queue.decode_all(strict=False)
    assert frame.select(FILE, POS).rows() == [(0, 1)]
    assert queue.size == 0


def test_small_frames_are_gathered_and_large_ones_pass_alone() -> None:
    batcher = FrameBatcher(100, alone=50)
    small = pl.DataFrame({"x": [1]})  # 8 bytes
    large = pl.DataFrame({"x": list(range(10))})  # 80 bytes
    assert list(batcher.add(small)) == []
    assert [f.height for f in batcher.add(large)] == [10]  # at once, by itself
    for _ in range(12):
        handed = list(batcher.add(small))
    assert [f.height for f in handed] == [13]  # 13 x 8 bytes passed 100
    assert list(batcher.flush()) == []
    assert list(batcher.add(pl.DataFrame({"x": []}))) == []


def test_lists_of_nulls_are_counted_by_their_elements() -> None:
    """Polars' estimate leaves out null list elements: a frame of 1,000 lists of 2,001
    elements, all but one null, was 'nothing', and 16,384 such events (a 20 KB zstd
    file) were gathered into one batch of 2.9 GB. Each element counts 16 bytes."""
    from egress_offline.readers.batching import frame_bytes  # noqa: PLC0415

    nulls = pl.DataFrame({"b": [["1", *[None] * 2000]] * 1_000}, schema={"b": pl.List(pl.String)})
    assert frame_bytes(nulls) == 1_000 * 2_001 * 16
    plain = pl.DataFrame({"x": list(range(10))})
    assert frame_bytes(plain) == 80
    batcher = FrameBatcher(1 << 20, alone=1 << 20)
    assert [f.height for f in batcher.add(nulls)] == [1_000]  # 32 MB: alone, at once


def _listed(count: int) -> str:
    """An event whose source.bytes is a list of ``count`` values: a line whose decoded
    values take several times its text."""
    doc = {"event": {"action": "disconnect_received"}, "source": {"bytes": [1] * count}}
    return json.dumps(doc, separators=(",", ":"))


def test_decoded_pieces_are_handed_on_together_while_small(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lines of short fields decode to less than their text: the pieces of a queue
    larger than DECODE_BYTES are decoded one at a time but handed on as one frame, in
    order, each line with its file and its own line number."""
    # an event's text is mostly fields not decoded
    event = json.dumps({"event": {"action": "disconnect_received"}, "message": "x" * 2000})
    monkeypatch.setattr(tuning, "DECODE_BYTES", 8 * len(event))
    queue = DecodeQueue(HUNT)
    queue.add(report("a"), 0, lines(*((n, event) for n in range(1, 21))))
    queue.begin_file()
    queue.add(report("b"), 3, lines(*((n, event) for n in range(1, 11))))
    (frame,) = queue.decode_all(strict=False)
    assert frame.select(FILE, POS).rows() == [
        *((0, n) for n in range(1, 21)),
        *((3, n) for n in range(1, 11)),
    ]


def test_pieces_that_decode_to_more_than_their_text_are_handed_on_apart_and_shrink(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A line of a list of 500 values is 1 KB of text and 8 KB decoded (a view for each
    value): a piece is handed on once its decoding reaches DECODE_BYTES, and the next
    pieces hold as much less text as the last decoded to more than its own, so that no
    frame holds much more than DECODE_BYTES decoded (the hostile case of 2,001-element
    lists peaked at 640 to 770 MiB with its pieces put together, 410 to 440 MiB so)."""
    dense = _listed(500)
    bound = 64 * len(dense)  # 64 lines of text; 8 lines' decoding
    monkeypatch.setattr(tuning, "DECODE_BYTES", bound)
    queue = DecodeQueue(HUNT)
    queue.add(report("a"), 0, lines(*((n, dense) for n in range(1, 201))))
    frames = list(queue.decode_all(strict=False))
    assert pl.concat(frames).get_column(POS).to_list() == list(range(1, 201))
    sizes = [frame_bytes(frame) for frame in frames]
    assert sizes[0] > 4 * bound  # the first piece: 64 lines, before the rest shrink
    assert max(sizes[1:]) <= 2 * bound
    assert len(frames) > 200 // 64 + 1
    # what the queue learnt holds for the next decoding: every piece small
    queue.add(report("b"), 1, lines(*((n, dense) for n in range(1, 65))))
    assert max(frame_bytes(frame) for frame in queue.decode_all(strict=False)) <= 2 * bound
