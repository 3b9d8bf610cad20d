"""Kibana CSV exports: Discover's "Generate CSV" and the ES|QL download.

The header holds the fields' dotted names (or ``Label (name)``); a row is a record. What
Kibana writes, and how it is read back:

* a missing value is ``-`` (or an empty cell), an empty string ``(empty)``;
* several values are joined by ``, `` (the ES|QL download: by ``,``); they are split again
  for the fields that can hold several (the OS family, category, action, destination ip,
  bytes and port), never for the group keys and the other context, whose own text may
  hold ``, ``;
* numbers carry thousands separators (``4,923``);
* dates are written in the exporting user's time zone with none given, as ``MMM D, YYYY @
  HH:mm:ss.SSS`` or ISO 8601: they are read in ``zone`` (UTC unless told otherwise);
* a cell Kibana escaped as a formula starts with ``'`` before ``=``, ``+``, ``-`` or
  ``@``: the ``'`` is dropped.

A value that cannot be read as its field's type (a number shown as ``1.2KB``, a date in
another format) is missing, and counted and named in the file's report: never guessed.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Final

import polars as pl

from egress_offline.errors import InputError
from egress_offline.fields import (
    ACTION,
    CATEGORY,
    DEST_IP,
    DEST_PORT,
    META_ID,
    META_INDEX,
    OS_FAMILY,
    SOURCE_BYTES,
    TEXT_LIST,
    TIMESTAMP,
    FieldSet,
)
from egress_offline.readers import tuning
from egress_offline.readers.ahead import PulledAhead
from egress_offline.readers.model import ID, INDEX, POS, FileReport, InputFile

__all__ = ["csv_columns", "read_csv"]

#: Fields that can hold several values, split again at ``, ``.
_SPLIT: Final = frozenset({OS_FAMILY, CATEGORY, ACTION, DEST_IP, SOURCE_BYTES, DEST_PORT})
_NUMBERS: Final = frozenset({SOURCE_BYTES, DEST_PORT})
_LABELLED: Final = re.compile(r"^.* \(([^()]+)\)$")  # "Label (field.name)"
_KIBANA_DATE: Final = r"[A-Z][a-z]{2} \d{1,2}, \d{4} @ \d{2}:\d{2}:\d{2}(?:\.\d{1,3})?"
_KIBANA_FORMAT: Final = "%b %d, %Y @ %H:%M:%S%.f"
_ZONED: Final = r"(?:Z|[+-]\d{2}:?\d{2})$"
_ISO: Final = r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
_THOUSANDS: Final = r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$"
_NUMBER: Final = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_BATCH_ROWS: Final = 65_536
#: A time as Kibana writes one in a row (its date format, or ISO 8601)
_ROW_TIME: Final = rf"(?:{_KIBANA_DATE}|\d{{4}}-\d{{2}}-\d{{2}}[T ]\d{{2}}:\d{{2}})"


def csv_columns(header: list[str], fields: FieldSet) -> dict[str, str]:
    """``{column: field}`` for the header's columns that hold a field read (or the
    document's ``_index`` and ``_id``): by name, or by the name in ``Label (name)``."""
    wanted = {*fields.names, META_INDEX, META_ID}
    found: dict[str, str] = {}
    for column in header:
        name = _field_name(column, wanted)
        if name is not None and name not in found.values():
            found[column] = name
    return found


def _field_name(column: str, wanted: set[str]) -> str | None:
    """The field (of ``wanted``) a header's column holds: by name, by the name in ``Label
    (name)``, or under ``_source.``; None for another column."""
    name = column.removeprefix("\ufeff")
    labelled = _LABELLED.match(name)
    if name not in wanted and labelled is not None:
        name = labelled.group(1)
    if name not in wanted and name.removeprefix("_source.") in wanted:
        name = name.removeprefix("_source.")  # hits flattened (pandas' json_normalize)
    return name if name in wanted else None


def _repeated(header: list[str], fields: FieldSet) -> list[str]:
    """The fields read that more than one of the header's columns hold."""
    wanted = {*fields.names, META_INDEX, META_ID}
    names = [_field_name(column, wanted) for column in header]
    return sorted({name for name in names if name is not None and names.count(name) > 1})


