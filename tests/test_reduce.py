"""The reduction's shortcut: a field whose lists hold at most one value is not made
distinct, and gives exactly what :func:`keyword` gives."""

from __future__ import annotations

import polars as pl
import pytest

from egress_offline.engine.reduce import keywords_of
from egress_offline.normalise import keyword

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
