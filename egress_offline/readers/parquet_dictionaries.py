"""Which text columns of a Parquet file are read as dictionaries, and how long the
entries of the others' dictionary pages are.

pyarrow's ``read_dictionary`` gives each read the dictionary and its rows' indices: a
read holds each value once, however many rows share it (8,192 rows sharing one 1 MiB
value took 7.2 GB read as text). But it holds a dictionary page's entries several times
over and in a hash table (2.4 M short entries: 433 MB), folds an entry the page repeats
into one and reads the indices after it against the wrong entries (``parquet_batches``
refuses such a page), and where a chunk's pages fall back from indices to plain values
(pyarrow's writer past its 1 MiB dictionary) it adds every distinct value of the row
group to each read's dictionary (an export of a million events in one row group: 723
MB), or cannot read them at all (DuckDB's ``DELTA_LENGTH_BYTE_ARRAY`` fallback pages).
So a column is read as a dictionary only where each of its chunks holds indices into
its dictionary page in every data page (:func:`as_dictionary`); the others are read as
text, each read of a chunk with a dictionary page as many rows as its longest entry
allows (:func:`longest_entry`, read from the page itself).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from egress_offline.readers import tuning
from egress_offline.readers.parquet_prefixes import page_bodies
from egress_offline.readers.parquet_thrift import Page

__all__ = ["as_dictionary", "longest_entry"]

#: Entries of a dictionary page read as a dictionary, at most: pyarrow holds a hash
#: table of them besides their copies (a Polars file of a million events in one row
#: group, half a million entity ids: 458 MB read so, 368 as text). pyarrow's own pages
#: (1 MiB) hold fewer. Fewer, longer entries are read as a dictionary however long: read
#: as text, each row is its own copy (one 9 MiB entry in 400 rows: 725 MB, 312 so).
_ENTRIES: Final = 1 << 18
#: Entries of a dictionary page whose lengths are read one by one (0.4 s a million, in
#: Python; each page once); past them, the longest is bounded by the page's bytes less 4
#: for each other entry's length, which for many entries of some length bounds each
#: read to a few rows (half a million entity ids so bounded took 107 s to read).
_PARSED_ENTRIES: Final = 1 << 22


def as_dictionary(chunks: Iterable[Any]) -> bool:
    """Is a text column whose chunks' pages are ``chunks`` (``parquet_pages.ChunkPages``)
    read as a dictionary? Where each chunk that holds values has a dictionary page and
    indices into it in every data page (a chunk of plain values, in a row group of its
    own, would make each read's dictionary every distinct value of it, or could not be
    read: DuckDB's ``DELTA_LENGTH_BYTE_ARRAY``), of at most :data:`_ENTRIES` entries."""
    found = False
    for chunk in chunks:
        if not chunk.values:
            continue
        if not 0 < chunk.indexed <= _ENTRIES:
            return False
        found = True
    return found


def longest_entry(source: Any, at: int, page: Page, compression: str) -> int:
    """The longest entry of the dictionary page at ``at`` (its header ``page``) of a text
    column: each entry's length (4 bytes, little endian) and bytes, as many as its header
    says, the longest of the ways pyarrow may read the page; its size decompressed where
    it cannot be read (no entry is longer)."""
    entries, bound = page.values or 0, page.decompressed
    if bound > tuning.PAGE_ROOM:
        return bound
    # no entry is longer than what the others' lengths leave: where that is short
    # enough for the reads' most rows anyway, or the entries too many to read, enough
    left = max(0, bound - 4 * entries)
    if entries > _PARSED_ENTRIES or left * tuning.READ_ROWS <= tuning.READ_ROOM:
        return left
    try:
        raw = source.read_at(page.compressed, at + page.header)
        bodies = page_bodies(raw, page.decompressed, compression)
    except (ValueError, OSError):
        return bound
    found = [_longest(body, entries) for body in bodies]
    if not found or any(length is None for length in found):
        return bound
    return max(length for length in found if length is not None)


def _longest(body: bytes, entries: int) -> int | None:
    """The longest of ``entries`` texts each after its length; None where they run past
    ``body``."""
    view, at, longest, size = memoryview(body), 0, 0, len(body)
    for _ in range(entries):
        if at + 4 > size:
            return None
        length = int.from_bytes(view[at : at + 4], "little")
        at += 4 + length
        if at > size:
            return None
        longest = max(longest, length)
    return longest
