"""Writers: the flagged rows as CSV, NDJSON, JSON, Parquet or a terminal table.

Values are evidence: data formats write them verbatim to a file or a pipe. What goes to
a terminal is made safe to look at, since the values are attacker-chosen: in CSV, NDJSON
and JSON, control characters, escape sequences and BiDi controls are shown escaped
(:func:`inert`; JSON's own ``\\u001b`` escapes in JSON, which still parse to the same
values); the table (:func:`legible`), meant to be read, also shows the characters that
would make a value read as another: invisible ones and look-alikes of path separators.
Where files go, and how they are written, is :mod:`egress_offline.outputs`.
"""

from __future__ import annotations

import io
import json
import re
import unicodedata
from pathlib import Path
from typing import IO, Any, Final, Literal

import polars as pl

from egress_offline.errors import UsageError

__all__ = [
    "FORMATS",
    "PIVOT_FORMATS",
    "OutputFormat",
    "format_for",
    "human_bytes",
    "inert",
    "is_terminal",
    "legible",
    "pivot_text",
    "render",
    "render_pivot",
    "table_text",
]

OutputFormat = Literal["csv", "ndjson", "json", "parquet", "table"]
FORMATS: Final = ("csv", "ndjson", "json", "parquet", "table")
_EXTENSIONS: Final = {
    ".csv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "json",
    ".parquet": "parquet",
    ".txt": "table",
}
#: What a terminal may act on: C0 and C1 controls (ESC starts ANSI and OSC sequences),
#: DEL, the BiDi controls and the byte order mark.
_UNSAFE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
#: The same in JSON text, but for the white space between values (in a string, JSON
#: writers escape every control character already).
_UNSAFE_IN_JSON: Final = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
#: Look-alikes of the characters that give a path, a host or a user name its structure
#: (``/ \ : .``), from Unicode's confusables, symbols only (letters and digits of other
#: scripts are left alone): ``C:\Windows\u2215System32`` is not in System32.
_LOOKALIKES: Final = frozenset(
    "\u2044\u2215\u2571\u27cb\u29f8\uff0f\u0337\u0338"  # slash; combining, drawn over
    "\u2216\u2572\u27cd\u29f5\u29f9\ufe68\uff3c\u20e5"  # backslash
    "\u0589\u05c3\u2236\ua789\ufe13\ufe55\uff1a"  # colon
    "\u2024\ufe52\uff0e"  # full stop
)
_ISO_MS: Final = "%Y-%m-%dT%H:%M:%S%.3fZ"


def format_for(output: Path | None, requested: str | None, *, terminal: bool,
               formats: tuple[str, ...] = FORMATS, piped: str = "csv",
               extensions: str = ".csv, .ndjson, .json or .parquet",
               command: str = "", written_through: bool = False) -> OutputFormat:  # fmt: skip
    """``--format`` if given (one of ``formats``); else from the output file's last known
    extension; else ``table`` on a terminal and ``piped`` when piped, or when the output
    is ``written_through`` (a device, a FIFO: ``-o /dev/stdout``). ``extensions`` and
    ``command`` word the messages."""
    of = f" for {command}" if command else ""
    if requested:
        if requested not in formats:
            raise UsageError(f"--format: {requested!r} is not one of {', '.join(formats)}{of}")
        return requested  # type: ignore[return-value]
    if output is not None:
        known = [_EXTENSIONS[s] for s in (s.lower() for s in output.suffixes) if s in _EXTENSIONS]
        if known and known[-1] in formats:
            return known[-1]  # type: ignore[return-value]
        if written_through:
            return piped  # type: ignore[return-value]
        raise UsageError(
            f"--output: cannot tell the format from {output.name!r}; "
            f"add --format ({', '.join(formats)}) or use {extensions}"
        )
    return "table" if terminal else piped  # type: ignore[return-value]


def _flat_text(rows: pl.DataFrame) -> pl.DataFrame:
    """Timestamps as ISO-8601 text; a context list as its one value, or as a JSON array
    when it holds several, so that no boundary between values is lost."""
    exprs = []
    for name, dtype in rows.schema.items():
        if isinstance(dtype, pl.Datetime):
            exprs.append(pl.col(name).dt.to_string(_ISO_MS))
        elif isinstance(dtype, pl.List):
            exprs.append(
                pl.when(pl.col(name).list.len() == 0)
                .then(pl.lit(None, dtype=pl.String))
                .when(pl.col(name).list.len() == 1)
                .then(pl.col(name).list.first())
                .otherwise(
                    pl.col(name).map_elements(
                        lambda values: json.dumps(list(values), ensure_ascii=False),
                        return_dtype=pl.String,
                    )
                )
                .alias(name)
            )
        else:
            exprs.append(pl.col(name))
    return rows.select(exprs)


