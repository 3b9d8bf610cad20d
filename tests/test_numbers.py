"""Numbers of any size. Only the hunt's fields decide whether a record is malformed for
the hunt: a number of 100,000 digits in a field it does not read changes nothing, in
every layout and through both NDJSON readers; in ``source.bytes`` it is a value that is
not a long, read as missing as the cluster reads it, and counted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from egress_offline import HuntSpec, run_hunt
from tests.helpers import NOW, GiB, event

HUGE = "9" * 100_000
#: Numbers Python's json.loads refused (over 4,300 digits), or Polars' decoder (39
#: digits and more, an exponent of 1,000 and more, a float beyond a double).
UNRELATED = {
    "huge": HUGE,
    "negative": "-" + HUGE,
    "fraction": "1." + HUGE,
    "exponent": "1e" + HUGE,
    "float-overflow": HUGE + ".5",
    "39-digits": "1" * 39,
    "in-a-list": f"[1, {HUGE}]",
    "in-an-object": f'{{"deep": {HUGE}}}',
}


def _text(doc: dict[str, Any], **raw: str) -> str:
    """``doc`` as JSON, with each ``"@name@"`` string value replaced by ``raw[name]``."""
    text = json.dumps(doc)
    for name, literal in raw.items():
        text = text.replace(f'"@{name}@"', literal)
    return text


def _docs(field: str) -> list[str]:
    """One event a line for each of :data:`UNRELATED`, the number in ``field``."""
    return [
        _text(event(**{field: f"@{name}@", "process.entity_id": name}), **{name: literal})
        for name, literal in UNRELATED.items()
    ]


def _write(docs: list[str], layout: str, path: Path) -> Path:
    if layout == "documents":
        path.write_text("".join(doc + "\n" for doc in docs))
    elif layout == "hits":
        hits = [f'{{"_index": "i", "_id": "{n}", "_source": {doc}}}' for n, doc in enumerate(docs)]
        path.write_text("".join(hit + "\n" for hit in hits))
    elif layout == "array":
        path.write_text("[\n" + ",\n".join(docs) + "\n]\n")
    elif layout == "search-response":
        path.write_text('{"took": 1, "hits": {"hits": [' + ", ".join(
            f'{{"_index": "i", "_id": "{n}", "_source": {doc}}}' for n, doc in enumerate(docs)
        ) + "]}}")  # fmt: skip
    else:  # a _bulk body
        path.write_text("".join(f'{{"index": {{"_id": "{n}"}}}}\n{doc}\n' for n, doc in
                                enumerate(docs)))  # fmt: skip
    return path


@pytest.mark.parametrize("strict", [False, True], ids=["prefiltered", "strict"])
@pytest.mark.parametrize("layout", ["documents", "hits", "array", "search-response", "bulk"])
def test_a_huge_number_in_a_field_the_hunt_does_not_read_changes_nothing(
    tmp_path: Path, ndjson_reader: str, layout: str, strict: bool
) -> None:
    """Each such record was malformed ("not valid JSON (Exceeds the limit (4300 digits)
    for integer string conversion)"), and its bytes lost."""
    path = _write(_docs("dns.Ext.options"), layout, tmp_path / "big.json")
    result = run_hunt([str(path)], HuntSpec(now=NOW, strict=strict))
    assert sorted(result.rows["process.entity_id"].to_list()) == sorted(UNRELATED)
    assert set(result.rows["total_bytes_out"].to_list()) == {GiB}
    counts = result.counts
    assert (counts.records, counts.malformed, counts.event_match) == (8, 0, 8)
    assert (result.files[0].unreadable, result.alerts) == (0, [])
    if layout in ("documents", "hits"):
        assert result.files[0].reader == ndjson_reader


def test_huge_numbers_in_source_bytes_are_read_as_missing_and_counted(
    tmp_path: Path, ndjson_reader: str
) -> None:
    """A value that is not a long is missing to the cluster (``ignore_malformed``), as
    here; the record counts, and the value is counted and named. ``1e9999999`` took
    minutes (its exact value was made an int of ten million digits)."""
    values = [HUGE, "-" + HUGE, "1e9999999", f'"{HUGE}"', "1" * 39, "[1, 1e9999999, 2]"]
    lines = [json.dumps(event())]
    lines += [_text(event(**{"source.bytes": "@v@"}), v=value) for value in values]
    path = tmp_path / "bytes.ndjson"
    path.write_text("\n".join(lines) + "\n")
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert result.rows["total_bytes_out"].to_list() == [GiB + 3]
    assert result.rows["connections"].to_list() == [7]
    counts = result.counts
    assert (counts.records, counts.malformed, counts.event_match) == (7, 0, 7)
    report = result.files[0]
    assert report.unreadable == 6
    reason = "source.bytes is not a long (out of its range, or not a number)"
    assert report.unreadable_first == [f"line {n}: {reason}" for n in range(2, 7)]
    assert result.alerts == [
        f"{path}: 6 values could not be read as their field's type and were read as missing "
        f"(first: {'; '.join(report.unreadable_first)})"
    ]


@pytest.mark.parametrize(
    ("literal", "unread"),
    [("true", 1), ('"junk"', 1), ('" "', 1), ('["1", "x", 2]', 1), ("{}", 0), ('""', 0),
     ("[]", 0), ("null", 0), ('"12.9"', 0)],
)  # fmt: skip
def test_which_source_bytes_values_count_as_read_as_missing(
    tmp_path: Path, literal: str, unread: int
) -> None:
    """An object is no value of the field, and an empty string is missing to the
    cluster's numbers: neither is counted."""
    path = tmp_path / "one.ndjson"
    path.write_text(_text(event(**{"source.bytes": "@v@"}), v=literal) + "\n")
    result = run_hunt([str(path)], HuntSpec(now=NOW, threshold=0))
    assert (result.counts.malformed, result.files[0].unreadable) == (0, unread)
