"""Bounded reads of Parquet row groups (one, or a stretch of consecutive small ones:
:func:`stretches`): batches of at most so many rows and so many bytes of decoded values,
however small the file and however its rows' widths vary.

An export is attacker-controlled, and a few kilobytes of Parquet can decode to gigabytes:
one dictionary value shared by millions of rows, or plain pages that compress a
thousandfold. Each way has its guard:

- text columns whose every chunk is indices into a small dictionary are read as
  dictionaries (:func:`text_reader`, pyarrow's ``read_dictionary``): a read holds the
  indices and the dictionary, and its rows become text a batch at a time once sized (a
  2.4 KB file of 8,192 rows sharing one 1 MiB value took 7.5 GB when pyarrow decoded
  it); other dictionary encoded chunks are read as text, as many rows a read as their
  dictionary's longest entry allows (``parquet_dictionaries``), and a dictionary page
  that repeats an entry, which pyarrow misreads, is refused (:func:`_check_dictionaries`);
- a row group is read so many rows at a time as its columns' uncompressed size in the
  footer allows (plain rows of 1 MiB are read 16 at a time, not 4,096), and its plain
  text columns a few thousand rows at a time, unless their pages' headers say that all
  their values together fit :data:`~tuning.READ_ROOM` (:func:`_within_room`), and no
  more than the pages those rows reach allow (``parquet_reach``: one 40 MiB value a
  page among short ones; a list's rows told apart by their levels), each read sized
  where it starts where that allows more;
- a file whose stored Arrow schema makes a column a dictionary is read without it
  (:func:`_without_stored_schema`), its columns by their pages as every other writer's;
- each read's decoded size is measured (:func:`decoded_bytes`) and the reads gathered
  into batches of at most :data:`~tuning.PARQUET_BYTES`, a read wider than that halved
  until its parts fit (a row group whose first rows are short is not read as if all
  were); a batch is charged each read's dictionaries too (each read holds its own
  copy), and in a stretch each read's buffers (:data:`_READ_HELD`).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from typing import Any, Final

from egress_offline.readers import tuning
from egress_offline.readers.parquet_arrow import (
    as_text,
    decoded_bytes,
    dictionaries_held,
    dictionary_sizes,
    holds_dictionary,
    leaf_count,
    understood,
)
from egress_offline.readers.parquet_dictionaries import as_dictionary
from egress_offline.readers.parquet_levels import row_pages
from egress_offline.readers.parquet_pages import ChunkPages, PageSizes, PlainPages
from egress_offline.readers.parquet_reach import Charge, Reads
from egress_offline.readers.parquet_thrift import PageError, Short, footer_keys

__all__ = [
    "INT96_UNIT",
    "Stretch",
    "batches",
    "leaf_indexes",
    "page_sizes",
    "parquet_file",
    "stretches",
    "text_reader",
]

#: The unit a legacy INT96 timestamp (Spark, Impala, Hive) is read in: pyarrow's own,
#: nanoseconds, wraps a time past 2262 to another (2600 read as 2015), where
#: microseconds hold every year to 294,000 and keep below the millisecond, which the
#: engine floors.
INT96_UNIT: Final = "us"
#: Consecutive row groups read as one (:func:`stretches`), by their indexes in the file.
Stretch = tuple[int, ...]

#: Per reader, the leaf columns (their indexes in a row group) under each selection.
_LEAVES: weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], list[int]]] = (
    weakref.WeakKeyDictionary()
)
#: What a value read takes at least, before it is decoded: an index and an offset.
_VALUE_BYTES = 8
#: Per reader made by :func:`text_reader`, the leaf columns it reads as dictionaries.
_AS_DICTIONARY: weakref.WeakKeyDictionary[Any, frozenset[int]] = weakref.WeakKeyDictionary()
#: Per reader made by :func:`text_reader`, what its file's page headers say of its chunks.
_PAGES: weakref.WeakKeyDictionary[Any, PageSizes] = weakref.WeakKeyDictionary()
#: Per reader, its file's top-level columns (:func:`_top_columns`).
_TOP: weakref.WeakKeyDictionary[Any, tuple[dict[str, range], frozenset[int]]] = (
    weakref.WeakKeyDictionary()
)
#: A chunk the page headers were not walked for: nothing known.
_NO_PAGES = ChunkPages(None)
#: What a read of a stretch's row group is charged besides its values (:func:`batches`):
#: its buffers' padding and pyarrow's objects, 3 to 8 KiB a one-row read once gathered
#: and decoded. A batch then gathers at most 2,048 reads.
_READ_HELD = 8 << 10
#: Decoded, a value takes at most its bytes in a plain page and this much more (an
#: offset and a validity bit), and an offset more at each level of lists above it.
_VALUE_OVERHEAD = 9


def stretches(metadata: Any) -> list[Stretch]:
    """A file's row groups in order, consecutive small ones gathered into stretches of at
    most :data:`~tuning.STRETCH_ROWS` rows that are screened, spanned and batched as one;
    a larger row group is a stretch of its own. Each row group still costs a read of its
    own (:func:`batches`), but what follows a read (a query, a span, a screening) is paid
    once a stretch, not once a row group: 100,000 rows in row groups of 100 took 12 times
    DuckDB's hunt, each row group some fifteen queries."""
    found: list[Stretch] = []
    held: list[int] = []
    rows = 0
    for group in range(metadata.num_row_groups):
        count = metadata.row_group(group).num_rows
        if held and rows + count > tuning.STRETCH_ROWS:
            found.append(tuple(held))
            held, rows = [], 0
        held.append(group)
        rows += count
    if held:
        found.append(tuple(held))
    return found


