"""Sniffing: what a file holds, told from its first bytes, never from its name.

The first 64 KiB of text (decompressed, and made UTF-8 with ``\\n`` line ends when it is
UTF-16 or ends its lines with ``\\r`` alone) tell the format and layout, and whether the
records there hold any field the hunt reads at all, in any layout this tool knows. A file
whose records hold none is not understood: an error when named, skipped and listed in a
directory walk, so that a layout the tool does not know never reads as "found nothing".
When the first records hold none, the rest of the text is searched for the fields' keys
first: an export whose first records are something else is read.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from egress_offline.errors import InputError, first_line
from egress_offline.fields import HUNT, META_ID, META_INDEX
from egress_offline.readers import tuning
from egress_offline.readers.bulk import is_action
from egress_offline.readers.compression import PARQUET_MAGIC, compression_of, decompressed
from egress_offline.readers.csv import csv_columns
from egress_offline.readers.decode import python_fields, strict_load
from egress_offline.readers.esql import is_esql
from egress_offline.readers.model import Compression, Encoding, Format, InputFile, Layout

__all__ = ["KNOWN_LAYOUTS", "describe", "describe_file", "peek_text", "sniff_json"]

#: The layouts this tool reads, named in messages about a file that is none of them.
KNOWN_LAYOUTS: Final = (
    "NDJSON of documents or hits (elasticdump, Logstash), a JSON array, a _search, "
    "_async_search or ES|QL response, a scroll dump, a _bulk body, a Kibana esArchiver "
    "archive, a Kibana CSV export, or Parquet (each optionally gzip or zstd, UTF-8 or "
    "UTF-16)"
)
_UTF16: Final = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}
_FIRST_KEY: Final = re.compile(rb'^\{\s*"([^"]{1,40})"\s*:')
#: Keys a response (search, scroll, async, ES|QL) may open with, and no document does.
_RESPONSE_KEYS: Final = frozenset({"took", "timed_out", "_scroll_id", "pit_id", "hits", "_shards",
                                   "columns", "all_columns", "values", "is_running",
                                   "is_partial", "response", "start_time_in_millis"})  # fmt: skip


class NotUnderstood(Exception):
    """A file that is none of the layouts read, or whose records hold no field read:
    ``str()`` says why to a user who named it, ``short`` to one who walked past it."""

    def __init__(self, reason: str, short: str | None = None) -> None:
        super().__init__(reason)
        self.short = short or reason


class NoFieldSeen(NotUnderstood):
    """The first records hold no field read; the records after them may
    (:func:`_may_hold_fields`)."""


#: The first key of each field read, quoted whole (``"process"``) or opening a dotted
#: name (``"process.``): every record that holds a field, in any layout, nested or
#: dotted, holds one of them as written (or an escape, ``\u``, that spells one)
_FIELD_KEYS: Final = tuple(
    sorted({f'"{name.split(".")[0]}{end}' for name in HUNT.names for end in '".'})
)


def describe(path: Path, *, name: str, explicit: bool) -> InputFile | str:
    """Sniff a local file. A file that is not understood is an error if named
    (``explicit``), else the reason to skip it."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(
            f"{name}: cannot be read ({exc.strerror}); check its permissions", file=name
        ) from exc
    return describe_file(InputFile(path, name, size, "ndjson", "none"), explicit=explicit)


def describe_file(found: InputFile, *, explicit: bool) -> InputFile | str:
    """Sniff a file found (its place, name and size known; a local path or a URI): what
    it holds, as :func:`describe` tells it."""
    name = found.name
    try:
        return _describe(found)
    except NotUnderstood as reason:
        if explicit:
            raise InputError(f"{name}: {reason}", file=name) from None
        return reason.short
    except OSError as exc:
        hint = "check the URI and the credentials" if found.uri else "check its permissions"
        raise InputError(
            f"{name}: cannot be read ({exc.strerror or first_line(exc, 300)}); {hint}", file=name
        ) from exc


