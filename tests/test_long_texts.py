"""Long keys and context held once in scratch as tokens (``engine/long_texts.py``): the
same groups and the same rows, verbatim, whatever the texts' length."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from egress_offline import HuntSpec, run_hunt, run_sweep
from egress_offline.engine.long_texts import PREFIX, LongTexts
from egress_offline.readers import tuning
from egress_offline.scratch import Scratch
from tests.helpers import NOW, GiB, event

LONG = 200  # tuning.LONG_TEXT, lowered: texts past it are held as tokens


@pytest.fixture(autouse=True)
def _short_room(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuning, "LONG_TEXT", LONG)


def _lines(path: Path, docs: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    return path


def test_texts_past_the_room_are_tokens_and_come_back_verbatim() -> None:
    long_a, long_b = "a" * (LONG + 1), "é" * LONG  # the second: 2 bytes a character
    frame = pl.DataFrame({
        "k": [long_a, "short", None, long_b, long_a],
        "c": [["x", long_b], [], None, ["y"], [long_a, None]],
        "n": [1, 2, 3, 4, 5],
    })  # fmt: skip
    with Scratch() as scratch:
        texts = LongTexts(scratch)
        tokened = texts.tokens(frame, ["k", "c"])
        assert tokened.get_column("n").to_list() == [1, 2, 3, 4, 5]  # in order
        keys = tokened.get_column("k").to_list()
        assert keys[1:3] == ["short", None]
        assert keys[0] == keys[4] == texts.token(long_a) != keys[3] == texts.token(long_b)
        assert keys[0].startswith(PREFIX) and f"{LONG + 1:,} bytes, sha256 " in keys[0]
        assert tokened.get_column("c").to_list()[0] == ["x", texts.token(long_b)]
        assert tokened.equals(texts.as_tokens(frame, ["k", "c"]))  # the same, unstored
        assert texts.restore(tokened, ["k", "c"]).equals(frame)
        assert scratch.used == len(long_a) + 2 * LONG  # each text once
    assert texts.tokens(frame.head(0), ["k"]).height == 0
    assert texts.tokens(frame.select("n"), ["k"]).equals(frame.select("n"))


def test_a_text_posing_as_a_token_is_not_one() -> None:
    """A token holds a secret drawn for the run: a text written before it, even another
    run's token of a long text, is only itself, and joins no long text's group (and
    costs no Python step: 2 million such rows took over 120 s when each was hashed)."""
    long_a = "a" * (LONG + 1)
    with Scratch() as scratch:
        earlier = LongTexts(scratch).token(long_a)
        texts = LongTexts(scratch)
        frame = pl.DataFrame({"k": [long_a, earlier]})
        tokened = texts.tokens(frame, ["k"])
        assert tokened.get_column("k").to_list() == [texts.token(long_a), earlier]
        assert texts.token(long_a) != earlier
        assert texts.restore(tokened, ["k"]).equals(frame)


@pytest.mark.parametrize("command", ["hunt", "sweep"])
def test_groups_of_long_keys_are_the_file_s_verbatim(tmp_path: Path, command: str) -> None:
    """Executables, hosts and entity ids past the room group, sum and come out as they
    are in the file, beside short ones and a short text posing as a long one's token
    (another run's)."""
    long_exe, long_host = "C:\\" + "x" * LONG, "h" * (LONG + 5)
    long_id = "E" + "9" * LONG
    with Scratch() as scratch:
        posing = LongTexts(scratch).token(long_exe)
    docs = [
        event(**{"process.entity_id": "E0", "process.executable": long_exe,
                 "host.name": long_host, "source.bytes": GiB}),
        event(**{"process.entity_id": "E0", "process.executable": long_exe,
                 "host.name": "short", "source.bytes": GiB}),
        event(**{"process.entity_id": "E0", "process.executable": posing,
                 "source.bytes": GiB}),
        event(**{"process.entity_id": long_id, "process.executable": "C:\\a.exe",
                 "source.bytes": 2 * GiB}),
    ]  # fmt: skip
    path = _lines(tmp_path / "x.ndjson", docs)
    if command == "hunt":
        result = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1), series=True)
        total = "total_bytes_out"
    else:
        result = run_sweep([str(path)])
        total = "peak_bytes"
    rows = result.rows.sort("process.entity_id", "process.executable")
    assert rows.select("process.entity_id", "process.executable", total).rows() == [
        ("E0", "C:\\" + "x" * LONG, 2 * GiB),
        ("E0", posing, GiB),
        (long_id, "C:\\a.exe", 2 * GiB),
    ]
    assert rows.get_column("host.name").to_list()[0] == [long_host, "short"]  # sorted as texts
    if command == "hunt":
        assert {series.key for series in result.series} == {
            ("E0", "8.8.8.8", long_exe), ("E0", "8.8.8.8", posing),
            (long_id, "8.8.8.8", "C:\\a.exe")}  # fmt: skip
        assert all(series.points.height == 1 for series in result.series)


def test_a_long_text_past_the_scratch_limit_is_never_written() -> None:
    """A text is charged before it is written: past the limit, the scratch holds none of
    it (written first, a 40 MiB text took the scratch 14 MiB past a 500 MiB limit)."""
    from egress_offline.errors import ScratchError  # noqa: PLC0415

    first = "a" * (LONG + 1)
    frame = pl.DataFrame({"k": [first, "b" * 1_000]})
    with Scratch(limit=LONG + 500) as scratch:
        texts = LongTexts(scratch)
        with pytest.raises(ScratchError, match="--scratch-limit"):
            texts.tokens(frame, ["k"])
        back = texts.restore(pl.DataFrame({"k": [texts.token(first)]}), ["k"])  # flushed
        assert back.item() == first
        assert (scratch.root / "long-texts").stat().st_size == LONG + 1


def test_a_long_text_shared_by_many_rows_goes_through_python_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows sharing a long text (a Parquet dictionary entry, read as each row's copy) are
    hashed once, not each: 8,192 rows of one 1 MiB executable hashed 8 GiB."""
    shared, other = "s" * (LONG + 1), "o" * (LONG + 2)
    frame = pl.DataFrame({"k": [shared] * 50 + [other, "short"], "c": [[shared, other]] * 52})
    seen: list[int] = []
    with Scratch() as scratch:
        texts = LongTexts(scratch)
        real = texts._stored
        monkeypatch.setattr(texts, "_stored", lambda text: seen.append(len(text)) or real(text))
        tokened = texts.tokens(frame, ["k", "c"])
        assert sorted(seen) == [LONG + 1, LONG + 1, LONG + 2, LONG + 2]  # once a column
        assert tokened.get_column("k").to_list()[49:] == [
            texts.token(shared), texts.token(other), "short"
        ]  # fmt: skip
        assert texts.restore(tokened, ["k", "c"]).equals(frame)
