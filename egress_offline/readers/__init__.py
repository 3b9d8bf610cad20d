"""Readers: from the paths a user names to finished field batches.

The modules follow the data::

    discover      paths, directories, globs, stdin -> input files (walk: each entry of a
                  directory or glob read, skipped and listed, or an error)
    sniff         what a file holds, from its first bytes (compression: the member walker)
    session       one read of every input: hands on FieldBatch and StampBatch items
      ndjson        the fast NDJSON reader: the text check (textcheck), the line scan
                    (linescan, its pieces pulled ahead on a thread: ahead), prefilters
                    (prefilter), the time floor (timefloor)
      careful       the careful reader, for damaged NDJSON and over-long lines (lines)
      jsondoc       one JSON document: an array, a _search response
      parquet       Parquet columns -> field lists (parquet_screen: rows skipped unread;
                    parquet_pages: the page headers walked first (parquet_thrift),
                    parquet_prefixes: the lengths of shared-prefix pages;
                    parquet_batches: bounded reads)
      decode        JSON text -> field lists, vectorised, bisected on damage
      batching      the decode queue, small files scanned together, frames gathered
    tuning        every size and bound, with the reason for it

A new export layout is one module beside ``ndjson``, ``jsondoc`` and ``parquet``: a
reader that yields field frames (``__pos`` and the fields) for one file, told apart by
``sniff`` and called from ``session``.
"""

from __future__ import annotations

from egress_offline.readers.discover import open_inputs
from egress_offline.readers.model import (
    FILE,
    ID,
    INDEX,
    POS,
    TS,
    FileReport,
    InputFile,
    Inputs,
    StampBatch,
)
from egress_offline.readers.parquet import parquet_columns
from egress_offline.readers.prefilter import EveryLine, IdPrefilter, NewerThan, Prefilter
from egress_offline.readers.session import (
    SAMPLING,
    FieldBatch,
    ProgressHook,
    ReadItem,
    ReadPlan,
    ReadSession,
)

__all__ = [
    "FILE",
    "ID",
    "INDEX",
    "POS",
    "SAMPLING",
    "TS",
    "EveryLine",
    "FieldBatch",
    "FileReport",
    "IdPrefilter",
    "InputFile",
    "Inputs",
    "NewerThan",
    "Prefilter",
    "ProgressHook",
    "ReadItem",
    "ReadPlan",
    "ReadSession",
    "StampBatch",
    "open_inputs",
    "parquet_columns",
]
