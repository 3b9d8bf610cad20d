"""The line scan: every line of an NDJSON file marked from its text in one streaming
Polars pass, before anything is decoded.

Each line gets: may it match (the prefilter), its canonical @timestamp when it holds one
``@timestamp`` key, is it shaped like a JSON object, and its length. The text itself
leaves the scan only where a later step needs it: lines that may match and are not older
than the time floor, and lines whose shape or timestamp must be looked at again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Final

import polars as pl

from egress_offline.errors import UsageError
from egress_offline.normalise import canonical_ms
from egress_offline.readers import tuning
from egress_offline.readers.model import POS, InputFile
from egress_offline.readers.prefilter import AnyPrefilter, IdPrefilter

__all__ = [
    "BYTES",
    "HINT",
    "KEYS",
    "MAY",
    "SHAPED",
    "SHAPE_END",
    "SHAPE_START",
    "STAMP",
    "TS_ANY",
    "TS_KEY",
    "batch_rows",
    "check_read_settings",
    "filled",
    "irregular",
    "line_scan",
    "marked",
    "older_than",
    "plain_stamp_text",
    "polars_reads",
    "record_texts",
    "scan_stages",
    "tidied",
    "timestamp_keys",
    "to_decode",
    "to_decode_exprs",
]

# Columns the scan adds to each line
MAY: Final = "__may"  # may match: decode it (unless it is old)
STAMP: Final = "__stamp"  # the canonical @timestamp read from the text, epoch ms
KEYS: Final = "__keys"  # how many "@timestamp" keys the line holds
SHAPED: Final = "__shaped"  # starts with { and ends with }
BYTES: Final = "__bytes"  # the line's bytes with its line end
HINT: Final = "__hint"  # the prefilter's hint matched (IdPrefilter)
_FOUND: Final = "__found"  # the byte offsets of the "@timestamp" keys (dropped)

TS_KEY: Final = '"@timestamp":"'
#: A @timestamp value the text says plainly: a string without escapes (group 1) or an
#: integer (group 2), the key's whole value. Any other (an array, a fraction, an escape,
#: text after the string's quote) is decoded: read by a pattern, ``"...Z "`` gave the
#: time before the space, and ``[null,"..."]`` none.
TS_ANY: Final = r'"@timestamp"\s*:\s*(?:"([^"\\]*)"|(-?[0-9]+))\s*[,}]'
SHAPE_START: Final = r"^[\s\ufeff]*\{"
SHAPE_END: Final = r"\}\s*$"


def filled(line: pl.Expr) -> pl.Expr:
    """Does a line hold more than white space? A byte order mark before it is not a
    record either: it says how the text is encoded (decoding strips it too). Read by a
    pattern anchored at the line's start, with no copy of the line: the text after one
    leading mark holds a character that is not white space. (Stripping the mark first
    copied every line, a 95 MiB one too.)"""
    return line.str.contains(_FILLED)


#: :func:`filled`'s pattern: a mark and then some non-space; or, with no mark first, a
#: non-space (not a mark) after any white space, or a mark after some (tested against
#: stripping the mark, on every line of up to four of eight characters)
_FILLED: Final = "^(?:\ufeff\\s*\\S|\\s*[^\\s\ufeff]|\\s+\ufeff)"


def tidied(line: pl.Expr) -> pl.Expr:
    """A line without a leading byte order mark and white space around it: what the
    decoder reads."""
    return line.str.strip_prefix("\ufeff").str.strip_chars()


def record_texts(lines: pl.DataFrame) -> pl.DataFrame:
    """The lines of ``lines`` that hold more than white space (:func:`filled`), each
    stripped of a leading byte order mark and of white space around it, for the decoder.
    The frame is filtered only when some line is blank, and stripped (:func:`tidied`) only
    when some line has anything to strip: each is a copy of every line kept, and a 95 MiB
    line held once more for nothing."""
    text = pl.col("line")
    found = lines.select(
        filled(text).fill_null(False).all().alias("filled"),
        (text.str.contains("^[\\s\ufeff]") | text.str.contains("\\s$")).any().alias("untidy"),
    )
    every_filled, untidy = found.row(0)
    if not every_filled:
        lines = lines.filter(filled(text))
    if not untidy:
        return lines
    return lines.with_columns(tidied(text))


def irregular() -> pl.Expr:
    """Marked lines that need a second look when they are not decoded: not shaped like an
    object (blank lines too), or holding a timestamp the scan did not read."""
    return ~pl.col(SHAPED) | (pl.col(STAMP).is_null() & pl.col("line").is_not_null())


def to_decode(frame: pl.DataFrame, decode: pl.Expr, *keep: str) -> pl.DataFrame:
    """``__pos`` and ``line`` (and the columns ``keep``) of the lines ``decode`` picks
    (only those columns are filtered: most lines are not decoded, and their text need not
    be copied)."""
    return frame.select(*to_decode_exprs(decode, *keep))


def to_decode_exprs(decode: pl.Expr, *keep: str) -> tuple[pl.Expr, ...]:
    """The columns of :func:`to_decode`, for a caller's own query."""
    text = pl.col("line")
    return (
        *[pl.col(name).filter(decode) for name in (*keep, POS)],
        text.filter(decode).str.strip_prefix("\ufeff"),
    )


