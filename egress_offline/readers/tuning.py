"""The readers' tuning constants, each with the reason for its value.

Every size here was measured on the benchmark's exports (``benchmarks/RESULTS.md``) on a
2-core machine; changing one changes speed or memory, never the rows. Modules read them
as ``tuning.NAME`` at call time, so that a test can lower one to reach a rare path.
"""

from __future__ import annotations

from typing import Final

# ----------------------------------------------------------------- sniffing, sampling

#: Bytes of text that sniffing reads from the start of a file (decompressed).
PEEK: Final = 64 * 1024
#: Compressed bytes decompressed at a time for a peek of a file up to PEEK_LARGE (8 KiB
#: of gzip is plenty of text for a small file: 64 KiB of it was some 600 KiB of text to
#: decompress, half a second over a directory of 200 small files)...
PEEK_STEP: Final = 8 * 1024
#: ...and files larger than this read PEEK at a time: their ratio of text to compressed
#: bytes, taken from the peek, estimates the text size (from 8 KiB a 1 GB export was
#: estimated at 800 MB, from 64 KiB at 980 MB).
PEEK_LARGE: Final = 16 << 20
#: Bytes at each end of an uncompressed file whose lines seed ``--now latest``.
SAMPLE: Final = 64 * 1024
#: Lines at most, at each end, that seed it.
SAMPLE_LINES: Final = 16
#: Sampled lines judged together (at most some 16 MiB of text).
SAMPLED_AT_ONCE: Final = 8192
#: Of them, decoded at a time, newest first, until one counts (decoding all 32,000 lines
#: of 1,000 files took 0.86 s).
DECODED_NEWEST: Final = 64

# ------------------------------------------------------------------------ raw reading

#: Bytes read at a time from an uncompressed file by the careful reader and the member walker.
BLOCK: Final = 8 * 1024 * 1024
#: Bytes of text a decompressor gives at most per call, whatever its input: a small file
#: that expands to gigabytes is read a bounded piece at a time.
INFLATE_CAP: Final = 8 * 1024 * 1024
#: A line longer than this is malformed ("line longer than ..."), and skipped as it goes
#: by, never held whole: Elasticsearch refuses requests over 100 MB by default
#: (``http.max_content_length``), so no document of an export is longer. A Parquet row
#: group holding a row whose values in one column come to more than this besides its
#: largest page is refused (``parquet_levels``): pyarrow holds a row whole.
LINE_LIMIT: Final = 100 * 1024 * 1024
#: A file with a line longer than this is read by the careful reader, not Polars' line
#: scan, which holds a line several times over (:mod:`~egress_offline.readers.textcheck`);
#: a real event is a few KiB.
FAST_LINE: Final = 16 * 1024 * 1024
#: Compressed files whose text is checked at once, on threads of their own, when many
#: are checked in turn (``--now latest`` samples the ends of all before reading any).
CHECKS_AHEAD: Final = 2
#: ...if they are at least this large (compressed): 1,000 gzip files of 60 KB took 4.6 s
#: instead of 4.2 checked ahead, the threads contending for the GIL; 8 of 30 MB, 5.5 s
#: instead of 6.9.
CHECK_AHEAD_SIZE: Final = 1 << 20
#: Bytes Polars reads at a time from a file of lines. Its own reads grow to tens of MiB,
#: each into fresh memory that the kernel maps and zeroes; reads of a few MiB reuse memory
#: (1 GB of NDJSON: 80,000 page faults instead of 132,000, the hunt about 7% faster).
READ_SIZE: Final = 4 << 20
READ_SIZE_VAR: Final = "POLARS_FORCE_NDJSON_READ_SIZE"
#: Bytes Polars fetches from a file ahead of its reads, four pieces at a time: 32 MiB in
#: flight instead of Polars' 128 (1 GB: 5% faster; 4 GB: peak 300 to 320 MiB, not 415).
FETCH_SIZE: Final = 8 << 20
FETCH_SIZE_VAR: Final = "POLARS_NDJSON_CHUNK_SIZE"

# ----------------------------------------------------------------------- the line scan