def read_csv(file: InputFile, report: FileReport, *, strict: bool, fields: FieldSet,
             zone: str) -> Iterator[pl.DataFrame]:  # fmt: skip
    """Field frames (``__pos``, the row's number from 1, ``__index``, ``__id``, the
    fields) of a Kibana CSV export; dates without a zone read in ``zone``."""
    header = _header(file)
    columns = csv_columns(header, fields)
    repeated = _repeated(header, fields)
    if repeated:  # Kibana writes each field once: what the others hold is not read
        report.notes.append(
            f"more than one column holds {', '.join(repeated)}: the first of each is read, "
            "the others are not"
        )
    scan = pl.scan_csv(
        file.path,
        infer_schema=False,
        truncate_ragged_lines=True,
        missing_columns="insert",
        glob=False,
        encoding="utf8",
    ).select(list(columns))
    seen_zoneless = False
    first = 1
    # made on a thread (ahead.py): a panic of Polars is raised, never a quiet early end
    with PulledAhead(scan, tuning.SCAN_AHEAD_BYTES, chunk_size=_BATCH_ROWS) as batches:
        for batch in batches:
            frame = batch.rechunk().rename(columns)
            rows = frame.height
            out, unreadable, zoneless = _read_cells(frame, fields, zone, first)
            seen_zoneless = seen_zoneless or zoneless
            report.records += rows
            for position, reason in unreadable:
                report.note_unreadable(position, reason)
            yield out
            first += rows
    _note_rows_in_values(file, report, first - 1, len(header))
    if seen_zoneless:
        report.notes.append(
            f"dates carry no time zone (Kibana writes them in the exporting user's); read "
            f"as {zone}: give --csv-timezone to say otherwise"
        )
    del strict  # a CSV row is never malformed as a whole: its unreadable cells are missing


def _note_rows_in_values(file: InputFile, report: FileReport, rows: int, width: int) -> None:
    """Note a last row without a line end, which a copy cut short leaves, and the rows
    whose values hold lines shaped like rows of the file (as many commas as the header
    has columns less one, and a time): a quote left open makes the rows after
    it, up to the next quote, part of one value, as CSV quoting reads them, and they are
    then no records. Kibana quotes every value holding a line break, so a value may
    hold lines; only when the file has more line ends than rows are the values looked
    at (every column, as text), so a file of one line a row costs a count of its line
    ends."""
    line_ends, last = 0, b""
    with file.path.open("rb") as handle:
        while piece := handle.read(1 << 22):
            line_ends += piece.count(b"\n")
            last = piece[-1:]
    if rows and last not in (b"\n", b"\r"):  # Kibana ends every row with one
        report.notes.append(
            f"its last row (row {rows:,}) has no line end: the copy may be cut short "
            "within it, and its values read as they stand; check the copy"
        )
    if line_ends <= rows + 1 or width < 2:  # the header and one line a row
        return
    # a line as wide as a row, holding a time as Kibana writes one: a row read into a
    # value (a script's line of commas alone is not one)
    shaped = (pl.element().str.count_matches(",", literal=True) >= width - 1) & (
        pl.element().str.contains(_ROW_TIME)
    )
    scan = pl.scan_csv(file.path, infer_schema=False, truncate_ragged_lines=True, glob=False,
                       encoding="utf8", has_header=True)  # fmt: skip
    columns = scan.collect_schema().names()
    found = (
        scan.with_row_index(POS, offset=1)
        .filter(pl.any_horizontal(pl.all().exclude(POS).str.contains("\n", literal=True)))
        .filter(
            pl.any_horizontal(  # a missing value (null) is no row read into it
                pl.col(name).str.split("\n").list.slice(1).list.eval(shaped).list.any()
                for name in columns
            )
        )
        .select(pl.len(), pl.col(POS).first())
        .collect(engine="streaming")  # a batch of rows at a time, never the whole file
    )
    count, position = found.row(0)
    if count:
        rows_hold = "row holds" if count == 1 else f"{count:,} rows hold"
        report.notes.append(
            f"{'a' if count == 1 else 'its'} {rows_hold} a value with lines shaped like "
            f"rows (row {position}{' first' if count > 1 else ''}): a quote left open "
            "makes the rows after it, up to the next quote, part of one value, and they "
            "are then not read as records; check the export, or export it again"
        )


def _header(file: InputFile) -> list[str]:
    with file.path.open("rb") as handle:
        head = handle.read(1 << 20)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    try:
        return next(csv.reader(io.StringIO(text)))
    except (StopIteration, csv.Error) as exc:
        raise InputError(f"{file.name}: the CSV file has no header row", file=file.name) from exc


