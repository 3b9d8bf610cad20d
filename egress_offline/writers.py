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

import json
import re
import textwrap
import unicodedata
from pathlib import Path
from typing import IO, Any, Final, Literal

import polars as pl

from egress_offline.errors import UsageError
from egress_offline.table import MARK, Column, Kind, cells, fitted, labelled, laid_out, table_width
from egress_offline.timetext import times_as_text

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


#: Times in the table to read: to the second (out-of-range years as ISO-8601, see
#: :func:`~egress_offline.timetext.times_as_text`).
_TABLE_TIME: Final = "%Y-%m-%d %H:%M:%S"


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
    rows = times_as_text(rows)
    exprs = []
    for name, dtype in rows.schema.items():
        if isinstance(dtype, pl.List):
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
            sink.write(_json_inert(times_as_text(rows).write_ndjson()).encode("utf-8"))
        elif rows.height:
            times_as_text(rows).write_ndjson(sink)
    elif fmt == "json":
        text = json.dumps(times_as_text(rows).to_dicts(), ensure_ascii=False, indent=2)
        sink.write((_json_inert(text) if terminal else text).encode("utf-8") + b"\n")
    elif fmt == "parquet":
        if terminal:  # -o /dev/tty: found only now, when it is open
            raise UsageError("--format parquet: will not write binary to a terminal; add -o FILE")
        rows.write_parquet(sink)
    else:
        sink.write(table_text(rows, width=table_width(sink)).encode("utf-8"))


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
    look-alikes of ``/ \\ : .`` (U+2215 DIVISION SLASH: ``C:\\x\\u2215y.exe``), and the
    table's :data:`~egress_offline.table.MARK` (U+2026), so that a value's own never
    passes for a shortened one."""
    if value.isascii():
        return inert(value)
    return "".join(_escaped(char) if _hidden(char) else char for char in value)


def _hidden(char: str) -> bool:
    return (
        char in _LOOKALIKES
        or char == MARK  # the table's own mark of a shortened value
        or (char != " " and unicodedata.category(char)[0] in "CZ")
    )


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


#: Columns whose values are identifiers to copy (into ``pivot``): never shortened nor
#: folded, each on a line of its own.
_ID_COLUMNS: Final = ("process.entity_id", "process.parent.entity_id")
_BYTE_COLUMNS: Final = ("total_bytes_out", "peak_bytes")
#: a text column whose every value is a number, or a list of numbers (ports)
_NUMBERS: Final = re.compile(r"\d+(, \d+)*")


def _cell(name: str, value: Any) -> str:
    if name in _BYTE_COLUMNS:
        return human_bytes(value)
    if value is None:
        return ""
    if isinstance(value, list):
        return legible(", ".join(str(v) for v in value))
    return legible(str(value))


def _kind(name: str, dtype: pl.DataType, values: list[str]) -> Kind:
    if name in _ID_COLUMNS:
        return "id"
    if name in _BYTE_COLUMNS or dtype.is_numeric():
        return "number"
    if isinstance(dtype, pl.Datetime):
        return "time"
    if any(values) and all(_NUMBERS.fullmatch(v) for v in values if v):
        return "number"
    return "text"


def table_text(rows: pl.DataFrame, *, width: int | None = None) -> str:
    """The rows as a table to read, fitted to ``width`` (by default
    :func:`~egress_offline.table.table_width`), laid out by :mod:`egress_offline.table`:
    ``process.entity_id`` whole on a line of its own, byte sizes readable, numbers
    right-aligned, long values shortened with a mark (or wrapped, when the table is laid
    out as records). Every value is :func:`legible` first, and is never taken as
    markup."""
    if rows.height == 0:
        return "No group reached the threshold.\n"
    texts = [
        [_cell(name, value) for name, value in record.items()]
        for record in times_as_text(rows, _TABLE_TIME).iter_rows(named=True)
    ]
    columns = [
        Column(name, _kind(name, dtype, [row[i] for row in texts]))
        for i, (name, dtype) in enumerate(rows.schema.items())
    ]
    return fitted(columns, texts, width=width or table_width(), whole="--format csv or json")


# ------------------------------------------------------------------------------ pivot

PIVOT_FORMATS: Final = ("table", "json", "ndjson")


def render_pivot(
    pivot: dict[str, Any], fmt: str, sink: IO[bytes], *, terminal: bool | None = None
) -> None:
    """A pivot result (its ``as_dict()``): JSON whole, NDJSON one line per entity id,
    or a text report to read, fitted to the sink's width (see :func:`table_text`).
    ``terminal`` as for :func:`render`."""
    shown = _json_inert if (is_terminal(sink) if terminal is None else terminal) else str
    if fmt == "json":
        text = json.dumps(pivot, ensure_ascii=False, indent=2)
        sink.write(shown(text).encode("utf-8") + b"\n")
    elif fmt == "ndjson":
        for entity in pivot["entities"]:
            sink.write(shown(json.dumps(entity, ensure_ascii=False)).encode("utf-8") + b"\n")
    else:
        sink.write(pivot_text(pivot, width=table_width(sink)).encode("utf-8"))


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return legible(", ".join(str(v) for v in value))
    return legible(str(value))


_LABEL: Final = 16  # where a value starts after its label, in the pivot report


def _id_lines(label: str, entity: Any, *, indent: str, width: int, after: str = "") -> list[str]:
    """``label``, an id and ``after`` on one line when they fit; else the id on a line of
    its own under the label, whole, as the tables show ids."""
    value = _shown(entity)
    line = f"{indent}{label:<{_LABEL - 1}} {value}{after}"
    if cells(line) <= width:
        return [line]
    return [f"{indent}{label}{after}", f"{indent}  {value}"]


def _process_lines(process: dict[str, Any], indent: str, *, started: str,
                   width: int) -> list[str]:  # fmt: skip
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
        ("started", started),
        ("command line", _shown(process.get("process.command_line"))),
    ]
    lines = [
        line
        for label, value in pairs
        for line in labelled(label, value, width=width, indent=indent, label_width=_LABEL)
    ]
    for name in ("sha256", "sha1", "md5"):  # to be copied, as ids are: never folded
        lines += _id_lines(name, process.get(f"process.hash.{name}"), indent=indent, width=width)
    return lines + labelled(
        "code signature", signed, width=width, indent=indent, label_width=_LABEL
    )


def _started(entity: dict[str, Any]) -> str:
    """When the process started: its start event's time, never the first event seen."""
    if entity["started"] is not None:
        return legible(entity["started"])
    if entity["first_seen"] is None:
        return "unknown (no start event, and no event of its own)"
    return f"unknown (no start event; first seen {legible(entity['first_seen'])})"


