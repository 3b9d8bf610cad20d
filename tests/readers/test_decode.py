"""readers.decode: JSON text to field lists, vectorised, and in Python by the same rules."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pytest

from egress_offline.fields import HUNT
from egress_offline.readers.decode import decode_lines, python_fields, strict_load
from egress_offline.readers.model import POS

DOCS: list[Any] = [
    {"host": {"os": {"family": "windows"}}, "source": {"bytes": 12.5}},
    {"host.os.family": ["windows", None], "source.bytes": "7", "event.action": True},
    {"host.os": {"family": "linux"}, "process": {"entity_id": 5}},
    {"_index": "i", "_id": "1", "_source": {"destination": {"ip": "::1"}}},
    {"process": {"executable": "C:\\x\ud800.exe"}},  # a lone surrogate: U+FFFD
    {"source": {"bytes": [1, 2, {"x": 1}]}},  # an object where a value belongs: missing
]


def lines_of(*texts: str) -> pl.DataFrame:
    return pl.DataFrame(
        {POS: list(range(1, len(texts) + 1)), "line": list(texts)},
        schema={POS: pl.Int64, "line": pl.String},
    )


@pytest.mark.parametrize("doc", DOCS)
def test_the_vectorised_decoder_and_the_python_one_agree(doc: Any) -> None:
    text = json.dumps(doc)
    bad: list[tuple[int, str]] = []
    decoded = decode_lines(lines_of(text), bad, HUNT)
    assert bad == []
    expected = python_fields(strict_load(text), HUNT)
    assert isinstance(expected, dict)
    got = decoded.drop(POS).to_dicts()[0]
    assert got == expected


def test_a_bad_line_among_good_ones_is_found_and_the_rest_decode() -> None:
    good = json.dumps({"event": {"action": "disconnect_received"}})
    texts = [good] * 100
    texts[41] = '{"event": {"action": "x"'  # cut
    texts[77] = "null"
    bad: list[tuple[int, str]] = []
    decoded = decode_lines(lines_of(*texts), bad, HUNT)
    assert sorted(bad) == [
        (42, "not valid JSON (Expecting ',' delimiter)"),
        (78, "not a JSON object (null)"),
    ]
    assert sorted(decoded.get_column(POS).to_list()) == [
        n for n in range(1, 101) if n not in (42, 78)
    ]


def test_python_reading_follows_the_vectorised_rules() -> None:
    assert strict_load('{"a": 1, "a": 2}') == {"a": 1}  # the first of duplicate keys
    with pytest.raises(ValueError, match="NaN is not valid JSON"):
        strict_load('{"a": NaN}')
    assert python_fields([1], HUNT) == "not a JSON object (a list)"
    assert python_fields({"_source": 3}, HUNT) == "_source is not an object"