def _describe(found: InputFile) -> InputFile:
    size, name = found.size, found.name
    with found.open() as handle:
        head = handle.read(4)
    if head == PARQUET_MAGIC:
        _check_parquet(found)
        return replace(found, format="parquet", understood=True)
    compression = compression_of(head)
    if size == 0:
        if name.endswith((".gz", ".zst", ".parquet")):
            raise NotUnderstood("is empty (0 bytes); the copy is incomplete, export it again")
        return found
    peek, produced, consumed = peek_text(found, compression, size)
    encoding = _utf16(peek)
    if encoding != "utf-8":
        # the peek may end inside a character: decoded as far as it is whole
        peek = peek[2:].decode(encoding, errors="ignore").encode("utf-8")
    carriage = b"\r" in peek and b"\n" not in peek
    if carriage:
        peek = peek.replace(b"\r", b"\n")
    try:
        fmt, layout, understood = _layout(peek)
    except NoFieldSeen:
        if not _may_hold_fields(found, compression, encoding):
            raise
        fmt, layout, understood = _layout(peek, check=False)  # told when it is read
    lines = peek.count(b"\n")
    return replace(
        found, format=fmt, compression=compression,
        text_size=size * produced // consumed if consumed else 0,
        line_bytes=len(peek) // lines if lines and not carriage else 0,
        layout=layout, encoding=encoding, carriage_returns=carriage, understood=understood,
    )  # fmt: skip


def _may_hold_fields(found: InputFile, compression: Compression, encoding: Encoding) -> bool:
    """May a record after the first ones hold a field read? Only if the text holds one of
    the fields' first keys after a quote (:data:`_FIELD_KEYS`), or an escape that may
    spell one: looked for through the whole text, a bounded piece at a time. (A file
    whose first records hold no field was refused unread: an export whose first records
    were something else could not be read at all, and was said to hold no such record.)"""
    tokens = [token.encode(encoding) for token in (*_FIELD_KEYS, "\\u")]
    keep = max(len(token) for token in tokens) - 1
    tail = b""
    with found.open() as handle:
        for piece in decompressed(handle, compression, lambda _damage: None):
            seam = tail + piece[:keep]  # a token across two pieces; each piece searched whole
            if any(token in seam or token in piece for token in tokens):
                return True
            tail = piece[-keep:] if len(piece) >= keep else seam[-keep:]
    return False


def _utf16(peek: bytes) -> Encoding:
    """UTF-16 (little or big endian) when the text starts with its byte order mark and
    goes on as UTF-16 text of mostly ASCII characters does (a zero byte in each of them),
    as JSON and CSV exports are; else UTF-8 (a UTF-8 file may start with those bytes
    too, as damage)."""
    for mark, encoding in _UTF16.items():
        if peek.startswith(mark):
            units = peek[2:4098]
            high = units[1::2] if encoding == "utf-16-le" else units[0::2]
            if len(high) and high.count(0) >= 0.9 * len(high):
                return encoding  # type: ignore[return-value]
    return "utf-8"


def peek_text(source: Path | InputFile, compression: Compression,
              size: int) -> tuple[bytes, int, int]:  # fmt: skip
    """The first :data:`~tuning.PEEK` bytes of a file's text, how much text was
    decompressed to get it, and from how many bytes of the file (their ratio estimates
    the file's text size). A compressed file is read a piece at a time and only as far as
    that needs (see :data:`~tuning.PEEK_STEP`); damage ends the peek where it is."""
    with source.open() if isinstance(source, InputFile) else source.open("rb") as handle:
        if compression == "none":
            head = handle.read(tuning.PEEK)
            return head, len(head), len(head)
        step = tuning.PEEK if size > tuning.PEEK_LARGE else tuning.PEEK_STEP
        out = bytearray()
        for piece in decompressed(handle, compression, lambda _damage: None, read_size=step):
            out += piece
            if len(out) >= tuning.PEEK:
                break
        return bytes(out[: tuning.PEEK]), len(out), handle.tell()