def older_than(floor_ms: int | None) -> pl.Expr:
    """Lines whose timestamp, read from their text, is at most ``floor_ms``: they hold one
    ``@timestamp`` key (:func:`timestamp_keys`), in the canonical form. Such a line is
    outside the window whatever else it holds: if the key is not the record's own
    @timestamp, the record has none, and a record without one is outside too. (A key
    whose quote is escaped, or a line holding a ``\\u00`` escape, counts as several:
    :func:`_key_count`.)
    """
    if floor_ms is None:
        return pl.lit(False)
    return (pl.col(STAMP) <= floor_ms).fill_null(False)


#: Polars 2.2 gives ``str.find`` and ``str.find_many`` offsets in characters (2.1 gave
#: bytes) and adds the binary namespace's ``find`` and ``find_many``, in bytes: the scan
#: slices a line's bytes, so it searches them with whichever gives bytes. (The same speed:
#: 400,000 lines, 0.035 s either way.)
_BINARY_FIND: Final = hasattr(pl.col("x").bin, "find_many")
#: A ``\u`` escape of an ASCII character: JSON may spell any of the key's characters
#: with one (``"\u0040timestamp"`` is the record's @timestamp too)
_ESCAPE: Final = b"\\u00"
_BACKSLASH: Final = ord("\\")


def _byte_offset(line: pl.Expr, text: str) -> pl.Expr:
    """The byte offset of the first ``text`` in each line; null where there is none."""
    if _BINARY_FIND:
        return line.cast(pl.Binary).bin.find(text.encode())  # type: ignore[attr-defined,unused-ignore]
    return line.str.find(text, literal=True)


def _text_at(line: pl.Expr, start: pl.Expr, size: int) -> pl.Expr:
    """The ``size`` bytes of each line from byte ``start`` (a character's first byte), as
    text; null where they end inside a character. (A cast of such bytes raises, whatever
    ``strict`` says: a value followed by ``"é"`` stopped the run.) The timestamps read
    here are ASCII, so nothing they need is lost."""
    raw = line.cast(pl.Binary)
    after = raw.bin.get(start + size, null_on_oob=True)
    inside = (after >= 0x80) & (after < 0xC0)  # a UTF-8 continuation byte
    return pl.when(~inside.fill_null(False)).then(raw.bin.slice(start, size)).cast(pl.String)


def _stamp_head(line: pl.Expr) -> pl.Expr:
    """The first 31 bytes after the first ``"@timestamp":"``: as far as a canonical value
    and its closing quote can reach, for ``canonical_ms(..., quoted=True)``. Anything
    longer, or cut inside a character (null), is not canonical."""
    return _text_at(line, _byte_offset(line, TS_KEY) + len(TS_KEY), 31)


def _keys_found(line: pl.Expr) -> pl.Expr:
    """The byte offsets of every ``"@timestamp"`` key of a line, in one search (Polars'
    Aho-Corasick search: about a third of the CPU of finding the first key's value with
    ``str.find`` and counting the keys with a pattern, both of which it replaces)."""
    if _BINARY_FIND:
        return line.cast(pl.Binary).bin.find_many([TS_KEY[:-2].encode()])  # type: ignore[attr-defined,unused-ignore]
    return line.str.find_many([TS_KEY[:-2]])