def batches(parquet: Any, stretch: Sequence[int], columns: list[str], most: int) -> Iterator[Any]:
    """The rows of ``columns`` in the row groups of ``stretch`` (their indexes, in file
    order), as Arrow tables of at most ``most`` rows that hold at most
    :data:`~tuning.PARQUET_BYTES` decoded, or one row wider than that; text columns read as
    dictionaries are decoded here, a table at a time.

    Each row group is read on its own, its rows counted against its footer's (pyarrow
    stops a column at a page of no values, unsaid, and read across row groups would go
    on with the next one's rows: a row's values from two rows). Its rows are decoded
    :data:`~tuning.READ_ROWS` at a time, or ``most`` where every text column is read as
    a dictionary (fewer where the footer says the rows are wide), and gathered into
    tables by the size each read is found to have, across the stretch's row groups; a
    read wider than the room is halved until its parts fit. A batch size guessed from a
    row group's first rows held any rows after them: 300,000 rows whose first 1,024 were
    short and the rest 4 KiB took 6.6 GB. Memory holds one table and one read."""
    import pyarrow as pa  # noqa: PLC0415 - only Parquet inputs need it

    held: list[Any] = []
    rows = size = 0
    for group in stretch:
        seen = 0
        expected = parquet.metadata.row_group(group).num_rows
        sizing = _read_rows(parquet, group, columns, most)
        reads = parquet.iter_batches(batch_size=sizing.rows, row_groups=[group],
                                     columns=columns)  # fmt: skip
        for read in reads:
            # a read holds its dictionaries whole, whatever its rows use of them, each
            # read its own copy (60,000 row groups of one row, each with its 1 MiB
            # dictionary, would otherwise be one batch of 60 GB; 4,000 reads of 63 rows
            # of a dictionary of 62 MiB, 250 GB); and in a stretch each read costs its
            # buffers and objects, whatever its rows (65,536 one-row reads took 200 to
            # 500 MB gathered)
            if seen == 0:
                _check_dictionaries(parquet, group, columns, read)
            kept = dictionaries_held(read) + (_READ_HELD if len(stretch) > 1 else 0)
            seen += read.num_rows
            if sizing.varies:
                _next_read(parquet, sizing, seen, expected - seen, read.num_rows)
            for part, wide in _fitting(read, tuning.PARQUET_BYTES):
                if held and (rows + part.num_rows > most
                             or size + wide + kept > tuning.PARQUET_BYTES):  # fmt: skip
                    yield as_text(pa.Table.from_batches(held))
                    held, rows, size = [], 0, 0
                held.append(part)
                rows += part.num_rows
                size += wide + kept
                kept = 0  # the read's parts share its dictionaries
        if seen != expected:  # pyarrow stops a column at a page of no values, unsaid
            raise ValueError(
                f"row group {group}: its columns {', '.join(columns)} hold {seen:,} rows, "
                f"not the {expected:,} it says"
            )
    if held:
        yield as_text(pa.Table.from_batches(held))