#: NDJSON lines a streamed batch holds at most when the mean length of the file's first
#: lines is unknown (its text is bounded by ``BATCH_TEXT`` whatever its lines)...
LINE_ROWS: Final = 16_384
#: ...at least (tiny lines would otherwise make many tiny batches)...
MIN_LINE_ROWS: Final = 4_096
#: ...and at most.
MAX_LINE_ROWS: Final = 1 << 20
#: Text per batch of lines (or one of Polars' reads, where longer: a few MiB, or one line
#: up to ``FAST_LINE``); with ``--strict`` every line's text leaves the scan, so its
#: batches are smaller. A window's batches were 32 MiB (most lines of the benchmark's
#: files are older than the window, and are never decoded), but an export of the window
#: alone decodes most of them: 1 GB of matching events peaked at 474 MiB, 434 in 16 MiB
#: batches (365 in 8 MiB ones, 5% slower on the 4 GB file); the 4 GB sweep 340-346 MiB,
#: 313-315. The 1 GB and 4 GB hunts took as long (4 interleaved rounds).
STRICT_BATCH_TEXT: Final = 8 << 20
BATCH_TEXT: Final = 16 << 20
#: Bytes of the line scan's pieces waiting, at most, made ahead of the batches on a
#: thread of their own (``readers/ahead.py``; a CSV scan's batches too): under
#: ``collect_batches`` the scan stood still while a batch was accounted for. A piece is
#: one of Polars' reads made lines (about 1 MiB of marks and kept text in the
#: benchmark's files): 4 MiB is a few pieces. 4 GB hunt, 6 rounds: 2.41 s without, 2.25
#: with; peak 273 MiB, 283 (317 with 16 MiB).
SCAN_AHEAD_BYTES: Final = 4 << 20
#: NDJSON files up to this much text are scanned with the files after them, in one query
#: (each scan costs about 3 ms whatever its size: a directory of small files paid it for
#: each file)...
SMALL_TEXT: Final = 16 << 20
#: ...up to this much text at a time.
GROUP_SCAN_TEXT: Final = 32 << 20

# -------------------------------------------------------------------------- decoding

#: Lines decoded as one chunk: many small chunks decode about five times faster than one
#: large one (Polars decodes a column's chunks in parallel).
DECODE_PIECE: Final = 128
#: Lines searched for the general forms (``FieldSet.general``) in pieces of this many, in
#: parallel: 450 MB of lines took 0.26 s on one chunk, 0.10 s in pieces of 1,024.
SEARCH_PIECE: Final = 1_024
#: Text of lines to decode gathered before decoding: decoding competes with the scan for
#: the engine's threads and is much faster after it, and each decoding has a fixed cost
#: (some ten queries, about 8 ms) that a directory of small files paid for each file.
#: More than this is decoded this much at a time (a file whose every line matches, 10 GB
#: of valid events in 1 MB of zstd, peaked at 575 MiB decoding a whole 32 MiB batch), and
#: handed on once its decoding comes to this much, the next pieces cut as much smaller as
#: the last decoded to more than its text (``DecodeQueue._decode``).
DECODE_BYTES: Final = 16 << 20
#: ... and at most this many records (values of a JSON document, lines of a block read in
#: Python's hands) at a time, however short: each becomes a row of a dozen lists (10
#: million empty hits of a 2.7 KB ``_search`` response, 16 MiB of them a batch, peaked
#: at 14 GB)
DECODE_RECORDS: Final = 65_536
#: A line of the values layout (a response a line) longer than this is read as a JSON
#: document is, its hits a batch at a time (see ``values._streamed``).
STREAMED_VALUE: Final = 1 << 20
#: Below this many lines a failing slice is decoded line by line, in Python.
BISECT_FLOOR: Final = 32

# --------------------------------------------------------------------------- parquet

