"""Writers: format choice, inert terminal text in every format. (Output files are
test_outputs.py.)"""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import pytest

from egress_offline.errors import UsageError
from egress_offline.writers import (
    format_for,
    human_bytes,
    inert,
    legible,
    pivot_text,
    render,
    render_pivot,
    table_text,
)

GiB = 1024**3
#: an executable name that would retitle the window, ring the bell and clear the screen
HOSTILE = "C:\\x\x1b]0;pwned\x07\x1b[2J\x9b31m\u202egpj.exe\x7f"


def test_format_choice() -> None:
    assert format_for(None, None, terminal=True) == "table"
    assert format_for(None, None, terminal=False) == "csv"
    assert format_for(Path("x.NDJSON"), None, terminal=True) == "ndjson"
    assert format_for(Path("x.parquet"), "csv", terminal=True) == "csv"
    with pytest.raises(UsageError, match="cannot tell the format"):
        format_for(Path("x.xlsx"), None, terminal=False)
    # a device or FIFO whose name tells nothing (-o /dev/stdout) takes the piped default
    assert format_for(Path("/dev/stdout"), None, terminal=True, written_through=True) == "csv"
    assert format_for(Path("rows.json"), None, terminal=True, written_through=True) == "json"


def test_inert_and_sizes() -> None:
    assert inert("a\x1b[31mb\u202ec\td") == "a\\x1b[31mb\\u202ec\\td"
    assert human_bytes(1024**3) == "1.00 GiB"
    assert human_bytes(512) == "512 B"
    assert human_bytes(None) == ""


def _rows(value: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "total_bytes_out": [GiB],
            "process.executable": [value],
            "host.name": [[value, "b"]],
        }
    )


def _rendered(fmt: str, *, terminal: bool, value: str = HOSTILE) -> str:
    sink = io.BytesIO()
    render(_rows(value), fmt, sink, terminal=terminal)  # type: ignore[arg-type]
    return sink.getvalue().decode("utf-8")


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json", "table"])
def test_nothing_a_terminal_acts_on_reaches_a_terminal_in_any_format(fmt: str) -> None:
    text = _rendered(fmt, terminal=True)
    for char in "\x1b\x07\x9b\u202e\x7f":
        assert char not in text, (fmt, char)
    if fmt in ("ndjson", "json"):  # JSON's own escapes: still the same values
        parsed = [json.loads(line) for line in text.splitlines()] if fmt == "ndjson" else None
        rows = parsed if parsed is not None else json.loads(text)
        assert rows[0]["process.executable"] == HOSTILE
        assert rows[0]["host.name"] == [HOSTILE, "b"]
        assert "\\u001b]0;pwned\\u0007\\u001b[2J\\u009b31m\\u202egpj.exe\\u007f" in text
    else:
        assert "C:\\x\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202egpj.exe\\x7f" in text


def test_csv_on_a_terminal_is_escaped_cell_by_cell() -> None:
    assert _rendered("csv", terminal=True).splitlines() == [
        "total_bytes_out,process.executable,host.name",
        f"{GiB},C:\\x\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202egpj.exe\\x7f,"
        '"[""C:\\\\x\\u001b]0;pwned\\u0007\\u001b[2J\\x9b31m\\u202egpj.exe\\x7f"", ""b""]"',
    ]


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_data_formats_elsewhere_are_verbatim(fmt: str) -> None:
    text = _rendered(fmt, terminal=False)
    if fmt == "csv":
        assert HOSTILE in text
    else:
        rows = [json.loads(line) for line in text.splitlines()] if fmt == "ndjson" else None
        assert (rows or json.loads(text))[0]["process.executable"] == HOSTILE
        assert "\x9b" in text and "\u202e" in text  # JSON writers escape C0 only


def test_the_terminal_is_told_by_the_sink() -> None:
    class Terminal(io.BytesIO):
        def isatty(self) -> bool:
            return True

    sink = Terminal()
    render(_rows(HOSTILE), "csv", sink)
    assert "\x1b" not in sink.getvalue().decode()
    assert "\\x1b" in sink.getvalue().decode()
    with pytest.raises(UsageError, match="will not write binary to a terminal"):
        render(_rows(HOSTILE), "parquet", Terminal())


def test_pivot_json_on_a_terminal() -> None:
    pivot = {"entities": [{"entity_id": HOSTILE}], "esql": "", "kql": ""}
    for fmt in ("json", "ndjson"):
        sink = io.BytesIO()
        render_pivot(pivot, fmt, sink, terminal=True)
        text = sink.getvalue().decode()
        assert "\x1b" not in text and "\u202e" not in text
        first = json.loads(text) if fmt == "json" else json.loads(text.splitlines()[0])
        assert (first["entities"][0] if fmt == "json" else first)["entity_id"] == HOSTILE
        sink = io.BytesIO()
        render_pivot(pivot, fmt, sink, terminal=False)
        assert "\u202e" in sink.getvalue().decode()


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("C:\\Windows\u2215System32\\x.exe", "C:\\Windows\\u2215System32\\x.exe"),
        ("C:\u2044x\u29f8y\uff0fz", "C:\\u2044x\\u29f8y\\uff0fz"),
        ("C:\u2216x\uff3cy\ufe68z", "C:\\u2216x\\uff3cy\\ufe68z"),
        ("C\ua789\\x\u2024exe\uff0eexe", "C\\ua789\\x\\u2024exe\\uff0eexe"),
        (
            "svc\u200bhost\u200c\u200d\u2060\ufeff\u00ad",
            "svc\\u200bhost\\u200c\\u200d\\u2060\\ufeff\\xad",
        ),
        ("a\u00a0b\u2007c\u3000d\u2028e", "a\\xa0b\\u2007c\\u3000d\\u2028e"),
        ("tag\U000e0041", "tag\\U000e0041"),  # an invisible "tag" letter
        ("\ue000", "\\ue000"),  # private use: no agreed glyph
        ("a\u0338b", "a\\u0338b"),  # a slash drawn over a letter
        ("C:\\x\u2026y.exe", "C:\\x\\u2026y.exe"),  # the table's mark of a shortened value
        # letters of any script, and marks that are not look-alikes, stay as they are
        ("C:\\Users\\José\\Документы\\報告.exe", "C:\\Users\\José\\Документы\\報告.exe"),
        ("Cafe\u0301", "Cafe\u0301"),
        ("plain ascii, spaces", "plain ascii, spaces"),
        ("\x1b[31m\t", "\\x1b[31m\\t"),
    ],
)
def test_legible_shows_invisible_and_look_alike_characters(value: str, shown: str) -> None:
    assert legible(value) == shown


def test_the_table_shows_look_alikes_escaped() -> None:
    frame = pl.DataFrame(
        {"total_bytes_out": [GiB], "process.executable": ["C:\\Windows\u2215System32\u200b.exe"]}
    )
    assert "C:\\Windows\\u2215System32\\u200b.exe" in table_text(frame, width=400)
    pivot = {
        "entities": [{"entity_id": "E\u2060\u00a01", "found": False}],
        "esql": "FROM x",
        "kql": "k",
    }
    assert pivot_text(pivot).splitlines()[0] == "process.entity_id E\\u2060\\xa01"