def _next_read(parquet: Any, sizing: Reads, seen: int, left: int, read: int) -> None:
    """Size the next read of a row group whose reads are sized where each starts
    (``Reads.at``), ``seen`` rows read and ``left`` to read, the last read ``read`` rows:
    on pyarrow's reader, which takes its batch size at each read (so its readers of one
    file share it: ``parquet_screen``). The first read is of the size that fits
    wherever it starts (``Reads.rows``), and so is every read after one that was not as
    asked (a pyarrow that took the batch size once)."""
    if left <= 0:
        return
    if read != sizing.asked:
        sizing.varies = False
        rows = sizing.rows
    else:
        rows = sizing.at(seen)
    if rows != sizing.asked:
        parquet.reader.set_batch_size(rows)
        sizing.asked = rows


def _check_dictionaries(parquet: Any, group: int, columns: Sequence[str], read: Any) -> None:
    """Raise ``ValueError`` where a column of row group ``group`` read as a dictionary
    (every data page of it indices into its dictionary page) holds fewer entries than
    that page says: the page repeats an entry, which pyarrow's ``read_dictionary`` keeps
    once, then reading each index against the entries after it (a page of
    ``disconnect_received`` twice and ``x``, its rows all entry 1, read as ``x``: an
    exfiltration unseen, exit 0). No writer repeats an entry; each read's dictionary
    holds the page's every entry, whatever its rows use. A read's columns come in the
    order asked for, each its file's leaves in order (:func:`_leaf_ranges`)."""
    pages = _PAGES.get(parquet)
    if pages is None or not _AS_DICTIONARY.get(parquet):
        return
    selected = set(leaf_indexes(parquet, columns))
    ranges = _leaf_ranges(parquet)
    for name, column in zip(read.schema.names, read.columns, strict=True):
        leaves = [index for index in ranges.get(name, ()) if index in selected]
        for index, size in zip(leaves, dictionary_sizes(column), strict=False):
            said = pages.get((group, index), _NO_PAGES).indexed
            if size is not None and size < said:
                raise ValueError(
                    f"row group {group}, column {parquet.schema.column(index).path}: its "
                    f"dictionary page says {said:,} entries and repeats some ({size:,} "
                    "differ), which pyarrow reads against other values"
                )


def _stored_dictionaries(parquet: Any) -> frozenset[int]:
    """The leaf columns of each top-level column that pyarrow's schema stored in the file
    says holds a dictionary, at any depth: pyarrow reads it as one, asked to or not."""
    return _top_columns(parquet)[1]


#: The key of the Arrow schema pyarrow stores in a footer, and what it is renamed to
#: where that schema is not to be read (as long: the footer's other bytes stay put).
_STORED_SCHEMA: Final = b"ARROW:schema"
_UNREAD_SCHEMA: Final = b"ARROW:unread"


def _without_stored_schema(metadata: Any) -> Any:
    """``metadata`` (a parsed footer) without the Arrow schema stored in it, which makes
    pyarrow read a column as a dictionary whatever it is asked: every distinct value of
    a row group's chunk that falls back to plain values in each read's dictionary (2,000
    distinct 1 MiB values took over 3 GB from a 199 KB file), and an entry its
    dictionary page repeats folded into one where ``_check_dictionaries`` does not look
    (an exfiltration read as another executable's, exit 0). Read without it, its columns
    are read by their Parquet types, as every other writer's are, and as dictionaries by
    :func:`_dictionary_read`'s rule. The footer is pyarrow's own serialisation of what
    it parsed (what it pickles), its key renamed in place and parsed again."""
    import pyarrow as pa  # noqa: PLC0415 - only Parquet inputs need it

    rebuild, (serialised,) = metadata.__reduce__()
    footer = bytearray(serialised.to_pybytes())
    try:
        keys = footer_keys(bytes(footer))
    except (PageError, Short) as exc:
        raise ValueError(f"its footer's key-value metadata cannot be read ({exc})") from exc
    for key, at in keys:
        if key == _STORED_SCHEMA:
            footer[at : at + len(key)] = _UNREAD_SCHEMA
    return rebuild(pa.py_buffer(bytes(footer)))


def _leaf_ranges(parquet: Any) -> dict[str, range]:
    """The leaf columns of each top-level column of a file, by its name."""
    return _top_columns(parquet)[0]


def _top_columns(parquet: Any) -> tuple[dict[str, range], frozenset[int]]:
    """A file's top-level columns, from its Arrow schema: each one's leaf columns, by its
    name, and those of the ones that hold a dictionary."""
    found = _TOP.get(parquet)
    if found is None:
        ranges: dict[str, range] = {}
        stored: list[int] = []
        at = 0
        for field in parquet.schema_arrow:
            count = leaf_count(field.type)
            ranges.setdefault(field.name, range(at, at + count))
            if holds_dictionary(field.type):
                stored.extend(range(at, at + count))
            at += count
        found = _TOP[parquet] = (ranges, frozenset(stored))
    return found