#: Parquet rows a batch holds: narrow, after projection to the fields read.
PARQUET_ROWS: Final = 65_536
#: Rows of consecutive small row groups read as one stretch (``parquet_batches.stretches``):
#: each row group read on its own cost some fifteen queries, a span and a screening
#: (100,000 rows in row groups of 100: 6.9 s, DuckDB 0.56 s).
STRETCH_ROWS: Final = 65_536
#: Rows of the three deciding Parquet columns (time, action, OS family) screened at once.
SCREEN_ROWS: Final = 262_144
#: ...both fewer where rows are wide: a batch holds about this much decoded (rows of one
#: 4 KiB string shared through a dictionary: 65,536 of them peaked at 1.3 GB)...
PARQUET_BYTES: Final = 16 << 20
#: ...as the rows read say: they are decoded this many at a time, whatever their width,
#: and gathered into batches (a batch size guessed from a row group's first rows held
#: every row after them: 1,024 short rows, then 4 KiB ones, took 6.6 GB). Reading 4,096
#: at a time costs what reading the batch whole did after a probe of its first rows.
READ_ROWS: Final = 4_096
#: ...unless their pages' headers say that all the values of a row group's plain text
#: columns take at most this much decoded: they are then read a batch at a time (a 4 GB
#: hunt's row groups took a third less time to read than 4,096 rows at a time).
READ_ROOM: Final = 64 << 20
#: Decoded bytes a read of values with shared prefixes (``DELTA_BYTE_ARRAY``) may come to,
#: each counted as long as its page's lengths say its longest value may be (its page,
#: where they cannot be read; a page of them may repeat one long text): 8,192 rows
#: sharing one 1 MiB text, a 7 KB file, took 7.4 GB read 4,096 rows at a time; 598 MB
#: read 64 MiB at a time, 450 MB at 32 MiB, 382 MB at 16 MiB.
PREFIXED_ROOM: Final = 32 << 20
#: The pages a row group's columns may hold decompressed, their largest together: pyarrow
#: decompresses a page whole, and a header may declare 2 GiB (1 MiB texts, 1,024 to a
#: page as pyarrow writes them, took 1.4 GB from a 0.1 MiB file). Real exports' pages are
#: about 1 MiB (pyarrow's and Spark's default page size).
PAGE_ROOM: Final = 64 << 20
#: List elements reduced at once (``engine/reduce.py``): each is several values while its
#: row's sums and keywords are worked out. 65,536 events whose ``source.bytes`` is a list
#: of 2,001 elements (476 MB of text) peaked at 2.1 GB reduced a whole batch at once, 1.0 GB
#: 262,144 elements at a time (what remains is Polars reading lines ahead, and decoding).
#: A batch of real events holds about 13 elements a row, well within.
REDUCE_ELEMENTS: Final = 1 << 18
#: A key or context text longer than this (bytes) is held once in a scratch file, a token
#: in its place (``engine/long_texts.py``): 17 rows of 40 MiB executables took over 3 GB
#: as keys. Elasticsearch's keyword fields keep 1,024 characters; real keys are shorter.
LONG_TEXT: Final = 64 << 10

# ---------------------------------------------------------------------- the session

#: Field batches smaller than this are gathered with others before they are handed on...
SMALL_BATCH: Final = 1 << 20
#: ...up to this many bytes: each reduction costs some ten queries and a spill file
#: whatever its size (1,000 files of 92 KB: 13 ms a file). Gathering large batches only
#: raised peak memory (4 GB Parquet: 301 MiB instead of 233).
GATHER_BYTES: Final = 8 << 20
#: Bytes of an NDJSON file's finished output held in memory until the file has been read
#: to its end; beyond it, the output waits in the scratch directory (see ``FileOutput``).
HELD_OUTPUT: Final = 8 << 20
#: ...unless the caller can take it back (``session.Checkpoint``): then an NDJSON file of
#: at least this much text has its output handed on as it is read. (Smaller files are
#: held still: before such a file, what earlier files left gathering is handed on.)
OUTPUT_AS_READ: Final = 64 << 20

#: How scratch files (the spill past its room in memory, a file's output held until its
#: end) are compressed: LZ4 costs little (1 GB NDJSON: within noise of uncompressed) and
#: stores a long string that many rows repeat about once, where uncompressed rows of one
#: 4 KiB string took 22 GB.
SCRATCH_COMPRESSION: Final = "lz4"
#: Rows of a record batch in a scratch file, which is read back a batch at a time: a
#: row's strings may share one buffer in memory (a Parquet dictionary) and be 4 KiB each
#: once read back.
SCRATCH_ROWS: Final = 8_192
#: Bytes of the spill kept in memory, as compact frames, before the rest goes to scratch
#: files: a hunt's window of 4 GB of events spills 23 MB of candidates (the public events
#: judged from held parts are held beside them, their text shared). Held as compressed
#: IPC bytes before, 32 MiB of those was about 90 MB of frames, and reading them back at
#: each later step was half of the 4 GB hunt's aggregation. A room of 64 MiB added
#: 56 MiB to a 4 GB sweep's peak memory, for no time.
SPILL_HELD: Final = 32 << 20
#: Bytes of candidate rows (as read back from the spill) whose destinations are judged
#: together: each judgement costs some ten queries whatever its size.
PUBLIC_BYTES: Final = 16 << 20

# ------------------------------------------------------------------------- reporting

#: How many malformed positions a file report keeps.
MAX_POSITIONS: Final = 5
