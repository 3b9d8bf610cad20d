"""The HTML pieces every report page is built of: sections, key-value tables, data
tables, the evidence (inputs with their SHA-256), the flagged rows. Every value from the
export goes through :func:`~egress_offline.html.page.text`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

import polars as pl

from egress_offline.html.page import text
from egress_offline.readers import FileReport
from egress_offline.timetext import times_as_text, within_python
from egress_offline.writers import human_bytes

__all__ = [
    "MAX_TABLE_ROWS",
    "cell",
    "evidence",
    "key_values",
    "outputs_written",
    "rows_table",
    "section",
    "table",
    "warnings",
]

#: rows of one table; past them the page says how many more there are
MAX_TABLE_ROWS: Final = 5000
_TIME_COLUMNS: Final = frozenset({"@timestamp", "first_seen", "last_seen"})
_BYTE_COLUMNS: Final = frozenset(
    {"total_bytes_out", "peak_bytes", "bytes_out", "bytes_in", "size_bytes", "threshold_bytes"}
)


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{title}</h2>\n{body}\n</section>'


def cell(name: str, value: Any) -> str:
    """One value as the text of a table cell: byte counts exact and readable, times in
    ISO-8601 UTC, lists joined, the rest as text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and name in _BYTE_COLUMNS:
        return f"{value:,}<br><span class=note>{human_bytes(value)}</span>"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return text(value)


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column table: our own labels, and values (escaped)."""
    body = "".join(f"<tr><th>{label}</th><td>{cell(label, v)}</td></tr>" for label, v in pairs)
    return f'<table class="kv">{body}</table>'


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Iterable[str] = (),
    mono: Iterable[str] = (),
    total: int | None = None,
) -> str:
    """A data table of at most :data:`MAX_TABLE_ROWS` rows; ``total`` is the number of
    rows there are, said when more than shown. Column names are escaped too."""
    right, fixed = set(numeric), set(mono)
    head = "".join(
        f'<th class="{"n" if name in right else ""}">{text(name)}</th>' for name in columns
    )
    lines = []
    for number, row in enumerate(rows):
        if number == MAX_TABLE_ROWS:
            break
        cells = []
        for name, value in zip(columns, row, strict=True):
            kind = "n" if name in right else "mono" if name in fixed else _time_class(name, value)
            cells.append(f'<td class="{kind}">{cell(name, value)}</td>')
        lines.append(f"<tr>{''.join(cells)}</tr>")
    shown = len(lines)
    more = ""
    if total is not None and total > shown:
        more = f'<p class="note">The first {shown:,} of {total:,} rows; the rest are in -o.</p>'
    return (
        f'<div class="wide"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(lines)}</tbody></table></div>{more}"
    )


def _time_class(name: str, value: Any) -> str:
    """Times (pivot's are ISO-8601 text) are kept on one line (``t``)."""
    return "t" if isinstance(value, datetime) or name in _TIME_COLUMNS else ""


def rows_table(rows: pl.DataFrame) -> str:
    """The flagged rows, every column, in the output's order."""
    if rows.height == 0:
        return '<p class="note">No group reached the threshold.</p>'
    numeric = [n for n in rows.columns if rows.schema[n].is_integer()]
    mono = [n for n in rows.columns if n in ("process.entity_id", "process.executable")]
    head = rows.head(MAX_TABLE_ROWS)
    if not within_python(head):  # years past 9999, which a date field holds
        head = times_as_text(head)
    return table(rows.columns, head.iter_rows(), numeric=numeric, mono=mono, total=rows.height)


_INPUT_COLUMNS: Final = (
    "path",
    "format",
    "compression",
    "size_bytes",
    "sha256",
    "records",
    "malformed",
    "duplicates",
    "reader",
)


def evidence(files: list[FileReport], skipped: list[str]) -> str:
    """The inputs read, each with its size and SHA-256, and the paths skipped."""
    rows = [
        (
            file.name,
            f"{file.format} ({file.layout}, {file.encoding})",
            file.compression,
            file.size,
            file.sha256 or "not computed",
            file.records,
            file.malformed,
            file.duplicates,
            file.reader,
        )
        for file in files
    ]
    body = table(
        _INPUT_COLUMNS,
        rows,
        numeric=("size_bytes", "records", "malformed", "duplicates"),
        mono=("path", "sha256"),
        total=len(rows),
    )
    damaged = [
        f"<li>{text(file.name)}: {text(file.damage or '')} {text('; '.join(file.positions))}</li>"
        for file in files
        if file.damage or file.positions
    ]
    if damaged:
        body += f"<h3>Malformed records and damage</h3><ul>{''.join(damaged)}</ul>"
    notes = [f"<li>{text(file.name)}: {text(note)}</li>" for file in files for note in file.notes]
    if notes:
        body += f"<h3>Notes</h3><ul>{''.join(notes)}</ul>"
    if skipped:
        listed = "".join(f"<li>{text(path)}</li>" for path in skipped[:MAX_TABLE_ROWS])
        body += f"<h3>Skipped paths ({len(skipped):,})</h3><ul>{listed}</ul>"
    return body


def outputs_written(outputs: list[dict[str, Any]]) -> str:
    """The files the run wrote before this page (as the report's ``outputs``), each with
    its size and SHA-256; the page's own digest is in the JSON report, written after it."""
    note = (
        '<p class="note">This page\'s own SHA-256 is recorded by --report, which is '
        "written after it.</p>"
    )
    if not outputs:
        return f"<h3>Files written before this page</h3><p class=note>None.</p>{note}"
    rows = [
        (
            record["option"],
            record["path"],
            "written through" if record["written_through"] else record["size_bytes"],
            record["sha256"] or "",
        )
        for record in outputs
    ]
    columns = ("option", "path", "size_bytes", "sha256")
    body = table(columns, rows, numeric=("size_bytes",), mono=("path", "sha256"))
    return f"<h3>Files written before this page</h3>{body}{note}"


def warnings(notes: list[str]) -> str:
    return "".join(f'<p class="warn">{text(note)}</p>' for note in notes)