def parquet_file(source: Any, **options: Any) -> Any:
    """``pq.ParquetFile(source, **options)``, legacy INT96 times read in
    :data:`INT96_UNIT`."""
    import pyarrow.parquet as pq  # noqa: PLC0415 - only Parquet inputs need it

    return pq.ParquetFile(source, coerce_int96_timestamp_unit=INT96_UNIT, **options)


def text_reader(source: Any, metadata: Any, columns: Sequence[str],
                pages: PageSizes | None = None) -> Any:  # fmt: skip
    """A ``pq.ParquetFile`` of ``source`` (with its parsed footer, ``metadata``) that
    reads as dictionaries the text leaf columns under ``columns`` that are indices into
    small dictionaries (pyarrow's ``read_dictionary``, :func:`_dictionary_read`): a read
    holds each value once, not each row's copy of it, and :func:`batches` decodes its
    rows once sized.
    ``pages``: what :func:`~egress_offline.readers.parquet_pages.check_pages` found of
    the file's chunks (:func:`_within_room`)."""
    parquet = parquet_file(source, metadata=metadata)
    if _stored_dictionaries(parquet).intersection(leaf_indexes(parquet, columns)):
        metadata = _without_stored_schema(metadata)
        parquet = parquet_file(source, metadata=metadata)
    schema = parquet.schema
    found = [
        index
        for index in leaf_indexes(parquet, columns)
        if schema.column(index).physical_type == "BYTE_ARRAY"
        and "key_value" not in schema.column(index).path.split(".")  # a map's: see _fitting
        and _dictionary_read(metadata, index, pages)
    ]
    if found:
        paths = [schema.column(index).path for index in found]
        parquet = parquet_file(source, metadata=metadata, read_dictionary=paths)
    _AS_DICTIONARY[parquet] = frozenset(found)
    if pages is not None:
        _PAGES[parquet] = pages
    return parquet


def _dictionary_read(metadata: Any, index: int, pages: PageSizes | None) -> bool:
    """Is the text leaf column ``index`` read as a dictionary? As its pages say
    (``parquet_dictionaries.as_dictionary``: a dictionary page the footer does not name
    is read all the same); without them, where the footer names one."""
    groups = range(metadata.num_row_groups)
    if pages is None:
        return any(metadata.row_group(group).column(index).has_dictionary_page for group in groups)
    return as_dictionary(pages.get((group, index), _NO_PAGES) for group in groups)


def page_sizes(parquet: Any) -> PageSizes | None:
    """What the page headers said of the chunks of a reader made by :func:`text_reader`."""
    return _PAGES.get(parquet)