def _key_count(line: pl.Expr, found: pl.Expr) -> pl.Expr:
    """How many ``@timestamp`` keys a line holds, from the offsets :func:`_keys_found`
    found: 1 only where that is one ``"@timestamp"`` whose opening quote is not escaped
    (``"\\"@timestamp":"`` is a key ``"@timestamp``, not the record's) in a line with no
    ``\\u00`` escape; else 2 (several, or not known from the text) wherever a key may be.
    (The escape is searched apart: as a second pattern of the keys' search, it made the
    search twelve times slower, the backslashes of Windows paths being so many.)"""
    count = found.list.len()
    first = found.list.first()
    raw = line.cast(pl.Binary)
    unescaped = (first == 0) | (raw.bin.get(first - 1, null_on_oob=True) != _BACKSLASH)
    spelled = raw.bin.contains(_ESCAPE)
    several = ((count == 1) & ~unescaped) | ((count < 2) & spelled)
    return pl.when(several.fill_null(False)).then(2).otherwise(count)


#: What follows a ``"@timestamp"`` key when its value is a string
_KEY_END: Final = TS_KEY[-2:]


def _stamp_head_at(line: pl.Expr, first: pl.Expr) -> pl.Expr:
    """The 33 bytes after the first ``"@timestamp"`` key, from its offset ``first``: its
    ``:"`` (:data:`_KEY_END`) and :func:`_stamp_head`'s 31 bytes, for ``canonical_ms(...,
    quoted=True, lead=_KEY_END)``, which checks the ``:"``. (Checking it here and cutting
    it off took twice the time of the slice: 1 GB of lines, 0.13 s against 0.06.)"""
    return _text_at(line, first + len(TS_KEY) - len(_KEY_END), 33)


def plain_stamp_text(line: pl.Expr) -> pl.Expr:
    """The text of the first ``"@timestamp":"..."`` value, as far as :func:`_stamp_head`
    reaches; null where no quote closes it there."""
    return _stamp_head(line).str.extract('^([^"]*)"', 1)


def timestamp_keys(line: pl.Expr) -> pl.Expr:
    """How many ``"@timestamp"`` keys a line holds (:func:`_key_count`). The first
    ``"@timestamp":"`` value is the record's own only when there is one: a second may be
    the record's, after one nested in another object. (A record whose only key is nested
    has no @timestamp of its own; Elasticsearch's data streams refuse such a document, see
    docs/how-it-works.md.)"""
    return _key_count(line, _keys_found(line))


def _lines(file: InputFile, **options: Any) -> pl.LazyFrame:
    """``pl.scan_lines`` of ``file``; run it inside :func:`polars_reads`."""
    return pl.scan_lines(file.path, name="line", glob=False, **options)


def check_read_settings() -> None:
    """Before NDJSON is read: Polars' read settings that :func:`polars_reads` keeps when
    the user has set them must be sizes in bytes. Polars' threads panic on any other
    value, and every file would fall back to the slow reader."""
    for name, ours in (
        (tuning.READ_SIZE_VAR, tuning.READ_SIZE),
        (tuning.FETCH_SIZE_VAR, tuning.FETCH_SIZE),
    ):
        value = os.environ.get(name)
        if value is not None and not (
            value.isascii() and value.isdigit() and 0 < int(value) < 1 << 63
        ):
            raise UsageError(
                f"the environment variable {name}={value!r} is not a size in bytes; "
                f"unset it (egress-offline then uses {ours}) or set a whole number above 0"
            )


@contextmanager
def polars_reads(file: InputFile) -> Iterator[None]:
    """While a scan of ``file``'s lines runs: Polars reads :data:`~tuning.READ_SIZE`
    bytes at a time where the file's first 64 KiB held whole lines, and fetches ahead
    :data:`~tuning.FETCH_SIZE` at a time (see there for why). A line longer than a read
    is copied again with each further read, so a file without line ends in its first
    64 KiB (one huge line, or old Mac line ends) is read with Polars' growing reads.

    Polars reads the settings from the environment when a scan starts. They are set once
    and left set (the environment is changed as rarely as can be: Polars' threads read
    it), so a library caller's own scans of lines read this way too. A value the user has
    set is kept."""
    if tuning.FETCH_SIZE_VAR not in os.environ:
        os.environ[tuning.FETCH_SIZE_VAR] = str(tuning.FETCH_SIZE)
    ours = str(tuning.READ_SIZE)
    current = os.environ.get(tuning.READ_SIZE_VAR)
    if current is not None and current != ours:  # the user's
        yield
    elif file.line_bytes:
        if current is None:
            os.environ[tuning.READ_SIZE_VAR] = ours
        yield
    elif current is None:
        yield
    else:
        del os.environ[tuning.READ_SIZE_VAR]
        try:
            yield
        finally:
            os.environ[tuning.READ_SIZE_VAR] = ours


