"""The reduction: its shortcut (a field whose lists hold at most one value is not made
distinct, and gives exactly what :func:`keyword` gives), and its slices of a batch
bounded by list elements."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from egress_offline import run_hunt
from egress_offline.engine.reduce import element_slices, keywords_of
from egress_offline.engine.spill import Spill
from egress_offline.normalise import keyword
from egress_offline.spec import HuntSpec
from tests.helpers import NOW
from tests.hostile_inputs import matching

LISTS = pl.List(pl.String)


@pytest.mark.parametrize(
    "values",
    [
        [["a"], [], None, [None], ["b"]],  # one value at most: the shortcut
        [["a", "a"], ["b"], [None, "c", None]],  # a repeated value: made distinct
        [["a", None, "a"], ["b", "a", "b"]],
        [None, None],
    ],
)
def test_keywords_of_gives_what_keyword_gives(values: list[list[str | None] | None]) -> None:
    frame = pl.DataFrame({"x": pl.Series(values, dtype=LISTS)})
    fast = frame.select(keywords_of(frame, ["x"])["x"])
    assert fast.to_series().to_list() == frame.select(keyword("x")).to_series().to_list()


def test_keywords_of_takes_the_shortcut_only_where_no_row_holds_more() -> None:
    frame = pl.DataFrame(
        {
            "one": pl.Series([["a"], []], dtype=LISTS),
            "two": pl.Series([["a", "a"]] * 2, dtype=LISTS),
        }
    )
    chosen = keywords_of(frame, ["one", "two"])
    assert "unique" not in str(chosen["one"])
    assert "unique" in str(chosen["two"])


@pytest.mark.parametrize(
    ("sizes", "most", "rows"),
    [
        ([3, 3, 3, 10, 1], 6, [2, 1, 2]),  # a slice may pass `most` by its first row's
        ([1] * 10, 100, [10]),  # within: the frame itself
        ([0, 0, 5, 0, 5, 0], 5, [4, 2]),
        ([50, 50], 10, [1, 1]),  # a row of more is a slice of its own
    ],
)
def test_element_slices_cut_a_frame_by_its_list_elements(
    sizes: list[int], most: int, rows: list[int]
) -> None:
    frame = pl.DataFrame({"x": pl.Series([["1"] * n for n in sizes], dtype=LISTS),
                          "i": range(len(sizes))})  # fmt: skip
    parts = element_slices(frame, most)
    assert [part.height for part in parts] == rows
    assert pl.concat(parts).equals(frame)


def test_element_slices_of_a_frame_without_lists_or_rows() -> None:
    assert element_slices(pl.DataFrame({"i": [1, 2]}), 1)[0].height == 2
    assert element_slices(pl.DataFrame({"x": pl.Series([], dtype=LISTS)}), 1) == []


def test_rows_reduced_in_slices_sum_as_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Events whose ``source.bytes`` is a list are reduced a few elements at a time (each
    element is several values while reduced: 65,536 events of 2,001-element lists, a
    44 KB file, peaked at 2.1 GB reduced a batch at once); the sums are the same."""
    from egress_offline.readers import tuning  # noqa: PLC0415

    lines = [matching(i, **{"source.bytes": [1, None, 2] * (i % 4) or None}) for i in range(300)]
    path = tmp_path / "x.ndjson"
    path.write_bytes(b"".join(lines))
    calls: list[int] = []
    real = Spill.add
    monkeypatch.setattr(Spill, "add", lambda self, frame: (calls.append(frame.height),
                                                           real(self, frame))[1])  # fmt: skip
    monkeypatch.setattr(tuning, "REDUCE_ELEMENTS", 50)
    rows = run_hunt([str(path)], HuntSpec(now=NOW, threshold=1)).rows
    assert len(calls) > 10 and sum(calls) == 300
    # E0, E1, E2 each hold i % 4 in 0..3 by turns: 3 bytes a step of i % 4
    expected = {f"E{k}": sum(3 * (i % 4) for i in range(k, 300, 3)) for k in range(3)}
    assert dict(rows.select("process.entity_id", "total_bytes_out").iter_rows()) == expected