def _read_cells(frame: pl.DataFrame, fields: FieldSet, zone: str, first: int
                ) -> tuple[pl.DataFrame, list[tuple[int, str]], bool]:  # fmt: skip
    """The field lists of a batch of rows, the cells that could not be read (row,
    reason), and whether any date had no zone."""
    cleaned = frame.with_columns(_plain(pl.col(name)).alias(name) for name in frame.columns)
    exprs: list[pl.Expr] = [pl.int_range(first, first + frame.height, dtype=pl.Int64).alias(POS)]
    for name, column in ((META_INDEX, INDEX), (META_ID, ID)):
        exprs.append(
            (pl.col(name) if name in cleaned.columns else pl.lit(None, pl.String)).alias(column)
        )
    for name in fields.names:
        if name == TIMESTAMP:
            continue  # below: it needs the zone
        cell = pl.col(name) if name in cleaned.columns else pl.lit(None, dtype=pl.String)
        if name in _NUMBERS:
            values = _split(cell).list.eval(_number(pl.element()))
        elif name in _SPLIT:
            values = _split(cell)
        else:
            values = pl.when(cell.is_not_null()).then(pl.concat_list([cell]))
        exprs.append(values.fill_null(pl.lit([], dtype=TEXT_LIST)).cast(TEXT_LIST).alias(name))
    out = cleaned.select(exprs)
    unreadable: list[tuple[int, str]] = []
    zoneless = False
    if TIMESTAMP in fields.names:
        raw = (
            cleaned.get_column(TIMESTAMP)
            if TIMESTAMP in cleaned.columns
            else pl.Series(TIMESTAMP, [None] * frame.height, dtype=pl.String)
        )
        given = raw.drop_nulls()
        zoneless = bool(given.len()) and bool((~given.str.contains(_ZONED)).any())
        times = _local_times(raw, zone)
        out = out.with_columns(times).select(POS, INDEX, ID, *fields.names)
        missing = pl.DataFrame({"raw": raw, "read": times.list.len()}).with_row_index()
        for index, text in (
            missing.filter(pl.col("raw").is_not_null() & (pl.col("read") == 0))
            .select("index", "raw")
            .rows()
        ):
            unreadable.append((first + index, f"@timestamp {text!r} is not a date"))
    if SOURCE_BYTES in cleaned.columns:
        pieces = cleaned.select(_split(pl.col(SOURCE_BYTES)).alias("p")).with_row_index()
        odd = pieces.explode("p").filter(pl.col("p").is_not_null() & _number(pl.col("p")).is_null())
        for index, text in odd.select("index", "p").rows():
            unreadable.append((first + index, f"source.bytes {text!r} is not a number"))
    return out, sorted(unreadable), zoneless


def _plain(cell: pl.Expr) -> pl.Expr:
    """What Kibana wrote, as a value: ``-`` missing, ``(empty)`` an empty string, a
    formula escape dropped."""
    return (
        pl.when(cell == "-")
        .then(pl.lit(None, dtype=pl.String))
        .when(cell == "(empty)")
        .then(pl.lit(""))
        .when(cell.str.contains(r"^'[=+\-@]"))
        .then(cell.str.slice(1))
        .otherwise(cell)
    )


def _split(cell: pl.Expr) -> pl.Expr:
    """A cell's values: several joined by ``, `` (or, numbers without thousands
    separators, by ``,``), else the one."""
    number_list = cell.str.contains(r"^[0-9.+\-eE]+(?:,[0-9.+\-eE]+)+$") & ~cell.str.contains(
        _THOUSANDS
    )
    return (
        pl.when(cell.is_null())
        .then(pl.lit(None, dtype=TEXT_LIST))
        .when(number_list)
        .then(cell.str.split(","))
        .when(cell.str.contains(_THOUSANDS))
        .then(pl.concat_list([cell]))
        .otherwise(cell.str.split(", "))
    )


def _number(piece: pl.Expr) -> pl.Expr:
    """A number's text without thousands separators; null when it is no number."""
    plain = (
        pl.when(piece.str.contains(_THOUSANDS))
        .then(piece.str.replace_all(",", "", literal=True))
        .otherwise(piece)
    )
    return pl.when(plain.str.contains(_NUMBER)).then(plain)


def _local_times(raw: pl.Series, zone: str) -> pl.Series:
    """Each cell's dates as ISO 8601 UTC text: Kibana's ``MMM D, YYYY @ HH:mm:ss.SSS``
    and zoneless ISO read in ``zone``; ISO with a zone, and epoch milliseconds, as they
    are. A cell that is none of these gives no date (counted by the caller)."""
    frame = raw.alias("raw").to_frame().with_row_index("__row")
    given = frame.filter(pl.col("raw").is_not_null())
    kibana = given.select("__row", pl.col("raw").str.extract_all(_KIBANA_DATE).alias("d")).explode(
        "d"
    )
    other = (
        given.filter(~pl.col("raw").str.contains(_KIBANA_DATE))
        .select("__row", pl.col("raw").str.split(", ").alias("d"))
        .explode("d")
    )
    kibana = kibana.filter(pl.col("d").is_not_null()).with_columns(
        pl.col("d").str.to_datetime(_KIBANA_FORMAT, time_unit="ms", strict=False).alias("local")
    )
    zoned = pl.col("d").str.contains(_ZONED)
    iso = pl.col("d").str.contains(_ISO)
    other = other.with_columns(
        pl.when(iso & ~zoned)
        .then(pl.col("d").str.replace(" ", "T").str.to_datetime(time_unit="ms", strict=False))
        .alias("local"),
        pl.when(zoned | pl.col("d").str.contains(r"^\d+$")).then(pl.col("d")).alias("as_is"),
    )
    to_utc = (
        pl.col("local")
        .dt.replace_time_zone(zone, ambiguous="null", non_existent="null")
        .dt.convert_time_zone("UTC")
        .dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
    )
    parts = pl.concat(
        [
            kibana.select("__row", to_utc.alias("text")),
            other.select("__row", pl.coalesce(pl.col("as_is"), to_utc).alias("text")),
        ]
    )
    joined = parts.filter(pl.col("text").is_not_null()).group_by("__row").agg("text")
    result = frame.select("__row").join(joined, on="__row", how="left", maintain_order="left")
    return result.get_column("text").fill_null(pl.lit([], dtype=TEXT_LIST)).alias(TIMESTAMP)