def sniff_json(peek: bytes) -> Format | None:
    """NDJSON, one JSON document, or neither, from the first bytes of text (see
    :func:`_layout`; None when it is not JSON)."""
    try:
        fmt, _, _ = _layout(peek, check=False)
    except NotUnderstood:
        return None
    return fmt if fmt in ("ndjson", "json") else None


def _layout(peek: bytes, *, check: bool = True) -> tuple[Format, Layout, bool]:
    """The format and layout of a file's first bytes of text.

    In order: a first line that is only ``{`` or ``[`` opens a pretty-printed document;
    any complete line that is a JSON object on its own makes the file NDJSON (so a
    damaged first line does not decide), whose first such line tells its layout; a
    response on one line alone is a document; a long first line that opens an object is
    an NDJSON record; a line of field names is a CSV header. With ``check``, the first
    records must hold a field the hunt reads (:class:`NotUnderstood` otherwise); the
    third value says whether they were seen to (else it is told when the file is read).
    """
    text = peek.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        return "ndjson", "documents", False  # nothing but white space: an empty export
    lines = text.split(b"\n")
    complete = lines if len(peek) < tuning.PEEK else lines[:-1]
    first = lines[0].strip()
    if first in (b"{", b"["):
        return "json", "documents", check and _understood_document(text)
    objects: list[dict[str, Any]] = []
    for line in complete:
        try:
            doc = strict_load(line)  # as the readers: a 100,000-digit number is no damage
        except (ValueError, RecursionError):
            continue
        if isinstance(doc, dict):
            objects.append(doc)
        if len(objects) >= 16:
            break
    if objects:
        layout = _line_layout(objects[0])
        seen = check and _understood(objects, bulk=layout == "bulk")
        if len(complete) == 1 and layout == "values":
            return "json", "documents", seen  # one response on one line: one document
        return "ndjson", layout, seen
    if first.startswith(b"["):
        return "json", "documents", check and _understood_document(text)
    if first.startswith(b"{"):
        if first.endswith((b"{", b"[", b",", b":")) and len(complete) > 1:
            return "json", "documents", False
        opening = _FIRST_KEY.match(first)
        if opening is not None and opening.group(1).decode("utf-8", "replace") in _RESPONSE_KEYS:
            return "ndjson", "values", False  # a long response a line: read a line at a time
        return "ndjson", "documents", False  # one long line: its records tell when read
    header = _csv_header(text, check=check)
    if header is not None:
        return "csv", "documents", check
    raise NotUnderstood(
        f"not a supported format; give {KNOWN_LAYOUTS}",
        short="not an export this tool reads (skipped)",
    )


def _line_layout(doc: dict[str, Any]) -> Layout:
    """The layout of NDJSON whose first object is ``doc``: a _bulk body, one value per
    line that holds records (responses, esArchiver entries), or documents and hits."""
    if is_action(doc):
        return "bulk"
    response = doc.get("response")
    holder = response if isinstance(response, dict) else doc
    hits = holder.get("hits")
    if isinstance(hits, dict) and isinstance(hits.get("hits"), list):
        return "values"
    if is_esql(doc):
        return "values"
    if doc.get("type") in ("doc", "index", "data_stream") and isinstance(doc.get("value"), dict):
        return "values"
    return "documents"


def _records(value: Any) -> list[Any]:
    """The records a parsed value holds, as :mod:`~egress_offline.readers.jsondoc`
    finds them."""
    from egress_offline.readers.jsondoc import python_records  # noqa: PLC0415

    return list(python_records(value, "the file"))