def _read_rows(parquet: Any, group: int, columns: Sequence[str], most: int) -> Reads:
    """How many rows of ``group`` to read at a time (``Reads.rows``; from a row on,
    ``Reads.at``): ``most`` where every text column is
    read as a dictionary (a row is then a few bytes until decoded, whatever its text),
    or where the plain text columns' pages say their values fit :data:`~tuning.READ_ROOM`
    (:func:`_within_room`), else :data:`~tuning.READ_ROWS`; fewer where the footer says
    the columns' rows are wider than :data:`~tuning.PARQUET_BYTES` over that (their
    pages' uncompressed bytes a row, or their values', lists' elements each counted, at
    :data:`_VALUE_BYTES` each); no more than the pages of values stored whole that those
    rows may reach allow (``parquet_reach``)."""
    indexes = leaf_indexes(parquet, columns)
    as_dictionary = _AS_DICTIONARY.get(parquet, frozenset())
    schema = parquet.schema
    plain_text = [
        index
        for index in indexes
        if schema.column(index).physical_type == "BYTE_ARRAY" and index not in as_dictionary
    ]
    metadata = parquet.metadata.row_group(group)
    chunks = [metadata.column(index) for index in indexes]
    # the footer's sizes are the writer's word: where the pages said what their values
    # decode to, that too (a footer saying 1,000 bytes of 1 GiB of plain pages let 4,096
    # rows of 1 MiB be read at once: 2.3 GB from a 741 KB file)
    pages = _PAGES.get(parquet) or {}
    size = sum(
        max(chunk.total_uncompressed_size, (pages.get((group, index), _NO_PAGES).whole
                                            or PlainPages(0, 0)).decoded)
        for index, chunk in zip(indexes, chunks, strict=True)
    )  # fmt: skip
    # a list's elements (nulls too) are values: a row of a million repeated, compressed
    # to nothing, is a million indices and offsets once read
    values = sum(chunk.num_values for chunk in chunks) * _VALUE_BYTES
    wide = max(1, -(-max(size, values) // max(1, metadata.num_rows)))
    if plain_text and not _within_room(parquet, group, plain_text):
        rows = min(most, tuning.READ_ROWS)
    else:
        rows = most
    # a value with shared prefixes is at most as long as its page's lengths say (or
    # its page, where they could not be read), decoded a read at a time
    prefixed = sum(pages.get((group, index), _NO_PAGES).prefixed for index in indexes)
    if prefixed:
        rows = min(rows, tuning.PREFIXED_ROOM // (prefixed + _VALUE_OVERHEAD * len(indexes)))
    # a dictionary's entry read as text is each row's own copy: at most its longest
    longest = sum(pages.get((group, index), _NO_PAGES).longest for index in plain_text)
    if longest:
        rows = min(rows, tuning.READ_ROOM // (longest + _VALUE_OVERHEAD * len(plain_text)))
    rows = max(1, min(rows, tuning.PARQUET_BYTES // wide))
    per_row = longest + _VALUE_OVERHEAD * len(plain_text)
    charges = [_charge(pages.get((group, index), _NO_PAGES), metadata.num_rows,
                       schema.column(index).max_repetition_level)
               for index in plain_text]  # fmt: skip
    return Reads(charges, per_row, rows)


def _charge(chunk: ChunkPages, rows: int, repetition: int) -> Charge:
    """How reads of a row group's ``rows`` reach a plain text column's pages
    (``parquet_reach.Charge``): a flat column's rows are its values; a list column's rows
    are told apart by their levels where its pages come to more than the room (a read
    then reaches the page where the row after its rows starts); else each is taken to
    hold the chunk's mean of values (any read of its pages fits the room)."""
    largest = max((size for _, size in chunk.runs), default=0)
    if repetition == 0:
        held = sum(values for values, _ in chunk.runs)
        return Charge(1, 0, chunk.runs, largest, exact=held == rows)
    if chunk.starts is not None:
        found = tuple((count, held) for count, held, _ in row_pages(chunk.runs, chunk.starts))
        return Charge(1, 1, found, largest, exact=sum(chunk.starts) == rows)
    return Charge(max(1, -(-chunk.values // max(1, rows))), 0, chunk.runs, largest)


def _within_room(parquet: Any, group: int, indexes: Sequence[int]) -> bool:
    """Do the pages of these plain text columns in ``group`` say that all their values
    together take at most :data:`~tuning.READ_ROOM` decoded, however they are read? Only
    values stored whole are known to (``parquet_pages.PlainPages``): each takes at most
    its bytes in its page, an offset and a bit; texts with shared prefixes, what their
    pages' lengths say. Read from the pages that pyarrow decompresses, not the footer's
    sums, which are the writer's word."""
    pages = _PAGES.get(parquet)
    if pages is None:
        return False
    schema, decoded = parquet.schema, 0
    for index in indexes:
        found = pages.get((group, index), _NO_PAGES).whole
        if found is None:
            return False
        levels = schema.column(index).max_repetition_level
        decoded += found.decoded + found.values * (_VALUE_OVERHEAD + 8 * levels)
    return decoded <= tuning.READ_ROOM


def leaf_indexes(parquet: Any, columns: Sequence[str]) -> list[int]:
    """The indexes of the leaf columns that ``columns`` (dotted paths) select."""
    known = _LEAVES.setdefault(parquet, {})
    key = tuple(columns)
    if key not in known:
        schema = parquet.schema
        paths = [schema.column(i).path for i in range(len(schema))]
        known[key] = [
            i
            for i, path in enumerate(paths)
            if any(path == c or path.startswith(c + ".") for c in columns)
        ]
    return known[key]


def _fitting(read: Any, room: int) -> Iterator[tuple[Any, int]]:
    """``read`` in order, as parts of at most ``room`` bytes decoded (or of one row), each
    with its size: the read whole when it fits, else its halves, each halved in turn."""
    pending = [understood(read)]
    while pending:
        part = pending.pop()
        if part.num_rows == 0:
            continue
        wide = decoded_bytes(part)
        if wide <= room or part.num_rows == 1:
            yield part, wide
            continue
        half = part.num_rows // 2
        pending += [part.slice(half), part.slice(0, half)]  # the first half next