def line_scan(file: InputFile, prefilter: AnyPrefilter, floor_ms: int | None) -> pl.LazyFrame:
    """Every line of a file, marked in one streaming pass (see the module docstring).
    Each column is computed once, in stages (the streaming engine does not share
    sub-expressions)."""
    stages, kept = scan_stages(prefilter, floor_ms)
    return marked(_lines(file, row_index_name=POS, row_index_offset=1), stages).select(*kept)


def marked(lines: pl.LazyFrame, stages: tuple[tuple[pl.Expr, ...], ...]) -> pl.LazyFrame:
    """``lines`` with the columns of :func:`scan_stages`, stage by stage."""
    for stage in stages:
        lines = lines.with_columns(*stage)
    return lines


@lru_cache(maxsize=64)
def scan_stages(
    prefilter: AnyPrefilter, floor_ms: int | None
) -> tuple[tuple[tuple[pl.Expr, ...], ...], tuple[pl.Expr, ...]]:
    """The expressions of :func:`line_scan`: its four stages (the keys found and the
    line's shape; the timestamp read from the text; parsed; searched by the prefilter: see
    :func:`marked`) and the columns kept, built once for the files that share them (about
    1.5 ms each time: a directory of small files pays it often)."""
    line = pl.col("line")
    old = older_than(floor_ms) if prefilter is not None else pl.lit(False)
    if prefilter is None:  # --strict decodes every record: nothing is judged by its text
        could = filled(line)
    elif floor_ms is None:
        could = prefilter.could_match(line)
    else:  # a line known to be old is never decoded, whatever it holds: not searched
        could = prefilter.could_match(pl.when(~old).then(line)).fill_null(False)
    # an @timestamp that is not canonical, or a line with several keys, is read later; a
    # line without one needs nothing
    odd = pl.col(STAMP).is_null() & (pl.col(KEYS) > 0)
    needed = (pl.col(MAY) & ~old) | ~pl.col(SHAPED) | odd
    hint = prefilter.hint if isinstance(prefilter, IdPrefilter) else None
    hinted = [line.str.contains(hint).alias(HINT)] if hint is not None else []
    found = (
        _keys_found(line).alias(_FOUND),
        (line.str.starts_with("{") & line.str.ends_with("}")).alias(SHAPED),
        (line.str.len_bytes() + 1).alias(BYTES),
        *hinted,
    )
    keys = pl.col(_FOUND)
    read = (
        _stamp_head_at(line, keys.list.first()).alias(STAMP),
        _key_count(line, keys).alias(KEYS),
    )
    # with several keys the first may be nested in another object: not the record's
    parsed = (
        pl.when(pl.col(KEYS) == 1)
        .then(canonical_ms(pl.col(STAMP), quoted=True, lead=_KEY_END))
        .alias(STAMP),
    )
    searched = (could.alias(MAY),)
    kept = (
        pl.col(POS).cast(pl.Int64),
        pl.col(MAY),
        pl.col(STAMP),
        pl.col(SHAPED),
        pl.col(BYTES),
        *([pl.col(HINT)] if hinted else []),
        pl.concat_str([pl.when(needed).then(line), pl.lit("")]).alias("line"),
    )
    return (found, read, parsed, searched), kept


def batch_rows(file: InputFile, text_bytes: int) -> int:
    """Lines a batch holds at most: about ``text_bytes`` of lines of the mean length of
    the file's first lines, within :data:`~tuning.MIN_LINE_ROWS` and
    :data:`~tuning.MAX_LINE_ROWS` lines. (The text a batch holds is bounded by its bytes,
    ``ndjson._batches``: the first lines' length says nothing of the others'.)"""
    if not file.line_bytes:
        return tuning.LINE_ROWS
    return max(tuning.MIN_LINE_ROWS, min(tuning.MAX_LINE_ROWS, text_bytes // file.line_bytes))