def _understood(objects: list[dict[str, Any]], *, bulk: bool = False) -> bool:
    """Do the first records hold any field the hunt reads? True, or raises
    :class:`NotUnderstood` naming what the first one holds instead."""
    records = [r for value in objects if not (bulk and is_action(value)) for r in _records(value)]
    if bulk and not records:
        return False  # actions alone (the first document is longer than the peek): when read
    for found in records:
        record = (
            found["doc"]
            if bulk and isinstance(found, dict) and isinstance(found.get("doc"), dict)
            else found
        )
        fields = python_fields(record, HUNT)
        if isinstance(fields, dict) and any(fields[name] for name in HUNT.names):
            return True
    shown = records[0] if records else objects[0]
    keys = ", ".join(list(shown)[:12]) if isinstance(shown, dict) else type(shown).__name__
    raise NoFieldSeen(
        "no record holds any field the hunt reads, in any layout this tool knows (the first "
        f"record's top-level keys: {keys or 'none'}); it reads {KNOWN_LAYOUTS}",
        short=f"no record holds a field the hunt reads (first record's keys: {keys or 'none'})",
    )


def _understood_document(text: bytes) -> bool:
    """:func:`_understood` for a JSON document, when its first bytes hold a whole value;
    False when they do not (it is judged when it is read)."""
    try:
        value, _ = json.JSONDecoder().raw_decode(text.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):  # nested too deep for Python: told when read
        return False
    if isinstance(value, list):
        if not value:
            return False  # an empty array: no record, and nothing to misread
        value = value[0]
    if isinstance(value, dict):
        running = value.get("is_running") is True
        if is_esql(value) and not isinstance(value.get("columns"), list):
            raise NotUnderstood(
                "an async ES|QL response of a query still running (is_running: true): it "
                "holds no rows yet; get it again once the query has finished"
            )
        records = _records(value)
        if running and not records:
            raise NotUnderstood(
                "an _async_search response of a search still running (is_running: true) "
                "with no hits yet; get it again once the search has finished"
            )
        if not records:
            return False  # a response with no hits: nothing to misread
        return _understood([value])
    return False


def _csv_header(text: bytes, *, check: bool) -> list[str] | None:
    """The header of a CSV export, when the first line is one: several columns, at least
    one a field the hunt reads."""
    line = text.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    try:
        header = next(csv.reader(io.StringIO(line)))
    except (StopIteration, csv.Error):
        return None
    if len(header) < 2:
        return None
    if check and not set(csv_columns(header, HUNT).values()) - {META_INDEX, META_ID}:
        shown = ", ".join(header[:12])
        raise NotUnderstood(
            f"a CSV file whose columns hold none of the fields the hunt reads ({shown}); "
            "export the events with their field names (@timestamp, host.os.family, ...)"
        )
    return header


def _check_parquet(found: InputFile) -> None:
    """A Parquet file that holds none of the fields is not understood."""
    import pyarrow.parquet as pq  # noqa: PLC0415 - only Parquet inputs need it

    from egress_offline.readers.parquet import parquet_columns  # noqa: PLC0415

    try:
        with found.open() as handle:
            schema = pq.read_schema(handle)
    except Exception:  # damaged: the reader says what and where
        return
    leaves = [name for name in schema.names]
    nested = _leaves(schema)
    if not parquet_columns([*leaves, *nested], HUNT):
        shown = ", ".join(schema.names[:12])
        raise NotUnderstood(
            f"the Parquet file has none of the columns the hunt reads ({', '.join(HUNT.names)}), "
            f"nested or dotted (it has: {shown}); is it an Endpoint network export?"
        )


def _leaves(schema: Any) -> list[str]:
    """Every nested leaf's dotted path of an Arrow schema."""
    out: list[str] = []

    def walk(prefix: str, kind: Any) -> None:
        fields = getattr(kind, "num_fields", 0)
        if fields and hasattr(kind, "field"):
            for index in range(fields):
                child = kind.field(index)
                walk(f"{prefix}.{child.name}", child.type)
        else:
            out.append(prefix)

    for entry in schema:
        walk(entry.name, entry.type)
    return out