def _json_ready(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.with_columns(
        pl.col(name).dt.to_string(_ISO_MS)
        for name, dtype in rows.schema.items()
        if isinstance(dtype, pl.Datetime)
    )


def _excel_safe(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.with_columns(
        pl.when(pl.col(name).str.contains(r"^[=+\-@\t\r]"))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name, dtype in rows.schema.items()
        if dtype == pl.String
    )


def render(rows: pl.DataFrame, fmt: OutputFormat, sink: IO[bytes], *,
           excel_safe: bool = False, terminal: bool | None = None) -> None:  # fmt: skip
    """Write ``rows`` in ``fmt`` to a binary sink. On a ``terminal`` (by default: if
    ``sink`` is one) what a terminal may act on is shown escaped in every format;
    elsewhere values are written verbatim."""
    if terminal is None:
        terminal = is_terminal(sink)
    if fmt == "csv":
        flat = _flat_text(rows)
        if excel_safe:
            flat = _excel_safe(flat)
        if terminal:
            flat = _inert_strings(flat)
        flat.write_csv(sink)
    elif fmt == "ndjson":
        if rows.height and terminal:
            sink.write(_json_inert(_json_ready(rows).write_ndjson()).encode("utf-8"))
        elif rows.height:
            _json_ready(rows).write_ndjson(sink)
    elif fmt == "json":
        text = json.dumps(_json_ready(rows).to_dicts(), ensure_ascii=False, indent=2)
        sink.write((_json_inert(text) if terminal else text).encode("utf-8") + b"\n")
    elif fmt == "parquet":
        if terminal:  # -o /dev/tty: found only now, when it is open
            raise UsageError("--format parquet: will not write binary to a terminal; add -o FILE")
        rows.write_parquet(sink)
    else:
        sink.write(table_text(rows).encode("utf-8"))


def inert(value: str) -> str:
    """A string safe to show on a terminal: control characters, escapes and BiDi
    controls become visible ``\\x1b``/``\\u202e`` escapes."""
    return _UNSAFE.sub(lambda m: _escaped(m.group()), value)


def legible(value: str) -> str:
    """A string to read, in a table: :func:`inert`, and the characters that would make it
    read as another string are shown as escapes too. Those are every character of
    Unicode's categories C (controls, format characters such as the zero-width U+200B
    and U+2060, the BOM, private use, unassigned) and Z (separators: no-break and other
    spaces but U+0020, line and paragraph separators), and :data:`_LOOKALIKES`, the
    look-alikes of ``/ \\ : .`` (U+2215 DIVISION SLASH: ``C:\\x\\u2215y.exe``)."""
    if value.isascii():
        return inert(value)
    return "".join(_escaped(char) if _hidden(char) else char for char in value)


def _hidden(char: str) -> bool:
    return char in _LOOKALIKES or (char != " " and unicodedata.category(char)[0] in "CZ")


def _escaped(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")


def is_terminal(sink: IO[bytes]) -> bool:
    """Does ``sink`` lead to a terminal, where what is written is shown, not kept?"""
    try:
        return sink.isatty()
    except (AttributeError, OSError, ValueError):  # no such question, or closed
        return False


def _json_inert(text: str) -> str:
    """JSON text with the characters a terminal may act on as JSON ``\\u`` escapes:
    still valid JSON, which parses to the same values."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _inert_strings(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.with_columns(
        pl.Series(name, [None if v is None else inert(v) for v in rows[name]], dtype=pl.String)
        for name, dtype in rows.schema.items()
        if dtype == pl.String
    )


def human_bytes(count: int | None) -> str:
    if count is None:
        return ""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def table_text(rows: pl.DataFrame, *, width: int | None = None) -> str:
    """The rows as a readable table. Values are passed to rich as plain ``Text``, never
    as markup, after :func:`legible`, so nothing in them can style or take the terminal,
    or pass for another value."""
    from rich.console import Console  # noqa: PLC0415 - only the table needs rich
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    if rows.height == 0:
        return "No group reached the threshold.\n"
    table = Table(show_lines=False, header_style="bold")
    for name in rows.columns:
        table.add_column(
            Text(name),
            overflow="fold",
            justify="right" if name in ("total_bytes_out", "peak_bytes", "connections") else "left",
        )
    for record in rows.iter_rows(named=True):
        cells = []
        for name, value in record.items():
            if name in ("total_bytes_out", "peak_bytes"):
                text = human_bytes(value)
            elif value is None:
                text = ""
            elif isinstance(value, list):
                text = ", ".join(str(v) for v in value)
            elif hasattr(value, "strftime"):
                text = value.strftime("%Y-%m-%d %H:%M:%S")
            else:
                text = str(value)
            cells.append(Text(legible(text)))
        table.add_row(*cells)
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width or 200,
        force_terminal=False,
        no_color=True,
        highlight=False,
        markup=False,
        emoji=False,
    )
    console.print(table)
    return buffer.getvalue()


# ------------------------------------------------------------------------------ pivot

PIVOT_FORMATS: Final = ("table", "json", "ndjson")


def render_pivot(
    pivot: dict[str, Any], fmt: str, sink: IO[bytes], *, terminal: bool | None = None
) -> None:
    """A pivot result (its ``as_dict()``): JSON whole, NDJSON one line per entity id,
    or a text report to read. ``terminal`` as for :func:`render`."""
    shown = _json_inert if (is_terminal(sink) if terminal is None else terminal) else str
    if fmt == "json":
        text = json.dumps(pivot, ensure_ascii=False, indent=2)
        sink.write(shown(text).encode("utf-8") + b"\n")
    elif fmt == "ndjson":
        for entity in pivot["entities"]:
            sink.write(shown(json.dumps(entity, ensure_ascii=False)).encode("utf-8") + b"\n")
    else:
        sink.write(pivot_text(pivot).encode("utf-8"))


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return legible(", ".join(str(v) for v in value))
    return legible(str(value))


def _process_lines(process: dict[str, Any], indent: str) -> list[str]:
    signature = process.get("process.code_signature.subject_name")
    trusted = process.get("process.code_signature.trusted")
    status = process.get("process.code_signature.status")
    if signature is not None or trusted is not None:
        signed = f"{_shown(signature)} (trusted: {_shown(trusted)}, status: {_shown(status)})"
    elif process.get("process.code_signature.exists") == "false":
        signed = "unsigned (exists: false)"
    else:
        signed = "none recorded"
    user = process.get("user.name")
    domain = process.get("user.domain")
    who = _shown(user) if domain is None else f"{_shown(domain)}\\{_shown(user)}"
    pairs = [
        ("executable", _shown(process.get("process.executable"))),
        ("pid", _shown(process.get("process.pid"))),
        ("host / user", f"{_shown(process.get('host.name'))} / {who}"),
        ("started", _shown(process.get("@timestamp"))),
        ("command line", _shown(process.get("process.command_line"))),
        ("sha256", _shown(process.get("process.hash.sha256"))),
        ("sha1", _shown(process.get("process.hash.sha1"))),
        ("md5", _shown(process.get("process.hash.md5"))),
        ("code signature", signed),
    ]
    return [f"{indent}{label:<15} {value}" for label, value in pairs]


#: The pivot report's two tables: (heading, key) per column.
_CHILD_COLUMNS: Final = (
    ("started", "@timestamp"),
    ("pid", "process.pid"),
    ("executable", "process.executable"),
    ("command line", "process.command_line"),
    ("entity id", "process.entity_id"),
)
_NETWORK_COLUMNS: Final = (
    ("first seen", "first_seen"),
    ("last seen", "last_seen"),
    ("destination", "destination.address"),
    ("ip", "destination.ip"),
    ("port", "destination.port"),
    ("bytes out", "bytes_out"),
    ("bytes in", "bytes_in"),
    ("connections", "connections"),
    ("events", "events"),
)


def _columns(
    columns: tuple[tuple[str, str], ...], records: list[dict[str, Any]], indent: str
) -> list[str]:
    """``records`` as aligned text columns under their headings; nothing when empty."""
    if not records:
        return []
    rows = [[heading for heading, _ in columns]]
    rows += [[_shown(record[key]) for _, key in columns] for record in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return [
        indent
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def pivot_text(pivot: dict[str, Any]) -> str:
    """The text report of a pivot: per entity id, its process, parent, children, network
    timeline, and the queries to run on a cluster."""
    lines: list[str] = []
    for entity in pivot["entities"]:
        lines.append(f"process.entity_id {legible(entity['entity_id'])}")
        if not entity["found"]:
            lines.append(
                "  not found: no event in the export has this process.entity_id or "
                "process.parent.entity_id"
            )
            lines.append("")
            continue
        process = entity["process"]
        source = entity["process_source"]
        lines.append(f"  {entity['events']} events; process from its {source}")
        lines.extend(_process_lines(process, "  "))
        parent = entity["parent"]
        if parent is not None:
            lines.append("  parent (its start event)")
            lines.append(f"    {'entity id':<15} {_shown(parent['process.entity_id'])}")
            lines.extend(_process_lines(parent, "    "))
        else:
            parent_id = process.get("process.parent.entity_id")
            lines.append(f"  parent          {_shown(parent_id)} (no start event in the export)")
        children = entity["children"]
        lines.append(f"  children ({len(children)})")
        lines.extend(_columns(_CHILD_COLUMNS, children, "    "))
        network = entity["network"]
        lines.append(f"  network, per destination ({len(network)})")
        lines.extend(_columns(_NETWORK_COLUMNS, network, "    "))
        lines.append("")
    lines.append("ES|QL (paste into Discover or the ES|QL console):")
    lines.extend("  " + inert(line) for line in pivot["esql"].splitlines())
    lines.append("KQL:")
    lines.append("  " + inert(pivot["kql"]))
    return "\n".join(lines) + "\n"
