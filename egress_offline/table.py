"""Tables to read, fitted to a width: the hunt's and the sweep's rows, pivot's children
and network timeline.

Two layouts, the first that fits:

- **rows**: one line per row, columns in the given order (the most important first),
  numbers right-aligned; a heading folds at ``.``, ``_`` or a space before any value is
  shortened; then the longest text values are shortened in the middle with
  :data:`MARK` (``C:\\Users\\jd…\\rclone.exe``), never below :data:`MIN_SHORTENED`
  cells. An id column (``process.entity_id``) is no column: each id has a line of its
  own under its row, two spaces in, whole, so that it can be copied as it is.
- **records**: a block per row, one ``name  value`` line per column; a long value wraps
  onto the lines below (after a space, ``\\`` or ``/`` where it can), nothing is
  shortened. Ids are on a line of their own, as in rows.

Every line fits the width, but for an id (and pivot's queries), which is never folded:
an id wider than the terminal is left to the terminal to wrap, and copies whole. Values
come here already made :func:`~egress_offline.writers.legible`; this module only lays
them out, measuring text in terminal cells (a CJK character is two, a combining mark
none).
"""

from __future__ import annotations

import os
import re
import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Final, Literal

__all__ = [
    "DEFAULT_WIDTH",
    "MARK",
    "MIN_SHORTENED",
    "MIN_WIDTH",
    "Column",
    "Kind",
    "cells",
    "fitted",
    "labelled",
    "laid_out",
    "shortened",
    "table_width",
    "wrapped",
]

#: The width of a table written to a file or a pipe, when ``COLUMNS`` does not say.
DEFAULT_WIDTH: Final = 200
#: A narrower width (``COLUMNS=20``) is taken as this.
MIN_WIDTH: Final = 40
#: Marks where a shortened value lost its middle.
MARK: Final = "\u2026"
#: A text value is never shortened below this many cells: the table is laid out as
#: records instead.
MIN_SHORTENED: Final = 24
#: Labels of records are this wide at most (``destination.address`` and two spaces); a
#: longer one has its value on the next line.
_LABEL_WIDTH: Final = 21
_GAP: Final = "  "
#: how far in an id's own line starts, under its row, and under its label in a record
_ROW_ID_INDENT: Final = "    "
_RECORD_ID_INDENT: Final = "  "
_RULE: Final = "\u2500"
#: where a heading may fold: after a dot, an underscore or a space
_HEADING_PARTS: Final = re.compile(r"[^._ ]*[._ ]|[^._ ]+")
#: where a wrapped value may break: after one of these (kept on the first line)
_BREAKS: Final = " \\/"

Kind = Literal["text", "time", "number", "id"]


@dataclass(frozen=True)
class Column:
    """A column: its heading and what its values are. ``text`` may be shortened;
    ``time`` never is; ``number`` is right-aligned and never shortened; ``id`` gets a
    line of its own under each row."""

    name: str
    kind: Kind = "text"


def table_width(sink: IO[bytes] | None = None) -> int:
    """The width to fit: ``COLUMNS`` when it is set to a number (as
    :func:`shutil.get_terminal_size` takes it), else the width of the terminal ``sink``
    leads to, else :data:`DEFAULT_WIDTH`; never under :data:`MIN_WIDTH`."""
    given = os.environ.get("COLUMNS", "").strip()
    width = int(given) if given.isdigit() else 0
    if width <= 0 and sink is not None:
        try:
            width = os.get_terminal_size(sink.fileno()).columns
        except (AttributeError, OSError, ValueError):  # not a terminal, or no descriptor
            width = 0
    return max(width or DEFAULT_WIDTH, MIN_WIDTH)


def cells(text: str) -> int:
    """How many terminal cells ``text`` takes."""
    if text.isascii():
        return len(text)
    return sum(_cells(char) for char in text)