#: The pivot report's two tables: (heading, key, kind) per column.
_CHILD_COLUMNS: Final[tuple[tuple[str, str, Kind], ...]] = (
    ("started", "@timestamp", "time"),
    ("first seen", "first_seen", "time"),
    ("pid", "process.pid", "number"),
    ("executable", "process.executable", "text"),
    ("command line", "process.command_line", "text"),
    ("entity id", "process.entity_id", "id"),
)
_NETWORK_COLUMNS: Final[tuple[tuple[str, str, Kind], ...]] = (
    ("first seen", "first_seen", "time"),
    ("last seen", "last_seen", "time"),
    ("destination", "destination.address", "text"),
    ("ip", "destination.ip", "text"),
    ("port", "destination.port", "number"),
    ("bytes out", "bytes_out", "number"),
    ("bytes in", "bytes_in", "number"),
    ("connections", "connections", "number"),
    ("events", "events", "number"),
)


def _table(columns: tuple[tuple[str, str, Kind], ...], records: list[dict[str, Any]],
           width: int) -> tuple[list[str], bool]:  # fmt: skip
    """``records`` as a table under their headings, four spaces in; nothing when empty."""
    if not records:
        return [], False
    rows = [
        ["unknown" if key == "@timestamp" and record[key] is None else _shown(record[key])
         for _, key, _kind in columns]
        for record in records
    ]  # fmt: skip
    heads = [Column(heading, kind) for heading, _, kind in columns]
    return laid_out(heads, rows, width=width, indent="    ")


def pivot_text(pivot: dict[str, Any], *, width: int | None = None) -> str:
    """The text report of a pivot: per entity id, its process, parent, children, network
    timeline, and the queries to run on a cluster; fitted to ``width`` (by default
    :func:`~egress_offline.table.table_width`) but for the ids and the queries, which
    are whole on their lines, to be copied."""
    width = width or table_width()
    lines: list[str] = []
    cut = False
    for entity in pivot["entities"]:
        lines += _id_lines("process.entity_id", entity["entity_id"], indent="", width=width)
        if not entity["found"]:
            lines += textwrap.wrap(
                "not found: no event in the export has this process.entity_id or "
                "process.parent.entity_id", width, initial_indent="  ", subsequent_indent="    "
            )  # fmt: skip
            lines.append("")
            continue
        process = entity["process"]
        if process is None:
            lines.append("  no event of its own in the export; only its children's")
        else:
            lines.append(
                f"  {entity['events']} events; process from its {entity['process_source']}"
            )
            lines += _process_lines(process, "  ", started=_started(entity), width=width)
        parent = entity["parent"]
        if parent is not None:
            lines.append("  parent (its start event)")
            lines += _id_lines("entity id", parent["process.entity_id"], indent="    ", width=width)
            lines += _process_lines(
                parent, "    ", started=_shown(parent["@timestamp"]), width=width
            )
        elif process is not None:
            lines += _id_lines(
                "parent", process.get("process.parent.entity_id"), indent="  ", width=width,
                after=" (no start event in the export)",
            )  # fmt: skip
        children = entity["children"]
        lines.append(f"  children ({len(children)})")
        table, shortened = _table(_CHILD_COLUMNS, children, width)
        lines += table
        network = entity["network"]
        lines.append(f"  network, per destination ({len(network)})")
        more, shortened_more = _table(_NETWORK_COLUMNS, network, width)
        lines += more
        cut = cut or shortened or shortened_more
        lines.append("")
    if cut:
        lines += textwrap.wrap(
            f"{MARK} marks a value shortened to fit {width} columns; --format json shows "
            "them whole.", width,
        )  # fmt: skip
    lines.append("ES|QL (paste into Discover or the ES|QL console):")
    lines.extend("  " + inert(line) for line in pivot["esql"].splitlines())
    lines.append("KQL:")
    lines.append("  " + inert(pivot["kql"]))
    return "\n".join(lines) + "\n"