def _cells(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _end(text: str, start: int, width: int, *, ascii_only: bool = False) -> int:
    """Where the longest run of ``text`` from ``start`` within ``width`` cells ends, not
    before a combining mark, and at least one character on."""
    if ascii_only:
        return min(start + max(width, 1), len(text))
    used, end = 0, start
    while end < len(text):
        used += _cells(text[end])
        if used > width:
            break
        end += 1
    while start + 1 < end < len(text) and _cells(text[end]) == 0:
        end -= 1
    return max(end, start + 1)


def shortened(text: str, width: int) -> str:
    """``text`` within ``width`` cells: as it is, or its start and its end around
    :data:`MARK` (the end gets the odd cell: a file name matters more than a drive)."""
    if cells(text) <= width:
        return text
    head = (width - 1) // 2
    tail = width - 1 - head
    used, begin = 0, len(text)
    while begin > 0 and used + _cells(text[begin - 1]) <= tail:
        begin -= 1
        used += _cells(text[begin])
    while begin < len(text) and _cells(text[begin]) == 0:  # a mark without its letter
        begin += 1
    end = _end(text, 0, head) if head else 0
    if cells(text[:end]) > head:  # a wide first character: the mark starts it
        end = 0
    return text[:end] + MARK + text[begin:]


def wrapped(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` cells, broken after a space, ``\\`` or
    ``/`` when one is in the line's last two thirds, else where the width ends."""
    ascii_only = text.isascii()
    lines = []
    start = 0
    while True:
        cut = _end(text, start, width, ascii_only=ascii_only)
        if cut >= len(text):
            lines.append(text[start:])
            return lines
        after = max(text.rfind(char, start, cut) for char in _BREAKS) + 1
        if after - start > (cut - start) // 3:
            cut = after
        lines.append(text[start:cut])
        start = cut


def _padded(text: str, width: int, *, right: bool) -> str:
    space = " " * max(width - cells(text), 0)
    return space + text if right else text + space


def _parts(name: str) -> list[str]:
    return _HEADING_PARTS.findall(name) or [""]


def _folded(name: str, width: int) -> list[str]:
    """A heading in lines of at most ``width`` cells, folded between its parts."""
    lines = [""]
    for part in _parts(name):
        if lines[-1] and cells(lines[-1] + part.rstrip()) > width:
            lines.append("")
        lines[-1] += part
    return [line.rstrip() for line in lines]


def _squeezed(widths: list[int], floors: list[int], room: int) -> list[int]:
    """``widths`` brought down to ``room`` (or as near as ``floors`` allow) by cutting
    the widest first: the highest level every width is cut to, then what room is left
    given back one cell each, left to right."""
    if sum(widths) <= room:
        return widths

    def at(level: int) -> list[int]:
        return [max(floor, min(width, level)) for width, floor in zip(widths, floors, strict=True)]

    low, high = 0, max(widths)  # the highest level that fits: at(level) grows with it
    while low < high:
        middle = (low + high + 1) // 2
        if sum(at(middle)) <= room:
            low = middle
        else:
            high = middle - 1
    level = low
    result = at(level)
    spare = room - sum(result)
    for i, width in enumerate(widths):
        if spare <= 0:
            break
        if result[i] == level < width:
            result[i] += 1
            spare -= 1
    return result


@dataclass(frozen=True)
class _Fit:
    lines: list[str]
    shortened: bool


def _rows_layout(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int,
                 indent: str) -> _Fit | None:  # fmt: skip
    """The rows layout within ``width``, or None when it cannot fit."""
    shown = [i for i, column in enumerate(columns) if column.kind != "id"]
    ids = [i for i, column in enumerate(columns) if column.kind == "id"]
    room = width - cells(indent) - len(_GAP) * (len(shown) - 1)
    content = [max((cells(row[i]) for row in rows), default=0) for i in shown]
    longest_part = [max(cells(p.rstrip()) for p in _parts(columns[i].name)) for i in shown]
    natural = [max(c, cells(columns[i].name)) for c, i in zip(content, shown, strict=True)]
    folded = [max(c, p) for c, p in zip(content, longest_part, strict=True)]
    least = [
        max(p, min(c, MIN_SHORTENED)) if columns[i].kind == "text" else f
        for c, p, f, i in zip(content, longest_part, folded, shown, strict=True)
    ]
    widths = _squeezed(_squeezed(natural, folded, room), least, room)
    if sum(widths) > room:
        return None
    headings = [_folded(columns[i].name, w) for i, w in zip(shown, widths, strict=True)]
    right = [columns[i].kind == "number" for i in shown]
    lines = []
    for n in range(max(len(h) for h in headings)):
        cells_ = [h[n] if n < len(h) else "" for h in headings]
        lines.append(_row_line(cells_, widths, right, indent))
    lines += [f"{indent}{_ROW_ID_INDENT}{columns[i].name}" for i in ids]
    lines.append(indent + _RULE * (sum(widths) + len(_GAP) * (len(shown) - 1)))
    cut = False
    for row in rows:
        values = []
        for i, w in zip(shown, widths, strict=True):
            value = shortened(row[i], w)
            cut = cut or value != row[i]
            values.append(value)
        lines.append(_row_line(values, widths, right, indent))
        lines += [f"{indent}{_ROW_ID_INDENT}{row[i] or '-'}" for i in ids]
    return _Fit(lines, cut)


def _row_line(values: list[str], widths: list[int], right: list[bool], indent: str) -> str:
    padded = (_padded(v, w, right=r) for v, w, r in zip(values, widths, right, strict=True))
    return (indent + _GAP.join(padded)).rstrip()


def labelled(label: str, value: str, *, width: int, indent: str = "",
             label_width: int) -> list[str]:  # fmt: skip
    """``label`` then ``value``, wrapped to ``width``; the value starts
    ``label_width`` cells in (on the next line when the label is longer), and so do the
    lines it wraps onto."""
    pad = " " * label_width
    chunks = wrapped(value, max(width - cells(indent) - label_width, 1)) if value else [""]
    if cells(label) >= label_width:
        lines = [indent + label]
        lines += [(indent + pad + chunk).rstrip() for chunk in chunks if chunk]
        return lines
    lines = [(indent + label + " " * (label_width - cells(label)) + chunks[0]).rstrip()]
    lines += [(indent + pad + chunk).rstrip() for chunk in chunks[1:]]
    return lines


def _records_layout(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int,
                    indent: str) -> _Fit:  # fmt: skip
    """A block per row, one labelled line per column, long values wrapped."""
    longest = max(cells(column.name) for column in columns if column.kind != "id")
    label_width = min(longest + 2, _LABEL_WIDTH, (width - cells(indent)) // 2)
    lines: list[str] = []
    for number, row in enumerate(rows):
        if number:
            lines.append("")
        for column, value in zip(columns, row, strict=True):
            if column.kind == "id":
                lines += [indent + column.name, f"{indent}{_RECORD_ID_INDENT}{value or '-'}"]
            else:
                lines += labelled(
                    column.name, value, width=width, indent=indent, label_width=label_width
                )
    return _Fit(lines, False)


def laid_out(columns: Sequence[Column], rows: Sequence[Sequence[str]], *, width: int,
             indent: str = "") -> tuple[list[str], bool]:  # fmt: skip
    """The lines of a table of ``rows`` (text, one per column) within ``width``: the rows
    layout when it fits, else records; and whether a value was shortened."""
    if all(column.kind == "id" for column in columns):
        raise ValueError("a table needs a column that is not an id")
    fit = _rows_layout(columns, rows, width, indent) or _records_layout(
        columns, rows, width, indent
    )
    return fit.lines, fit.shortened


def fitted(columns: Sequence[Column], rows: Sequence[Sequence[str]], *, width: int,
           whole: str) -> str:  # fmt: skip
    """The table as text, and under it, when a value was shortened, a note that says so
    and where the values are whole (``whole``, such as ``--format csv``)."""
    lines, cut = laid_out(columns, rows, width=width)
    if cut:
        note = f"{MARK} marks a value shortened to fit {width} columns; {whole} shows them whole."
        lines += textwrap.wrap(note, width, break_on_hyphens=False)
    return "\n".join(lines) + "\n"
