"""Sources: find the input files, tell their format from their bytes, and read them.

Each file becomes a stream of *field batches*: Polars frames with one ``List(String)``
column per field the hunt needs (see :mod:`egress_offline.fields`) and ``__pos``, the
record's line (NDJSON) or position (JSON documents, Parquet rows).

Two readers per format:

* the fast one is a single lazy, streaming Polars query (``scan_lines`` + ``json_decode``
  or ``scan_parquet``) and handles every clean file;
* the careful one runs only when the fast one meets damage (bad JSON, invalid UTF-8, a
  truncated compressed tail). It reads the file in blocks, decodes each block vectorised,
  and bisects a failing block down to its bad lines, so every readable record still counts
  and every unreadable one is counted and named.

The consumer sees :data:`RESTART` when the fast reader gave up part-way: what it received
for that file so far must be dropped, because the careful reader starts the file again.
"""

from __future__ import annotations

import bisect
import glob
import itertools
import json
import math
import os
import re
import shutil
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Final, Generic, Literal, TypeVar

import polars as pl

from egress_offline.errors import DataError, InputError, UsageError
from egress_offline.fields import ACTION as f_ACTION
from egress_offline.fields import (
    FIELDS,
    HUNT,
    TEXT_LIST,
    FieldSet,
    key_paths,
    nested_path,
)
from egress_offline.fields import OS_FAMILY as f_OS_FAMILY
from egress_offline.fields import TIMESTAMP as f_TIMESTAMP
from egress_offline.normalise import (
    canonical_ms,
    in_pieces,
    text_ms,
    timestamp_text_ms,
    timestamps,
)

__all__ = [
    "RESTART",
    "FileParts",
    "FileReport",
    "Gathered",
    "InputFile",
    "Inputs",
    "Pending",
    "Prefilter",
    "Scanned",
    "Stamps",
    "TimeFloor",
    "open_inputs",
    "parquet_columns",
    "read_batches",
]

Format = Literal["ndjson", "json", "parquet"]
Compression = Literal["none", "gzip", "zstd"]

_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_PARQUET_MAGIC: Final = b"PAR1"
_PEEK: Final = 64 * 1024
_PEEK_STEP: Final = 8 * 1024  # compressed bytes decompressed at a time for a peek...
_PEEK_LARGE: Final = 16 << 20  # ...of a file up to this size (larger ones: _PEEK)
_BLOCK: Final = 8 * 1024 * 1024
_PARQUET_ROWS: Final = 65_536  # Parquet rows a batch holds: narrow after projection
_JUDGED_ROWS: Final = 262_144  # rows of the three deciding Parquet columns judged at once
_BISECT_FLOOR: Final = 32  # below this many lines a failing slice is decoded line by line
MAX_POSITIONS: Final = 5  # how many malformed positions a file report keeps
POS: Final = "__pos"
_BAD: Final = "__bad"
_GLOB_CHARS: Final = frozenset("*?[")
_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")  # in a decoded str, never paired
# JSON escapes of UTF-16 surrogates, and of a high one followed by a low one: a pair
_SURROGATE_ESCAPE: Final = r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
_SURROGATE_PAIR: Final = r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"

#: Sent in a batch stream when the fast reader gave up part-way through a file.
RESTART: Final = object()


@dataclass(frozen=True)
class InputFile:
    """One input: where it is, how it is shown to the user, and what it holds."""

    path: Path
    name: str
    size: int
    format: Format
    compression: Compression
    #: from the first 64 KiB of text: the size once decompressed, estimated (for progress),
    #: and the mean line length (for batch sizes); 0 when unknown
    text_size: int = 0
    line_bytes: int = 0


@dataclass
class FileReport:
    """What reading one file found. ``unit`` is what ``positions`` count: lines or records."""

    name: str
    format: Format
    compression: Compression
    size: int
    unit: Literal["line", "record", "row"]
    records: int = 0
    malformed: int = 0
    positions: list[str] = field(default_factory=list)
    damage: str | None = None
    reader: Literal["fast", "careful"] = "fast"
    #: some line not decoded matched the prefilter's hint (:class:`IdPrefilter`)
    hinted: bool = False
    sha256: str | None = None
    #: @timestamp range (epoch ms) of the records the prefilter passed over undecoded
    first_ms: int | None = None
    last_ms: int | None = None
    #: how far reading has come, 0 to 1, for a progress display
    progress: float = 0.0
    _order: list[int] = field(default_factory=list, repr=False)  # positions' numbers

    def reset(self) -> None:
        self.records = 0
        self.malformed = 0
        self.positions.clear()
        self._order.clear()
        self.damage = None
        self.first_ms = self.last_ms = None
        self.progress = 0.0

    def cover(self, stamps: pl.Series) -> None:
        """Widen the @timestamp range of the records passed over to take in ``stamps``."""
        if stamps.len():
            self.cover_range(stamps.min(), stamps.max())  # type: ignore[arg-type]

    def cover_range(self, low: int | None, high: int | None) -> None:
        """Widen that range to take in ``low`` .. ``high`` (None: no timestamps)."""
        if low is not None and high is not None:
            low, high = int(low), int(high)
            self.first_ms = low if self.first_ms is None else min(self.first_ms, low)
            self.last_ms = high if self.last_ms is None else max(self.last_ms, high)

    def note_malformed(self, position: int, reason: str, *, strict: bool) -> None:
        """Count a malformed record; keep the first few by position, whatever the order
        in which they are found (lines that may match are decoded later)."""
        if strict:
            raise DataError(
                f"{self.name}: {self.unit} {position}: {reason}; "
                "run without --strict to skip and count malformed records"
            )
        self.malformed += 1
        at = bisect.bisect(self._order, position)
        if at < MAX_POSITIONS:
            self._order.insert(at, position)
            self.positions.insert(at, f"{self.unit} {position}: {reason}")
            del self._order[MAX_POSITIONS:], self.positions[MAX_POSITIONS:]


@dataclass
class Inputs:
    """The files to read, and the paths a directory walk passed over (not events)."""

    files: list[InputFile]
    skipped: list[str]


def _any_of(*texts: str) -> str:
    """A pattern matching any of ``texts`` literally. Searching the line texts with the
    regex engine is several times faster than ``literal=True`` (Polars 2.1, 1 GB of
    lines: counting a key took 0.40 s of CPU literally, 0.05 s as a pattern)."""
    return "|".join(pl.escape_regex(text) for text in texts)


@dataclass(frozen=True)
class Prefilter:
    """Which NDJSON lines can possibly match, judged from their text alone.

    A record matches only if ``event.action`` is exactly ``disconnect_received`` and (unless
    ``families`` is None) ``host.os.family`` is one of ``families``. In JSON text such a
    value appears either literally or written with a ``\\u`` escape, so a line holding
    neither cannot match and is never decoded: it is counted, checked for the shape of a
    JSON object, and its ``@timestamp`` is read for the data's time range.
    """

    families: tuple[str, ...] | None
    action: str = "disconnect_received"

    def could_match(self, line: pl.Expr) -> pl.Expr:
        # (action and family) or an escape: the action or an escape first, in one pass;
        # then a family or an escape, only on the lines that hold either
        either = line.str.contains(_any_of(self.action, "\\u"))
        if self.families is None:
            return either
        holding = pl.when(either).then(line)
        return holding.str.contains(_any_of(*self.families, "\\u")).fill_null(False)


@dataclass(frozen=True)
class IdPrefilter:
    """NDJSON lines that may hold one of ``values`` as a JSON string: literally, or written
    with an escape that could stand for one of its characters (a ``\\u`` escape; ``\\/``
    for a slash; any backslash when a value holds a character JSON must escape)."""

    values: tuple[str, ...]
    #: a pattern noted per file when any line matches it (see ``FileReport.hinted``)
    hint: str | None = None

    def could_match(self, line: pl.Expr) -> pl.Expr:
        text = "".join(self.values)
        if any(c in '"\\' or ord(c) < 0x20 for c in text):
            return line.str.contains(_any_of(*self.values, "\\"))
        escapes = ("\\u", "\\/") if "/" in text else ("\\u",)
        return line.str.contains(_any_of(*self.values, *escapes))


@dataclass
class TimeFloor:
    """How old a record may be and still be in the window, as far as is known while
    reading: records whose @timestamp (epoch ms) is at most :attr:`ms` are not in it.

    With a fixed anchor (``--now wall`` or a time) that is the cutoff itself. With
    ``--now latest`` the anchor is the newest timestamp of the whole input, so the floor
    rises as newer records are seen: it is never above the final cutoff.
    """

    window_ms: int | None  # None: the hunt has no window, nothing is old
    fixed_ms: int | None = None  # the cutoff, when the anchor is known before reading
    latest_ms: int | None = None  # the newest timestamp seen so far
    #: files whose ends have given their bound already (:meth:`sample`)
    sampled: set[InputFile] = field(default_factory=set)

    @property
    def rising(self) -> bool:
        """Is the anchor unknown before reading (``--now latest``), so the floor rises?"""
        return self.window_ms is not None and self.fixed_ms is None

    @property
    def ms(self) -> int | None:
        if self.window_ms is None:
            return None
        if self.fixed_ms is not None:
            return self.fixed_ms
        return None if self.latest_ms is None else self.latest_ms - self.window_ms

    def stamps(self, ms: pl.Series) -> Stamps | None:
        """The timestamps of records not decoded that may be in the window, to count
        there; None when the hunt has no window (every valid record is in it)."""
        return self.stamps_of(ms.to_frame(), pl.col(ms.name))

    def stamps_of(self, frame: pl.DataFrame, ms: pl.Expr) -> Stamps | None:
        """:meth:`stamps` of the timestamps ``ms`` selects from ``frame``, filtered in the
        same query."""
        if self.window_ms is None:
            return None
        low = self.ms
        return Stamps(
            frame.select(ms.drop_nulls() if low is None else ms.filter(ms > low)).to_series()
        )

    def sample(
        self, files: Sequence[InputFile], tell: Callable[[float, int], None] | None = None
    ) -> None:
        """``--now latest`` over several files: take a bound from the ends of every NDJSON
        file (the start of a compressed one) before any is read. Each file alone looks new
        when it is read, so in a directory in time order every early file was decoded
        whole; with the newest file's bound, their old lines are skipped as in one file.
        The lines of many files' ends are decoded together, in one query (its fixed cost
        was most of what a small file paid: 201 files of 1 MB, about 5 ms a file before).
        ``tell`` is told how far sampling has come and how many bytes it reads in all.
        A file is sampled once."""
        if not self.rising:
            return
        lines = [file for file in files if file.format == "ndjson" and file not in self.sampled]
        size = sum(min(file.size, 2 * _SAMPLE) for file in lines)
        texts: list[str] = []
        for done, file in enumerate(lines, start=1):
            texts += _sample_lines(file)
            self.sampled.add(file)
            if len(texts) >= _SAMPLED_AT_ONCE or done == len(lines):
                self.observe(_latest_of(texts))
                texts = []
            if tell is not None:
                tell(done / len(lines), size)

    def observe(self, latest_ms: int | None) -> None:
        if latest_ms is not None and (self.latest_ms is None or latest_ms > self.latest_ms):
            self.latest_ms = latest_ms


@dataclass(frozen=True)
class Stamps:
    """The @timestamps (epoch ms) of valid records a reader did not decode, because they
    cannot match, that may be in the window: the engine counts them in its time step."""

    ms: pl.Series


# ---------------------------------------------------------------------------- discovery


@contextmanager
def open_inputs(paths: Sequence[str]) -> Iterator[Inputs]:
    """Resolve files, directories, globs and ``-`` (standard input) into input files.

    Standard input is copied to a temporary file first, so that it can be sniffed and read
    like any file; the copy is removed on exit.
    """
    if not paths:
        raise InputError("no input given; name files, directories, globs or - for stdin")
    with tempfile.TemporaryDirectory(prefix="egress-offline-") as scratch:
        files: dict[Path, InputFile] = {}
        skipped: list[str] = []
        for raw in paths:
            if raw == "-":
                spool = Path(scratch) / "stdin"
                with spool.open("wb") as out:
                    shutil.copyfileobj(sys.stdin.buffer, out, _BLOCK)
                files[spool] = _describe(spool, name="<stdin>", explicit=True)  # type: ignore[assignment]
                continue
            path = Path(raw)
            if path.is_file():
                files.setdefault(path.resolve(), _describe(path, name=raw, explicit=True))  # type: ignore[arg-type]
            elif path.is_dir():
                for found in _walk(path):
                    _add_found(found, files, skipped)
            elif _GLOB_CHARS & set(raw):
                matches = sorted(glob.glob(raw, recursive=True))
                if not matches:
                    raise InputError(f"{raw}: the pattern matches no file; check the pattern")
                for match in matches:
                    match_path = Path(match)
                    if match_path.is_dir():
                        for found in _walk(match_path):
                            _add_found(found, files, skipped)
                    elif match_path.is_file():
                        _add_found(match_path, files, skipped)
            elif path.exists() or path.is_symlink():
                raise InputError(f"{raw}: not a regular file or directory; name a file")
            else:
                raise InputError(f"{raw}: no such file or directory; check the path")
        if not files:
            raise InputError(
                f"no supported input files in {', '.join(paths)} "
                f"({len(skipped)} other files skipped); give NDJSON, JSON or Parquet exports"
            )
        if any(file.format == "ndjson" for file in files.values()):
            _check_read_settings()
        yield Inputs(files=list(files.values()), skipped=skipped)


def _walk(root: Path) -> Iterator[Path]:
    # followlinks=False: a symlink loop cannot make the walk run forever.
    for directory, subdirs, names in os.walk(root, followlinks=False):
        subdirs.sort()
        for name in sorted(names):
            yield Path(directory) / name


def _add_found(path: Path, files: dict[Path, InputFile], skipped: list[str]) -> None:
    resolved = path.resolve()
    if resolved in files:
        return
    described = _describe(path, name=str(path), explicit=False)
    if isinstance(described, str):
        skipped.append(f"{path}: {described}")
    else:
        files[resolved] = described


def _describe(path: Path, *, name: str, explicit: bool) -> InputFile | str:
    """Sniff a file. An unsupported file is an error if named, else a reason to skip it."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise InputError(
            f"{name}: cannot be read ({exc.strerror}); check its permissions"
        ) from None
    compression: Compression = "none"
    if head.startswith(_GZIP_MAGIC):
        compression = "gzip"
    elif head.startswith(_ZSTD_MAGIC):
        compression = "zstd"
    elif head == _PARQUET_MAGIC:
        return InputFile(path, name, size, "parquet", "none")
    if size == 0:
        if name.endswith((".gz", ".zst", ".parquet")):
            reason = "is empty (0 bytes); the copy is incomplete, export it again"
            if explicit:
                raise InputError(f"{name}: {reason}")
            return reason
        return InputFile(path, name, size, "ndjson", "none")
    try:
        peek, produced, consumed = _peek_text(path, compression, size)
    except InputError:
        raise
    except Exception:  # anything undecodable here is simply not ours
        peek, produced, consumed = b"", 0, 0
    fmt = _sniff_json(peek)
    if fmt is None:
        reason = "not an NDJSON, JSON or Parquet export (skipped)"
        if explicit:
            raise InputError(
                f"{name}: not a supported format; give NDJSON (optionally .gz or .zst), "
                "a JSON array or _search response, or Parquet"
            )
        return reason
    lines = peek.count(b"\n")
    return InputFile(
        path, name, size, fmt, compression,
        text_size=size * produced // consumed if consumed else 0,
        line_bytes=len(peek) // lines if lines else 0,
    )  # fmt: skip


def _peek_text(path: Path, compression: Compression, size: int) -> tuple[bytes, int, int]:
    """The first 64 KiB of a file's text, how much text was decompressed to get it, and
    from how many bytes of the file (their ratio estimates the file's text size). A
    compressed file is read a piece at a time and only as far as that needs: 64 KiB of
    a large file, whose ratio is then close to the whole file's (a deflate stream
    compresses its start less well: from 8 KiB, a 1 GB export is estimated at 800 MB,
    from 64 KiB at 980 MB), and 8 KiB of a file up to 16 MiB, which is read in no time
    whatever the estimate (64 KiB of gzip is some 600 KiB of text to decompress: half a
    second for a directory of 200 small files)."""
    with path.open("rb") as handle:
        if compression == "none":
            head = handle.read(_PEEK)
            return head, len(head), len(head)
        out = bytearray()
        decoder = _new_decoder(compression)
        step = _PEEK if size > _PEEK_LARGE else _PEEK_STEP
        while len(out) < _PEEK and (chunk := handle.read(step)):
            data = chunk
            while data and len(out) < _PEEK:
                try:
                    out += decoder.decompress(data)
                except Exception:  # damage: what came before it is the peek
                    return bytes(out[:_PEEK]), len(out), handle.tell()
                if not decoder.eof:
                    break
                data = decoder.unused_data.lstrip(b"\x00")  # the next member, if any
                decoder = _new_decoder(compression)
        return bytes(out[:_PEEK]), len(out), handle.tell()


def _new_decoder(compression: Compression) -> Any:
    if compression == "gzip":
        return zlib.decompressobj(wbits=31)
    import zstandard  # noqa: PLC0415 - only zstd inputs need it

    return zstandard.ZstdDecompressor().decompressobj()


def _sniff_json(peek: bytes) -> Format | None:
    """NDJSON, one JSON document, or neither, from the first 64 KiB (decompressed).

    In order: a first line that is only ``{`` or ``[`` opens a pretty-printed document;
    any complete line that is a JSON object on its own makes the file NDJSON (so a
    damaged first line does not decide); a compact ``_search`` response or array on one
    line is a document; a long first line that opens an object is an NDJSON record.
    """
    text = peek.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        return "ndjson"  # nothing but white space: an empty export
    lines = text.split(b"\n")
    complete = lines if len(peek) < _PEEK else lines[:-1]
    first = lines[0].strip()
    if first in (b"{", b"["):
        return "json"
    for line in complete:  # the first complete object decides
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            hits = doc.get("hits")
            if len(complete) == 1 and isinstance(hits, dict) and isinstance(hits.get("hits"), list):
                return "json"
            return "ndjson"
    if first.startswith(b"["):
        return "json"
    if first.startswith(b"{"):
        return (
            "json" if first.endswith((b"{", b"[", b",", b":")) and len(complete) > 1 else "ndjson"
        )
    return None


# ------------------------------------------------------------------ decoded doc -> fields


def _merge(exprs: list[pl.Expr]) -> pl.Expr:
    empty = pl.lit([], dtype=TEXT_LIST)
    filled = [e.fill_null(empty) for e in exprs]
    return filled[0] if len(filled) == 1 else pl.concat_list(filled)


def _path_expr(root: pl.Expr, path: tuple[str, ...]) -> pl.Expr:
    expr = root
    for key in path:
        expr = expr.struct.field(key)
    return expr


def doc_field_exprs(doc: pl.Expr, fields: FieldSet = HUNT) -> list[pl.Expr]:
    """Field columns from a decoded document: from ``_source`` when it is there (an
    elasticdump or ``_search`` hit), else from the document itself."""
    source = doc.struct.field("_source")
    exprs = []
    for name in fields.names:
        paths = list(key_paths(name))
        top = _merge([_path_expr(doc, p) for p in paths])
        inner = _merge([_path_expr(source, p) for p in paths])
        exprs.append(pl.when(source.is_not_null()).then(inner).otherwise(top).alias(name))
    return exprs


def _fields_from_docs(frame: pl.DataFrame | pl.LazyFrame, doc: str, fields: FieldSet) -> Any:
    return frame.select(
        POS, pl.col(doc).is_null().alias(_BAD), *doc_field_exprs(pl.col(doc), fields)
    )


# ---------------------------------------------------------- the Python fallback decoder


class _Text(str):
    """A JSON float token kept as text until we know which field it is in."""


def _first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        out.setdefault(key, value)  # as the vectorised decoder does
    return out


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


def _load(text: str) -> Any:
    return json.loads(
        text,
        object_pairs_hook=_first_wins,
        parse_float=_Text,
        parse_constant=_reject_constant,
    )


def _float_text(token: str) -> str:
    # JSON floats are doubles in Elasticsearch, as in the vectorised decoder; write the
    # double's shortest round-trip value positionally, as that decoder does.
    value = float(token)
    if not math.isfinite(value):
        return token  # out of range for a double: stays text and parses to null
    return format(Decimal(repr(value)), "f")


def _texts(value: Any, out: list[str | None]) -> None:
    if value is None:
        out.append(None)
    elif isinstance(value, _Text):
        out.append(_float_text(value))
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, (str, int)):
        out.append(str(value))
    elif isinstance(value, list):
        for item in value:
            _texts(item, out)
    # an object where a value belongs is not indexable as this field: treated as missing


def python_fields(doc: Any, fields: FieldSet = HUNT) -> dict[str, list[str | None]] | str:
    """Field lists of one parsed document, or the reason it is not a document."""
    if not isinstance(doc, dict):
        return f"not a JSON object (a {type(doc).__name__.replace('dict', 'object')})"
    root = doc
    if "_source" in doc and doc["_source"] is not None:
        root = doc["_source"]
        if not isinstance(root, dict):
            return "_source is not an object"
    out: dict[str, list[str | None]] = {}
    for name in fields.names:
        values: list[str | None] = []
        for path in key_paths(name):
            node: Any = root
            for key in path:
                node = node.get(key, None) if isinstance(node, dict) else None
                if node is None:
                    break
            if node is not None:
                _texts(node, values)
        # a lone surrogate escape (\ud800) holds no character: Elasticsearch indexes it
        # as U+FFFD, as Lucene writes an unpaired surrogate in UTF-8
        out[name] = [None if v is None else _LONE_SURROGATE.sub("\ufffd", v) for v in values]
    return out


def _python_frame(
    rows: list[tuple[int, dict[str, list[str | None]]]], fields: FieldSet
) -> pl.DataFrame:
    schema: dict[str, Any] = {
        POS: pl.Int64,
        _BAD: pl.Boolean,
        **{name: TEXT_LIST for name in fields.names},
    }
    return pl.DataFrame(
        {
            POS: [pos for pos, _ in rows],
            _BAD: [False] * len(rows),
            **{name: [values[name] for _, values in rows] for name in fields.names},
        },
        schema=schema,
    )


# ------------------------------------------------------------------------------ reading


def read_batches(file: InputFile, report: FileReport, *, strict: bool,
                 prefilter: Prefilter | IdPrefilter | None = None,
                 floor: TimeFloor | None = None,
                 fields: FieldSet = HUNT,
                 pending: Pending | None = None,
                 scanned: Scanned | None = None) -> Iterator[Any]:  # fmt: skip
    """Field batches of one file (see the module docstring), malformed records noted in
    ``report``; with a ``prefilter``, also :class:`Stamps` of the records not decoded
    (when ``floor`` has a window). May yield :data:`RESTART` once, then the careful
    reader's batches.

    ``pending``, shared across files, gathers the lines to decode of small files: the
    file's last ones are left there for the caller to decode (:meth:`Pending.flush`)
    after the file, with the next files' ones. Without it, every line is decoded
    before the file's batches end (in a queue of the file's own). ``scanned``, shared
    too, scans small files' lines together ahead of their turn."""
    floor = floor or TimeFloor(window_ms=None)
    if file.format == "parquet":
        yield from _parquet_batches(file, report, prefilter, floor, fields)
        return
    if file.format == "json":
        yield from _json_document_batches(file, report, strict=strict, fields=fields)
        return
    started = False
    queue = pending if pending is not None else Pending(fields)
    queue.begin_file()
    try:
        for batch in _fast_ndjson(file, report, strict=strict, prefilter=prefilter,
                                  floor=floor, pending=queue, scanned=scanned):  # fmt: skip
            started = True
            yield batch
        if pending is None:
            yield from queue.flush(strict=strict)
        return
    except DataError:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError):
        pass  # damage somewhere: start the file again with the careful reader
    queue.drop_file()  # the careful reader reads its lines again
    if started:
        yield RESTART
    report.reset()
    report.reader = "careful"
    yield from _careful_ndjson(file, report, strict=strict, fields=fields)


_READ_SIZE: Final = 4 << 20  # bytes Polars reads at a time from a file of lines (_lines)
_READ_SIZE_VAR: Final = "POLARS_FORCE_NDJSON_READ_SIZE"
_FETCH_SIZE: Final = 8 << 20  # bytes Polars fetches from the file at a time, 4 ahead
_FETCH_SIZE_VAR: Final = "POLARS_NDJSON_CHUNK_SIZE"
_DECODE_PIECE: Final = 128  # lines decoded as one chunk (see _json_decode)
_DECODE_BYTES: Final = 16 << 20  # text of lines to decode gathered before decoding
_PARKED_BYTES: Final = 64 << 20  # text of lines held back in memory (see _Parked)
_PARK_TEXT: Final = 1536 << 20  # compressed files up to this (decompressed) hold lines back
_SMALL_TEXT: Final = 16 << 20  # NDJSON files up to this much text are scanned together...
_SCANNED_TEXT: Final = 32 << 20  # ...up to this much text at a time (see Scanned)
_FILE: Final = "__file"
_LINE_ROWS: Final = 16_384  # NDJSON lines a streamed batch holds, when nothing is known
_MIN_LINE_ROWS: Final = 4_096  # at least
_MAX_LINE_ROWS: Final = 1 << 20  # and at most
_SHAPE_START: Final = r"^[\s\ufeff]*\{"
_SHAPE_END: Final = r"\}\s*$"
# The first @timestamp value: text or number, alone or in an array; an array that goes on
# after it (",") holds several values, which make no timestamp, as in the engine.
_TS_KEY: Final = '"@timestamp":"'
#: decodes only the record's own @timestamp, in every layout (see _account)
_TIMESTAMP_ONLY: Final = FieldSet((f_TIMESTAMP,))
_TS_ANY: Final = r'"@timestamp"\s*:\s*(\[?)\s*"?([^",\]\s]*)"?\s*(,?)'
# Columns of the line scan (see _fast_ndjson)
_COULD: Final = "__could"
_STAMP: Final = "__stamp"
_KEYS: Final = "__keys"
_SHAPED: Final = "__shaped"
_BYTES: Final = "__bytes"
_HINT: Final = "__hint"


def _filled(line: pl.Expr) -> pl.Expr:
    """Does a line hold more than white space? A byte order mark before it is not a
    record either: it says how the text is encoded (decoding strips it too)."""
    return line.str.strip_prefix("\ufeff").str.contains(r"\S")


def _irregular() -> pl.Expr:
    """Judged lines that need a second look when they are not decoded: not shaped like an
    object (blank lines too), or holding a timestamp the scan did not read."""
    return ~pl.col(_SHAPED) | (pl.col(_STAMP).is_null() & pl.col("line").is_not_null())


def _to_decode(frame: pl.DataFrame, decode: pl.Expr, *keep: str) -> pl.DataFrame:
    """``__pos`` and ``line`` (and the columns ``keep``) of the lines ``decode`` picks
    (only those columns are filtered: most lines are not decoded, and their text need not
    be copied)."""
    text = pl.col("line")
    return frame.select(
        *[pl.col(name).filter(decode) for name in (*keep, POS)],
        text.filter(decode).str.strip_prefix("\ufeff"),
    )


def _prunable(floor_ms: int | None) -> pl.Expr:
    """Lines whose timestamp, read from their text, is at most ``floor_ms``: they hold one
    ``@timestamp`` key (:func:`_timestamp_keys`), in the canonical form. Such a line is
    outside the window whatever else it holds: if the key is not the record's own
    @timestamp, the record has none, and a record without one is outside too. (Inside a
    JSON string a quote is escaped, so ``"@timestamp":"`` is always a key.)
    """
    if floor_ms is None:
        return pl.lit(False)
    return (pl.col(_STAMP) <= floor_ms).fill_null(False)


def _stamp_head(line: pl.Expr) -> pl.Expr:
    """The first 31 bytes after the first ``"@timestamp":"``: as far as a canonical value
    and its closing quote can reach, for ``canonical_ms(..., quoted=True)``. Anything
    longer, or cut inside a character (null), is not canonical."""
    start = line.str.find(_TS_KEY, literal=True) + len(_TS_KEY)
    return line.cast(pl.Binary).bin.slice(start, 31).cast(pl.String, strict=False)


def _plain_stamp_text(line: pl.Expr) -> pl.Expr:
    """The text of the first ``"@timestamp":"..."`` value, as far as :func:`_stamp_head`
    reaches; null where no quote closes it there."""
    head = _stamp_head(line)
    return head.str.head(head.str.find('"', literal=True))


def _timestamp_keys(line: pl.Expr) -> pl.Expr:
    """How many ``"@timestamp"`` keys a line holds. The first ``"@timestamp":"`` value is
    the record's own only when there is one: a second may be the record's, after one
    nested in another object. (A record whose only key is nested has no @timestamp of its
    own; Elasticsearch's data streams refuse such a document, see the README.)"""
    return line.str.count_matches(_any_of('"@timestamp"'))


def _lines(file: InputFile, **options: Any) -> pl.LazyFrame:
    """``pl.scan_lines`` of ``file``; run it inside :func:`_reads_for`."""
    return pl.scan_lines(file.path, name="line", glob=False, **options)


def _check_read_settings() -> None:
    """Before NDJSON is read: Polars' read settings that :func:`_reads_for` keeps when the
    user has set them must be sizes in bytes. Polars' threads panic on any other value,
    and every file would fall back to the slow reader."""
    for name, ours in ((_READ_SIZE_VAR, _READ_SIZE), (_FETCH_SIZE_VAR, _FETCH_SIZE)):
        value = os.environ.get(name)
        if value is not None and not (
            value.isascii() and value.isdigit() and 0 < int(value) < 1 << 63
        ):
            raise UsageError(
                f"the environment variable {name}={value!r} is not a size in bytes; "
                f"unset it (egress-offline then uses {ours}) or set a whole number above 0"
            )


@contextmanager
def _reads_for(file: InputFile) -> Iterator[None]:
    """While a scan of ``file``'s lines runs: Polars reads :data:`_READ_SIZE` bytes at a
    time where the file's first 64 KiB held whole lines. Polars' own reads grow to tens of
    MiB, each into fresh memory that the kernel must map and zero; reads of a few MiB reuse
    memory (1 GB of NDJSON: 80,000 page faults instead of 132,000, and the hunt about 7%
    faster). A line longer than a read is copied again with each further read, so a file
    without line ends in its first 64 KiB (one huge line, or old Mac line ends) is read
    with Polars' growing reads.

    Polars fetches the file's bytes ahead of those reads, four pieces at a time, of
    :data:`_FETCH_SIZE` bytes here instead of Polars' 32 MiB: at most 32 MiB in flight
    instead of 128, so less fresh memory to map and zero, and the first lines arrive
    sooner (1 GB of NDJSON: the hunt about 5% faster; 4 GB: peak memory 300 to 320 MiB
    instead of 415 to 430).

    Polars reads the settings from the environment when a scan starts. They are set once
    and left set (the environment is changed as rarely as can be: Polars' threads read
    it), so a library caller's own scans of lines read this way too. A value the user has
    set is kept."""
    if _FETCH_SIZE_VAR not in os.environ:
        os.environ[_FETCH_SIZE_VAR] = str(_FETCH_SIZE)
    ours = str(_READ_SIZE)
    current = os.environ.get(_READ_SIZE_VAR)
    if current is not None and current != ours:  # the user's
        yield
    elif file.line_bytes:
        if current is None:
            os.environ[_READ_SIZE_VAR] = ours
        yield
    elif current is None:
        yield
    else:
        del os.environ[_READ_SIZE_VAR]
        try:
            yield
        finally:
            os.environ[_READ_SIZE_VAR] = ours


def _line_scan(
    file: InputFile, prefilter: Prefilter | IdPrefilter | None, floor_ms: int | None
) -> pl.LazyFrame:
    """Every line of a file, judged from its text in one streaming pass: may it match
    (the prefilter), its canonical @timestamp if it holds one ``@timestamp`` key, is it
    shaped like a JSON object. The text itself leaves the scan only where a later step
    needs it: lines that may match and are not older than ``floor_ms``, and lines whose
    shape or timestamp must be looked at again. Each column is computed once, in stages
    (the streaming engine does not share sub-expressions)."""
    stages, kept = _line_stages(prefilter, floor_ms)
    return _judged(_lines(file, row_index_name=POS, row_index_offset=1), stages).select(*kept)


def _judged(lines: pl.LazyFrame, stages: tuple[tuple[pl.Expr, ...], ...]) -> pl.LazyFrame:
    """``lines`` with the judgement columns of :func:`_line_stages`, stage by stage."""
    for stage in stages:
        lines = lines.with_columns(*stage)
    return lines


@lru_cache(maxsize=64)
def _line_stages(
    prefilter: Prefilter | IdPrefilter | None, floor_ms: int | None
) -> tuple[tuple[tuple[pl.Expr, ...], ...], tuple[pl.Expr, ...]]:
    """The expressions of :func:`_line_scan`: its three judging stages (judged from the
    text, the timestamp parsed, searched by the prefilter; see :func:`_judged`) and the
    columns kept, built once for the files that share them (about 1.5 ms each time: a
    directory of small files pays it often)."""
    line = pl.col("line")
    old = _prunable(floor_ms) if prefilter is not None else pl.lit(False)
    if prefilter is None:  # --strict decodes every record: nothing is judged from its text
        could = _filled(line)
    elif floor_ms is None:
        could = prefilter.could_match(line)
    else:  # a line known to be old is never decoded, whatever it holds: not searched
        could = prefilter.could_match(pl.when(~old).then(line)).fill_null(False)
    # an @timestamp that is not canonical, or a line with several keys, is read later; a
    # line without one needs nothing
    odd = pl.col(_STAMP).is_null() & (pl.col(_KEYS) > 0)
    needed = (pl.col(_COULD) & ~old) | ~pl.col(_SHAPED) | odd
    hint = prefilter.hint if isinstance(prefilter, IdPrefilter) else None
    hinted = [line.str.contains(hint).alias(_HINT)] if hint is not None else []
    judged = (
        _stamp_head(line).alias(_STAMP),
        (line.str.starts_with("{") & line.str.ends_with("}")).alias(_SHAPED),
        (line.str.len_bytes() + 1).alias(_BYTES),
        _timestamp_keys(line).alias(_KEYS),
        *hinted,
    )
    # with several keys the first may be nested in another object: not the record's
    parsed = (
        pl.when(pl.col(_KEYS) == 1).then(canonical_ms(pl.col(_STAMP), quoted=True)).alias(_STAMP),
    )
    searched = (could.alias(_COULD),)
    kept = (
        pl.col(POS).cast(pl.Int64),
        pl.col(_COULD),
        pl.col(_STAMP),
        pl.col(_SHAPED),
        pl.col(_BYTES),
        *([pl.col(_HINT)] if hinted else []),
        pl.concat_str([pl.when(needed).then(line), pl.lit("")]).alias("line"),
    )
    return (judged, parsed, searched), kept


def _batch_rows(file: InputFile, text_bytes: int) -> int:
    """Lines per batch: about ``text_bytes`` of text, between 4Ki and 1Mi lines (tiny
    lines would otherwise make many tiny batches)."""
    if not file.line_bytes:
        return _LINE_ROWS
    return max(_MIN_LINE_ROWS, min(_MAX_LINE_ROWS, text_bytes // file.line_bytes))


def _fast_ndjson(file: InputFile, report: FileReport, *, strict: bool,
                 prefilter: Prefilter | IdPrefilter | None, floor: TimeFloor,
                 pending: Pending, scanned: Scanned | None = None) -> Iterator[Any]:  # fmt: skip
    """One streaming pass over the lines (:func:`_line_scan`), or the lines ``scanned``
    with other small files'; each batch of judged lines is accounted for here,
    vectorised, and its lines to decode go to ``pending`` (the last ones are left there,
    see :func:`read_batches`)."""
    latest = isinstance(prefilter, Prefilter) and floor.rising
    # --now latest: a first bound on the anchor lets old lines be skipped from the start:
    # from the file's ends, sampled here or before any file was read (TimeFloor.sample).
    # A compressed file's end cannot be sampled: lines that may match are held back until
    # they are old (_Parked), unless the file is long, when a quick first pass over its
    # timestamps costs less.
    if latest:
        floor.sample([file])
    held_back = latest and file.compression != "none" and file.text_size <= _PARK_TEXT
    if latest and file.compression != "none" and not held_back:
        assert isinstance(prefilter, Prefilter)
        floor.observe(_latest_scanned(file, prefilter))
    floor_ms = floor.ms if prefilter is not None else None
    ahead = scanned.take(file, prefilter, floor_ms) if scanned is not None else None
    expected = max(1, _text_estimate(file))
    seen = 0
    # with --strict every line's text leaves the scan, and with no window (sweep, pivot,
    # --all-time) every line that may match is decoded: smaller batches bound memory
    text_bytes = 8 << 20 if prefilter is None else 32 << 20 if floor.window_ms else 16 << 20
    if ahead is not None:
        # one batch, accounted for already; not held back: that would judge its lines
        # again only after its own batch, which costs more (1,000 gzip files of 1 MB:
        # 2 ms a file) than decoding the few that would turn old
        for batch, accounted in ahead:
            yield from _line_batch(batch, report, pending, strict=strict, prefilter=prefilter,
                                   floor=floor, accounted=accounted)  # fmt: skip
        return
    parked = _Parked() if held_back else None
    with _reads_for(file):
        scan = _line_scan(file, prefilter, floor_ms)
        for chunked in scan.collect_batches(chunk_size=_batch_rows(file, text_bytes)):
            # a batch comes in many small chunks; every later step is much faster on one
            batch = chunked.rechunk()
            seen += int(batch.get_column(_BYTES).sum())
            if parked is not None:
                batch = parked.keep(batch, floor)
                if parked.size > _PARKED_BYTES:
                    # more text than that may still be in the window: decode it as it comes
                    for held in parked.release():
                        yield from _line_batch(held, report, pending, strict=strict,
                                               prefilter=prefilter, floor=floor)  # fmt: skip
                    parked = None
            yield from _line_batch(batch, report, pending, strict=strict,
                                   prefilter=prefilter, floor=floor)  # fmt: skip
            report.progress = min(0.99, seen / expected)
    for held in parked.release() if parked is not None else ():
        yield from _line_batch(held, report, pending, strict=strict, prefilter=prefilter,
                               floor=floor)  # fmt: skip


class _Parked:
    """Judged lines that may match and are not yet known to be old, held back until they
    are (``--now latest``, compressed files). A compressed file cannot be sampled at its
    end, so the floor only rises as reading goes, and in a file in time order every line
    looks new when it is read. Held back, most become old while reading goes on and are
    skipped undecoded like any other old line; the rest are decoded at the end of the
    file. The held lines are judged again after every batch; their text is bounded by
    :data:`_PARKED_BYTES` (see :func:`_fast_ndjson` for what happens beyond)."""

    def __init__(self) -> None:
        self.held: list[_Held] = []

    @property
    def size(self) -> int:
        return sum(part.size for part in self.held)

    def keep(self, batch: pl.DataFrame, floor: TimeFloor) -> pl.DataFrame:
        """Hold back the lines of ``batch`` to decode that are not old yet, and give back
        the rest of it with the lines held before that are old now. A part whose lines
        are all old, or none, is told from its timestamps' range, without a look at it."""
        low = floor.ms
        old = _prunable(low)
        later = pl.col(_COULD) & ~old
        out = [batch.filter(~later)]
        held, self.held = [*self.held, _Held.of(batch.filter(later))], []
        for part in held:
            if part.frame.height == 0:
                continue
            if (
                low is not None
                and part.all_turn_old
                and part.newest is not None
                and part.newest <= low
            ):
                out.append(part.frame)  # whole parts, most often: no copy
            elif low is None or part.oldest is None or part.oldest > low:
                self.held.append(part)
            else:
                out.append(part.frame.filter(old))
                self.held.append(_Held.of(part.frame.filter(~old)))
        return pl.concat([part for part in out if part.height] or out[:1])

    def release(self) -> list[pl.DataFrame]:
        """Every line still held, to be judged with the floor as it is now."""
        held, self.held = self.held, []
        return [part.frame for part in held]


@dataclass(frozen=True)
class _Held:
    """A part of the held lines: the bytes of its text, and the range of the timestamps
    by which its lines can turn old (one canonical @timestamp key each, see
    :func:`_prunable`): ``oldest`` is None when none can, ``all_turn_old`` says whether
    every line can."""

    frame: pl.DataFrame
    size: int
    oldest: int | None
    newest: int | None
    all_turn_old: bool

    @staticmethod
    def of(frame: pl.DataFrame) -> _Held:
        can = pl.col(_STAMP).is_not_null()
        size, oldest, newest, every = frame.select(
            pl.col("line").str.len_bytes().sum().alias("size"),
            pl.col(_STAMP).filter(can).min().alias("oldest"),
            pl.col(_STAMP).filter(can).max().alias("newest"),
            can.all().alias("all"),
        ).row(0)
        return _Held(frame, int(size or 0), oldest, newest, bool(every) and frame.height > 0)


def _text_bytes(lines: pl.DataFrame) -> int:
    return int(lines.select(pl.col("line").str.len_bytes().sum()).item() or 0)


_Part = TypeVar("_Part")


class FileParts(Generic[_Part]):
    """Parts gathered across files, each with its size in bytes; those added since
    :meth:`begin_file` are the current file's. A file that is read again drops its own
    (:meth:`drop_file`); the earlier files' ones are taken only between files, so that
    nothing of theirs comes out while a file is read (see :class:`Pending`)."""

    def __init__(self) -> None:
        self.parts: list[tuple[_Part, int]] = []
        self._start = 0  # the parts before it are the earlier files'

    def begin_file(self) -> None:
        self._start = len(self.parts)

    def drop_file(self) -> None:
        del self.parts[self._start :]

    @property
    def size(self) -> int:
        """Bytes of every file's parts."""
        return sum(size for _, size in self.parts)

    @property
    def own_size(self) -> int:
        """Bytes of the current file's parts."""
        return sum(size for _, size in self.parts[self._start :])

    def take(self, *, own: bool) -> list[_Part]:
        """Remove and return the current file's parts (``own``), or every file's."""
        start = self._start if own else 0
        taken = [part for part, _ in self.parts[start:]]
        del self.parts[start:]
        return taken


class Gathered(FileParts[pl.DataFrame]):
    """Frames gathered across files, up to ``bound`` bytes, then handed to ``consume``
    together: for work that costs much whatever its size (some ten or twenty queries),
    which a directory of small files would pay for each file. A file's own frames are
    handed over once they reach the bound while it is read, the earlier files' only
    between files (:meth:`settle`), so that a rollback to the start of a file the fast
    reader gives up on (:meth:`drop_file` drops its own) never takes an earlier file's
    with it."""

    def __init__(self, consume: Callable[[pl.DataFrame], None], bound: int, *,
                 alone: int | None = None, columns: Sequence[str] = ()) -> None:  # fmt: skip
        super().__init__()
        self._consume, self._bound, self._alone = consume, bound, alone
        self._columns = list(columns)

    def add(self, frame: pl.DataFrame) -> None:
        """Gather ``frame`` (only ``columns``, when given: readers may add columns of
        their own); one of at least ``alone`` bytes is handed over at once, by itself
        (gathering large frames only raises peak memory)."""
        if frame.height == 0:
            return
        frame = frame.select(self._columns) if self._columns else frame
        size = int(frame.estimated_size())
        if self._alone is not None and size >= self._alone:
            self._consume(frame)
            return
        self.parts.append((frame, size))
        if self.own_size >= self._bound:
            self._hand(self.take(own=True))

    def settle(self) -> None:
        """Between files: hand over what is gathered once it is large enough."""
        if self.size >= self._bound:
            self.flush()

    def flush(self) -> None:
        self._hand(self.take(own=False))

    def _hand(self, frames: list[pl.DataFrame]) -> None:
        if frames:
            self._consume(pl.concat(frames, rechunk=True))


class Pending(FileParts[tuple[FileReport, pl.DataFrame]]):
    """Lines to decode, gathered up to a bound before they are decoded together: decoding
    competes with the scan for the engine's threads, and is much faster after it. Each
    decoding also has a fixed cost (some ten queries, about 8 ms) that a directory of
    small files paid for each file: the hunt's engine shares one across files.

    A file's own lines are decoded once they reach the bound (:meth:`flush_file`, while
    it is read); the earlier files' ones only by the caller, between files
    (:meth:`flush`), so that a file the fast reader gives up on can drop its own lines
    (:meth:`drop_file`) and no earlier file's rows come out while it is read. Each part
    keeps the report its malformed lines are counted in."""

    def __init__(self, fields: FieldSet) -> None:
        super().__init__()
        self.fields = fields

    def add(self, report: FileReport, lines: pl.DataFrame, size: int | None = None) -> bool:
        """Keep ``lines`` (``__pos``, ``line``; ``size`` bytes of text, when known) of the
        file ``report`` counts; True when its own lines should be decoded now."""
        self.parts.append(((report, lines), _text_bytes(lines) if size is None else size))
        return self.own_size >= _DECODE_BYTES

    def flush_file(self, *, strict: bool) -> Iterator[pl.DataFrame]:
        """Decode the current file's lines."""
        yield from self._decode(self.take(own=True), strict=strict)

    def flush(self, *, strict: bool) -> Iterator[pl.DataFrame]:
        """Decode every file's lines."""
        yield from self._decode(self.take(own=False), strict=strict)

    def settle(self, *, strict: bool) -> Iterator[pl.DataFrame]:
        """Between files: decode every file's lines once they reach the bound."""
        if self.size >= _DECODE_BYTES:
            yield from self.flush(strict=strict)

    def _decode(
        self, parts: list[tuple[FileReport, pl.DataFrame]], *, strict: bool
    ) -> Iterator[pl.DataFrame]:
        if not parts:
            return
        # the lines are numbered in one sequence while decoded, and each malformed one is
        # told to its own file's report at its own line number
        firsts, owners, frames, number = [], [], [], 0
        for report, lines in parts:
            firsts.append(number)
            owners.append((report, lines.get_column(POS)))
            frames.append(
                lines.with_columns(pl.int_range(number, number + lines.height).alias(POS))
            )
            number += lines.height
        bad: list[tuple[int, str]] = []
        decoded = _decode_lines(pl.concat(frames).rechunk(), bad, self.fields)
        for sequence, reason in sorted(bad):  # --strict stops at the first
            owner = bisect.bisect(firsts, sequence) - 1
            report, positions = owners[owner]
            report.note_malformed(positions[sequence - firsts[owner]], reason, strict=strict)
        if decoded.height:
            yield decoded


class Scanned:
    """The judged lines of small NDJSON files, scanned together ahead of their turn.

    Each scan of a file's lines has a fixed cost (the streaming engine's start, the
    judging expressions' set-up: about 3 ms), which a directory of small files paid for
    each file. When a small file's turn comes, it and the small files that follow it in
    ``files`` are scanned in one query, up to :data:`_SCANNED_TEXT` of text, and each
    file's judged lines are kept for its turn, with what accounting for them takes (see
    :class:`_Accounted`). A file is then read as if it had been scanned alone: its own
    line numbers, damage, records and time range. Its lines were judged against the floor
    as it was at the scan, which is exact: a floor only rises. If the scan together fails
    (a damaged file among them), each file is scanned alone, as before, and meets its
    damage there."""

    def __init__(self, files: Sequence[InputFile]) -> None:
        self._files = list(files)
        self._index = {file: number for number, file in enumerate(self._files)}
        self._judged: dict[InputFile, list[tuple[pl.DataFrame, _Accounted]]] = {}
        self._alone: set[InputFile] = set()
        self._prefilter: Prefilter | IdPrefilter | None = None  # the judged lines'

    def take(self, file: InputFile, prefilter: Prefilter | IdPrefilter | None,
             floor_ms: int | None) -> list[tuple[pl.DataFrame, _Accounted]] | None:  # fmt: skip
        """``file``'s judged lines (as :func:`_line_scan` gives them) as batches, each
        with what accounting for it takes, or None when it is to be scanned alone."""
        if file in self._judged:
            own = self._judged.pop(file)
            return own if prefilter == self._prefilter else None
        if file in self._alone or not _small(file) or file not in self._index:
            return None
        group = [file]
        text = _text_estimate(file)
        for later in itertools.islice(self._files, self._index[file] + 1, None):
            if not _small(later) or later in self._judged or later in self._alone:
                break
            if text + _text_estimate(later) > _SCANNED_TEXT:
                break
            group.append(later)
            text += _text_estimate(later)
        if len(group) == 1:
            return None
        try:
            judged = _scan_together(group, prefilter, floor_ms)
        except (pl.exceptions.PolarsError, OSError, ValueError):
            self._alone.update(group)
            return None
        self._judged.update(judged)
        self._prefilter = prefilter
        return self._judged.pop(file)


def _small(file: InputFile) -> bool:
    """Is ``file`` read with others in one scan (see :class:`Scanned`)? NDJSON of at most
    :data:`_SMALL_TEXT` of text (estimated), whose first 64 KiB held whole lines or that
    is shorter than that (an empty file, or one line without a line end)."""
    if file.format != "ndjson":
        return False
    text = _text_estimate(file)
    return text < _PEEK if not file.line_bytes else text <= _SMALL_TEXT


def _text_estimate(file: InputFile) -> int:
    return file.text_size or file.size


def _split(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """``frame``'s rows by their file (the path), in order, without the path."""
    parts = frame.partition_by(_FILE, maintain_order=True, include_key=False, as_dict=True)
    return {str(key[0]): part for key, part in parts.items()}


_NO_LINES: Final = pl.DataFrame(schema={POS: pl.Int64, "line": pl.String})
_NO_STAMPS: Final = pl.Series(_STAMP, [], dtype=pl.Int64)


@dataclass(frozen=True)
class _Accounted:
    """What accounting for a small file's judged lines takes (see :func:`_line_batch`),
    found for the files scanned together in a few queries, instead of a few for each file.
    The lines were judged against the floor as it was at the scan: exact, as the floor
    only rises (a line judged again later may only turn old)."""

    odd: bool  # some line not decoded needs a second look: accounted for alone
    wanted: pl.DataFrame  # __pos and text of the lines to decode
    wanted_bytes: int
    low: int | None  # @timestamp range of the lines not decoded
    high: int | None
    stamps: pl.Series  # theirs that may be in the window


def _scan_together(
    files: list[InputFile], prefilter: Prefilter | IdPrefilter | None, floor_ms: int | None
) -> dict[InputFile, list[tuple[pl.DataFrame, _Accounted]]]:
    """:func:`_line_scan` of several files in one query: each file's judged lines, and
    what accounting for them takes."""
    stages, kept = _line_stages(prefilter, floor_ms)
    paths = [str(file.path) for file in files]
    scan = pl.scan_lines(
        paths, name="line", row_index_name=POS, glob=False, include_file_paths=_FILE
    )
    with _reads_for(next((file for file in files if file.line_bytes), files[0])):
        judged = (
            _judged(scan, stages)
            .select(*kept, pl.col(_FILE))
            # each line's number in its own file
            .with_columns((pl.col(POS) - pl.col(POS).min().over(_FILE) + 1).alias(POS))
            .collect(engine="streaming")
        )
    # lines older than floor_ms were judged unable to match in the scan (_line_stages)
    decode, text, stamp = pl.col(_COULD), pl.col("line"), pl.col(_STAMP)
    skip = ~decode
    sums = judged.group_by(_FILE).agg(
        (skip & _irregular()).any().alias("odd"),
        text.filter(decode).str.len_bytes().sum().alias("bytes"),
        stamp.filter(skip).min().alias("low"),
        stamp.filter(skip).max().alias("high"),
    )
    fresh = stamp.is_not_null() if floor_ms is None else stamp > floor_ms
    wanted = _split(_to_decode(judged, decode, _FILE))
    stamps = _split(judged.filter(skip & fresh).select(_FILE, stamp))
    lines = _split(judged)
    accounted: dict[str, _Accounted] = {}
    for path, odd, size, low, high in sums.iter_rows():
        accounted[path] = _Accounted(
            odd=odd,
            wanted=wanted.get(path, _NO_LINES),
            wanted_bytes=int(size or 0),
            low=low,
            high=high,
            stamps=stamps[path].to_series() if path in stamps else _NO_STAMPS,
        )
    return {
        file: [(lines[path], accounted[path])] if path in lines else []
        for file, path in zip(files, paths, strict=True)
    }


def _line_batch(batch: pl.DataFrame, report: FileReport, pending: Pending, *, strict: bool,
                prefilter: Prefilter | IdPrefilter | None, floor: TimeFloor,
                accounted: _Accounted | None = None) -> Iterator[Any]:  # fmt: skip
    """Account for one batch of judged lines: yield the @timestamps of the records not
    decoded that may be in the window, and the decoded fields of those that may match.
    A batch whose lines are all plain (shaped like an object, with a canonical timestamp
    or none) is accounted for in three queries: each query waits for threads that the scan
    keeps busy, so fewer queries cost less (1 GB: 0.49 s in some ten before); or in none,
    ``accounted`` for already with other small files' (see :class:`Scanned`)."""
    text = pl.col("line")
    if _HINT in batch.columns and not report.hinted:
        report.hinted = bool(batch.get_column(_HINT).any())
    if accounted is not None and not accounted.odd:
        report.records += batch.height
        report.cover_range(accounted.low, accounted.high)
        flush = bool(accounted.wanted.height) and pending.add(
            report, accounted.wanted, accounted.wanted_bytes
        )
        if accounted.low is not None:
            floor.observe(report.last_ms)
            if floor.window_ms is not None and accounted.stamps.len():
                yield Stamps(accounted.stamps)
        if flush:
            yield from pending.flush_file(strict=strict)
        return
    # the floor may have risen since the scan began (--now latest): judge again
    decode = pl.col(_COULD)
    if prefilter is not None:
        decode &= ~_prunable(floor.ms)
    skip = ~decode
    stamp = pl.col(_STAMP)
    odd, wanted_n, wanted_bytes, low, high = batch.select(
        (skip & _irregular()).any().alias("odd"),
        decode.sum().alias("decode"),
        text.filter(decode).str.len_bytes().sum().alias("bytes"),
        stamp.filter(skip).min().alias("low"),
        stamp.filter(skip).max().alias("high"),
    ).row(0)
    if odd:
        yield from _odd_line_batch(batch, report, pending, strict=strict, decode=decode,
                                   floor=floor)  # fmt: skip
        return
    report.records += batch.height
    report.cover_range(low, high)
    flush = False
    if wanted_n:
        flush = pending.add(report, _to_decode(batch, decode), wanted_bytes)
    if low is not None:
        floor.observe(report.last_ms)
        counted = floor.stamps_of(batch, stamp.filter(skip))
        if counted is not None:
            yield counted
    if flush:
        yield from pending.flush_file(strict=strict)


def _odd_line_batch(batch: pl.DataFrame, report: FileReport, pending: Pending, *,
                    strict: bool, decode: pl.Expr, floor: TimeFloor) -> Iterator[Any]:  # fmt: skip
    """:func:`_line_batch` for a batch with blank lines, lines not shaped like an object
    or timestamps that are not canonical."""
    text = pl.col("line")
    # blank lines are not records; only lines not shaped like an object can be blank
    blank = ~pl.col(_SHAPED) & ~_filled(text).fill_null(True)
    frame = batch.filter(~blank) if batch.select(blank.any()).item() else batch
    wanted = _to_decode(frame, decode)
    bad: list[tuple[int, str]] = []
    stamps = _account(frame, ~decode, report, bad)
    flush = False
    if wanted.height:
        report.records += wanted.height
        flush = pending.add(report, wanted)
    for position, reason in bad:  # in line order; the report keeps the first few
        report.note_malformed(position, reason, strict=strict)
    if stamps.len():
        floor.observe(report.last_ms)
        counted = floor.stamps(stamps)
        if counted is not None:
            yield counted
    if flush:
        yield from pending.flush_file(strict=strict)


def _account(frame: pl.DataFrame, skip: pl.Expr, report: FileReport,
             bad: list[tuple[int, str]]) -> pl.Series:  # fmt: skip
    """Count the records of ``frame`` that are not decoded (``skip``; those not shaped
    like a JSON object go to ``bad``) and return the @timestamps (epoch ms) of the others:
    canonical ones from the scan, any other form parsed here, on those lines only. A line
    with several ``@timestamp`` keys is decoded for its own (its damage goes to ``bad``)."""
    text = pl.col("line")
    skipped, odd = frame.select(
        skip.sum().alias("n"), (skip & _irregular()).any().alias("odd")
    ).row(0)
    report.records += skipped
    if not odd:
        stamps = frame.select(pl.col(_STAMP).filter(skip).drop_nulls()).to_series()
        report.cover(stamps)
        return stamps
    rest = frame.filter(skip)
    shaped = pl.col(_SHAPED) | (
        text.str.contains(_SHAPE_START) & text.str.contains(_SHAPE_END)
    ).fill_null(False)
    marked = rest.with_columns(shaped.alias(_SHAPED))
    bad.extend(
        (position, "not a complete JSON object")
        for position in marked.filter(~pl.col(_SHAPED)).get_column(POS)
    )
    good = marked.filter(pl.col(_SHAPED))
    keys = _timestamp_keys(text)
    parts = [good.get_column(_STAMP)]
    single = good.filter(pl.col(_STAMP).is_null() & (keys == 1))
    if single.height:  # one key, not in the canonical form: read by a pattern
        found = single.select(text.str.extract_groups(_TS_ANY).alias("__found")).unnest("__found")
        several = (pl.col("1") == "[") & (pl.col("3") == ",")
        parsed = found.select(timestamp_text_ms(pl.when(~several).then(pl.col("2"))))
        parts.append(parsed.to_series().cast(pl.Int64))
    keyed = good.filter(pl.col(_STAMP).is_null() & (keys > 1))
    if keyed.height:  # several keys: the first may be nested in another object
        lines = keyed.select(POS, text.str.strip_prefix("\ufeff"))
        decoded = _decode_lines(lines, bad, _TIMESTAMP_ONLY)
        parts.append(timestamps(decoded).cast(pl.Int64))
    stamps = pl.concat(parts).drop_nulls().alias(_STAMP)
    report.cover(stamps)
    return stamps


def _lone_surrogates(text: pl.Expr) -> pl.Expr:
    """Texts that may hold a lone UTF-16 surrogate escape (``\\ud800`` not followed by a
    low one): more surrogate escapes than twice the pairs. Polars' decoder reads a lone
    high one as NUL and fails on a lone low one, so these are decoded in Python, which
    writes U+FFFD as Elasticsearch does. (An escaped backslash before ``ud800`` counts too:
    such a text is only decoded more slowly.)"""
    return text.str.count_matches(_SURROGATE_ESCAPE) > 2 * text.str.count_matches(_SURROGATE_PAIR)


def _python_lines(
    lines: pl.DataFrame, out: list[pl.DataFrame], bad: list[tuple[int, str]], fields: FieldSet
) -> None:
    """Decode ``lines`` one by one in Python: a few lines (a damaged part bisected down to
    :data:`_BISECT_FLOOR`, or those of :func:`_lone_surrogates`)."""
    rows: list[tuple[int, dict[str, list[str | None]]]] = []
    for pos, text in lines.select(POS, pl.col("line").str.strip_chars()).iter_rows():
        result = _python_record(text, fields)
        if isinstance(result, str):
            bad.append((pos, result))
        else:
            rows.append((pos, result))
    if rows:
        out.append(_python_frame(rows, fields))


def _decode_lines(
    lines: pl.DataFrame, bad: list[tuple[int, str]], fields: FieldSet
) -> pl.DataFrame:
    """Field lists of ``lines``. Most hold each field only at its nested path
    and decode with a small schema; hits, escapes and dotted keys with the general one.
    A part that does not decode is bisected down to its bad lines (reasons to ``bad``)."""
    text = pl.col("line")
    general = lines.select(text.str.contains(fields.general)).to_series()
    doc = pl.col("__doc")
    nested, whole = _decoded_fields(fields)
    parts: list[pl.DataFrame] = []
    escaped = lines.filter(general)  # only these can hold a \u escape
    lone = escaped.select(_lone_surrogates(text)).to_series()
    if lone.any():
        _python_lines(escaped.filter(lone), parts, bad, fields)
        escaped = escaped.filter(~lone)
    for part, dtype, columns in (
        (lines.filter(~general), fields.nested_dtype, nested),
        (escaped, fields.document_dtype, whole),
    ):
        if part.height == 0:
            continue
        try:
            decoded = _json_decode(part, dtype)
        except pl.exceptions.PolarsError:
            _decode_bisect(_stripped(part), parts, bad, fields)
        else:
            parts.append(decoded.select(POS, doc.is_null().alias(_BAD), *columns))
    if not parts:
        return _python_frame([], fields).drop(_BAD)
    merged = pl.concat(parts, how="vertical")
    bad.extend((p, "not a JSON object (null)") for p in merged.filter(pl.col(_BAD))[POS])
    return merged.filter(~pl.col(_BAD)).drop(_BAD)


@lru_cache(maxsize=8)
def _decoded_fields(fields: FieldSet) -> tuple[tuple[pl.Expr, ...], tuple[pl.Expr, ...]]:
    """The field columns of decoded lines: from the nested paths alone, and from every
    layout (:func:`doc_field_exprs`). Built once per field set (about 2 ms each time)."""
    doc = pl.col("__doc")
    nested = [_merge([_path_expr(doc, nested_path(name))]).alias(name) for name in fields.names]
    return tuple(nested), tuple(doc_field_exprs(doc, fields))


def _json_decode(lines: pl.DataFrame, dtype: Any) -> pl.DataFrame:
    """``__pos`` and ``__doc``, the lines decoded. Lines are decoded in pieces (many small
    chunks decode about five times faster than one large one); the result is made one
    chunk again, from which struct fields are read many times faster."""
    cut = in_pieces(lines, _DECODE_PIECE)
    return cut.select(POS, pl.col("line").str.json_decode(dtype).alias("__doc")).rechunk()


def _stripped(lines: pl.DataFrame) -> pl.DataFrame:
    return lines.with_columns(pl.col("line").str.strip_chars())


def _latest_scanned(file: InputFile, prefilter: Prefilter) -> int | None:
    """The newest canonical @timestamp among the lines that cannot match, are shaped like
    an object and hold one ``@timestamp`` key: those give theirs to the ``latest`` anchor
    whatever else happens, so the anchor is at least this. One quick streaming pass, with
    the line scan's own judgement (:func:`_line_stages`), for compressed files, whose end
    cannot be sampled."""
    stages, _ = _line_stages(prefilter, None)
    try:
        with _reads_for(file):
            latest = (
                _judged(_lines(file), stages)
                .select(pl.col(_STAMP).filter(~pl.col(_COULD) & pl.col(_SHAPED)).max())
                .collect(engine="streaming")
                .item()
            )
    except (pl.exceptions.PolarsError, OSError, ValueError):
        return None  # damage: the reading that follows says what and where
    return None if latest is None else int(latest)


_SAMPLE: Final = 64 * 1024  # bytes at each end of a file that seed --now latest
_SAMPLE_LINES: Final = 16  # lines at most, at each end


_SAMPLED_AT_ONCE: Final = 8192  # sampled lines judged together (at most some 16 MiB)
_DECODED_NEWEST: Final = 64  # of them, decoded at a time, newest first (see _latest_of)


def _sample_lines(file: InputFile) -> list[str]:
    """Whole lines in a file's first and last bytes that hold a timestamp key, a bounded
    number at each end (exports are in time order, one way or the other; of a compressed
    file, its first bytes only): they seed ``--now latest`` (:func:`_latest_of`). A line
    that is not UTF-8 is not a record (the careful reader counts it as malformed)."""
    if file.size == 0:
        return []
    try:
        if file.compression != "none":  # only its start can be read without reading it all
            head, tail = _peek_text(file.path, file.compression, file.size)[0], b""
        else:
            with file.path.open("rb") as handle:
                head = handle.read(_SAMPLE)
                handle.seek(max(0, file.size - _SAMPLE))
                tail = handle.read(_SAMPLE)
    except OSError:
        return []  # the reading that follows says what and where
    marked = [
        [line for line in part if b'"@timestamp"' in line]
        for part in (head.split(b"\n")[:-1], tail.split(b"\n")[1:])
    ]
    texts = []
    for line in marked[0][:_SAMPLE_LINES] + marked[1][-_SAMPLE_LINES:]:
        with suppress(UnicodeDecodeError):
            texts.append(line.decode("utf-8"))
    return texts


def _latest_of(texts: list[str]) -> int | None:
    """A lower bound of the newest @timestamp of the files whose sampled lines are
    ``texts`` (:func:`_sample_lines`). Only lines whose decoded @timestamp is the one the
    line scan reads count: the final anchor is then at least this, whichever way the line
    is read. The lines are decoded newest first by that reading, a few at a time, until
    one counts: no older line can give a newer bound (before, all were decoded: 1,000
    files, 32,000 lines, 0.86 s)."""
    if not texts:
        return None
    line = pl.col("line").str.strip_prefix("\ufeff").str.strip_chars()
    lines = pl.DataFrame({"line": texts}, schema={"line": pl.String}).select(
        line, _plain_stamp_text(line).alias(_STAMP)
    )
    # only a line whose canonical @timestamp the scan reads can count
    read = canonical_ms(pl.col(_STAMP))
    ranked = lines.filter(read.is_not_null()).sort(read, descending=True, maintain_order=True)
    for start in range(0, ranked.height, _DECODED_NEWEST):
        latest = _agreed_newest(ranked.slice(start, _DECODED_NEWEST).lazy())
        if latest is not None:
            return latest
    return None


def _agreed_newest(lines: pl.LazyFrame) -> int | None:
    """The newest @timestamp of ``lines`` (``line``) decoded that is the one the line
    scan reads (``__stamp``), in one query; a damaged line is passed over."""
    # the record's one @timestamp value, decoded, where it is the text the scan reads
    value = pl.col(f_TIMESTAMP)
    agreed = pl.when((value.list.len() == 1) & (value.list.first() == pl.col(_STAMP)))
    newest = canonical_ms(agreed.then(value.list.first())).max()
    try:
        latest = (
            lines.with_columns(
                pl.col("line").str.json_decode(_TIMESTAMP_ONLY.document_dtype).alias("__doc")
            )
            .select(*doc_field_exprs(pl.col("__doc"), _TIMESTAMP_ONLY), _STAMP)
            .select(newest)
            .collect(engine="in-memory")
            .item()
        )
    except pl.exceptions.PolarsError:  # a damaged line: decode the others on their own
        numbered = lines.with_row_index(POS).with_columns(pl.col(POS).cast(pl.Int64)).collect()
        decoded = _decode_lines(numbered.select(POS, "line"), [], _TIMESTAMP_ONLY)
        latest = decoded.join(numbered.select(POS, _STAMP), on=POS).select(newest).item()
    return None if latest is None else int(latest)


def _take_good(batch: pl.DataFrame, report: FileReport, *, strict: bool) -> pl.DataFrame:
    """Count a batch's records; a ``null`` line decodes to a null document: malformed."""
    report.records += batch.height
    bad = batch.filter(pl.col(_BAD))
    for pos in bad.get_column(POS).to_list():
        report.note_malformed(pos, "not a JSON object (null)", strict=strict)
    return batch.filter(~pl.col(_BAD)).drop(_BAD) if bad.height else batch.drop(_BAD)


def _decompressed_blocks(
    handle: IO[bytes], compression: Compression, note_damage: Any
) -> Iterator[bytes]:
    """Decompressed bytes of a file, up to the first damage, which is passed to
    ``note_damage`` instead of raised: everything before it is still delivered."""
    if compression == "none":
        while block := handle.read(_BLOCK):
            yield block
    elif compression == "gzip":
        yield from _gunzip(handle, note_damage)
    else:
        yield from _unzstd(handle, note_damage)


def _gunzip(handle: IO[bytes], note_damage: Any) -> Iterator[bytes]:
    yield from _members(
        handle, new_decoder=lambda: zlib.decompressobj(wbits=31), magic=_GZIP_MAGIC,
        kind="gzip", errors=(zlib.error,), note_damage=note_damage,
    )  # fmt: skip


def _unzstd(handle: IO[bytes], note_damage: Any) -> Iterator[bytes]:
    import zstandard  # noqa: PLC0415 - only zstd inputs need it

    yield from _members(
        handle, new_decoder=lambda: zstandard.ZstdDecompressor().decompressobj(),
        magic=_ZSTD_MAGIC, kind="zstd", errors=(zstandard.ZstdError,), note_damage=note_damage,
    )  # fmt: skip


def _members(handle: IO[bytes], *, new_decoder: Any, magic: bytes, kind: str,
             errors: tuple[type[Exception], ...], note_damage: Any) -> Iterator[bytes]:  # fmt: skip
    """Decompress concatenated gzip members or zstd frames, delivering everything before
    the first damage (a cut, corrupt data, or bytes that are not another member). NUL
    padding after the last member, as crashed writers leave, is not damage."""
    decoder = new_decoder()
    offset = 0  # compressed bytes consumed, for the damage message
    started = False
    while chunk := handle.read(_BLOCK):
        data = chunk
        while data:
            if decoder.eof:
                if data.startswith(magic):
                    decoder = new_decoder()  # the next member
                elif not data.strip(b"\x00"):
                    offset += len(data)
                    break
                else:
                    note_damage(f"{len(data)} bytes that are not {kind} after byte {offset}")
                    return
            try:
                out = decoder.decompress(data)
            except errors as exc:
                note_damage(f"{kind} data is corrupt near byte {offset} ({exc})")
                return
            started = True
            if out:
                yield out
            if decoder.eof:
                rest = decoder.unused_data
                offset += len(data) - len(rest)
                data = rest
            else:
                offset += len(data)
                data = b""
    if started and not decoder.eof:
        note_damage(f"{kind} data ends early at byte {offset} (truncated copy)")


def _careful_ndjson(
    file: InputFile, report: FileReport, *, strict: bool, fields: FieldSet
) -> Iterator[pl.DataFrame]:
    damage: list[str] = []
    line_no = 0
    with file.path.open("rb") as handle:
        pending = b""
        for block in _decompressed_blocks(handle, file.compression, damage.append):
            data = pending + block
            cut = data.rfind(b"\n")
            if cut < 0:
                pending = data
                continue
            pending = data[cut + 1 :]
            report.progress = min(1.0, handle.tell() / max(1, file.size))
            batch = _careful_block(data[: cut + 1], line_no, report, strict=strict, fields=fields)
            line_no += data.count(b"\n", 0, cut + 1)
            if batch.height:
                yield batch
        if pending:
            batch = _careful_block(pending, line_no, report, strict=strict, fields=fields)
            if batch.height:
                yield batch
    if damage:
        report.damage = damage[0]
        if strict:
            raise DataError(
                f"{file.name}: {damage[0]}; run without --strict to keep what precedes it"
            )


def _careful_block(block: bytes, first: int, report: FileReport, *, strict: bool,
                   fields: FieldSet) -> pl.DataFrame:  # fmt: skip
    """Decode one block of whole lines; ``first`` lines of the file precede it."""
    raw_lines = block.split(b"\n")
    if block.endswith(b"\n"):
        raw_lines.pop()
    texts: list[str | None] = []
    try:
        texts.extend(block.decode("utf-8").split("\n")[: len(raw_lines)])
    except UnicodeDecodeError:
        for raw in raw_lines:
            try:
                texts.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                texts.append(None)
    frame = pl.DataFrame(
        {POS: pl.int_range(first + 1, first + 1 + len(texts), eager=True), "line": texts},
        schema={POS: pl.Int64, "line": pl.String},
    )
    undecodable = frame.filter(pl.col("line").is_null())
    frame = frame.filter(_filled(pl.col("line"))).with_columns(
        pl.col("line").str.strip_prefix("\ufeff").str.strip_chars()
    )
    report.records += frame.height + undecodable.height
    out: list[pl.DataFrame] = []
    bad: list[tuple[int, str]] = [(p, "bytes that are not UTF-8") for p in undecodable[POS]]
    _decode_bisect(frame, out, bad, fields)
    for pos, reason in sorted(bad):
        report.note_malformed(pos, reason, strict=strict)
    if not out:
        return _python_frame([], fields).drop(_BAD)
    merged = pl.concat(out, how="vertical")
    return merged.drop(_BAD)


def _decode_bisect(
    frame: pl.DataFrame, out: list[pl.DataFrame], bad: list[tuple[int, str]], fields: FieldSet
) -> None:
    """Decode ``frame``'s lines, bisecting a part that does not decode down to its bad
    lines; lines with a lone surrogate escape are decoded in Python."""
    lone = frame.select(_lone_surrogates(pl.col("line"))).to_series()
    if lone.any():
        _python_lines(frame.filter(lone), out, bad, fields)
        frame = frame.filter(~lone)
    _bisect(frame, out, bad, fields)


def _bisect(
    frame: pl.DataFrame, out: list[pl.DataFrame], bad: list[tuple[int, str]], fields: FieldSet
) -> None:
    if frame.height == 0:
        return
    if frame.height <= _BISECT_FLOOR:
        _python_lines(frame, out, bad, fields)
        return
    try:
        decoded = _json_decode(frame, fields.document_dtype)
    except pl.exceptions.PolarsError:
        half = frame.height // 2
        _bisect(frame.slice(0, half), out, bad, fields)
        _bisect(frame.slice(half), out, bad, fields)
        return
    columns = _fields_from_docs(decoded, "__doc", fields)
    bad.extend((p, "not a JSON object (null)") for p in columns.filter(pl.col(_BAD))[POS])
    out.append(columns.filter(~pl.col(_BAD)))


def _python_record(text: str, fields: FieldSet) -> dict[str, list[str | None]] | str:
    try:
        doc = _load(text)
    except RecursionError:
        return "nested too deeply to decode"
    except ValueError as exc:
        return f"not valid JSON ({str(exc).split(':')[0]})"
    return python_fields(doc, fields)


def _json_document_batches(
    file: InputFile, report: FileReport, *, strict: bool, fields: FieldSet
) -> Iterator[pl.DataFrame]:
    """A file that is one JSON value: an array of documents or hits, a ``_search``
    response (``hits.hits``), or a single pretty-printed document. Held in memory whole."""
    report.unit = "record"
    damage: list[str] = []
    with file.path.open("rb") as handle:
        raw = b"".join(_decompressed_blocks(handle, file.compression, damage.append))
    if damage:
        report.damage = damage[0]
    try:
        text = raw.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{file.name}: byte {exc.start} is not UTF-8, so the JSON document cannot be "
            "read; re-export it as UTF-8 NDJSON"
        ) from None
    docs = _vector_documents(text, fields)
    if docs is None:
        yield from _python_documents(file, text, report, strict=strict, fields=fields)
        return
    yield _take_good(_fields_from_docs(docs, "__doc", fields), report, strict=strict)


def _vector_documents(text: str, fields: FieldSet) -> pl.DataFrame | None:
    """The documents of one JSON value, decoded vectorised; None when Polars cannot (a
    lone surrogate escape among them too: see :func:`_lone_surrogates`)."""
    series = pl.Series("raw", [text])
    if series.to_frame().select(_lone_surrogates(pl.col("raw"))).item():
        return None
    document = fields.document_dtype
    search = pl.Struct(
        {
            **{f.name: f.dtype for f in document.fields},
            "hits": pl.Struct({"hits": pl.List(document)}),
        }
    )
    try:
        if text.lstrip().startswith("["):
            docs = series.str.json_decode(pl.List(document)).explode()
        else:
            decoded = series.str.json_decode(search)
            hits = decoded.struct.field("hits").struct.field("hits")
            if hits.is_null().all():
                docs = (
                    decoded.struct.rename_fields([f.name for f in search.fields])
                    .to_frame("d")
                    .select(pl.col("d").struct.field(*[f.name for f in document.fields]))
                    .select(pl.struct(pl.all()).alias("__doc"))
                    .to_series()
                )
            else:
                docs = hits.explode()
    except pl.exceptions.PolarsError:
        return None
    frame = docs.alias("__doc").to_frame()
    return frame.with_row_index(POS, offset=1).with_columns(pl.col(POS).cast(pl.Int64))


def _python_documents(
    file: InputFile, text: str, report: FileReport, *, strict: bool, fields: FieldSet
) -> Iterator[pl.DataFrame]:
    try:
        value = _load(text)
    except RecursionError:
        raise InputError(f"{file.name}: the JSON document is nested too deeply to read") from None
    except ValueError as exc:
        raise InputError(
            f"{file.name}: not valid JSON ({exc}); if it holds one document per line, "
            "each line must be a complete JSON object"
        ) from None
    if (
        isinstance(value, dict)
        and isinstance(value.get("hits"), dict)
        and isinstance(value["hits"].get("hits"), list)
    ):
        docs = value["hits"]["hits"]
    elif isinstance(value, list):
        docs = value
    else:
        docs = [value]
    rows = []
    for pos, doc in enumerate(docs, start=1):
        report.records += 1
        try:
            result = python_fields(doc, fields)
        except UnicodeEncodeError:
            result = "a string holds an invalid unicode escape"
        if isinstance(result, str):
            report.note_malformed(pos, result, strict=strict)
        else:
            rows.append((pos, result))
    yield _python_frame(rows, fields).drop(_BAD)


# ------------------------------------------------------------------------------ parquet


def _parquet_batches(file: InputFile, report: FileReport,
                     prefilter: Prefilter | IdPrefilter | None, floor: TimeFloor,
                     fields: FieldSet) -> Iterator[Any]:  # fmt: skip
    """Parquet, read through pyarrow's projection of nested leaves: only the hunt's fields
    are read, never whole structs such as ``process`` or ``host``."""
    import pyarrow.parquet as pq  # noqa: PLC0415 - only Parquet inputs need it

    report.unit = "row"
    try:
        parquet = pq.ParquetFile(file.path)
        leaves = [parquet.schema.column(i).path for i in range(len(parquet.schema))]
    except Exception as exc:  # pyarrow raises several types for a damaged footer
        raise InputError(
            f"{file.name}: not a readable Parquet file ({_first_line(exc)}); "
            "the copy may be incomplete, export it again"
        ) from None
    wanted = parquet_columns(leaves, fields)
    if not wanted:
        raise InputError(
            f"{file.name}: the Parquet file has none of the columns {fields.reader} reads "
            f"({', '.join(fields.names)}), nested or dotted; is it an {fields.export}?"
        )
    total = max(1, parquet.metadata.num_rows)
    try:
        if not isinstance(prefilter, Prefilter):  # --strict, or pivot: every row
            yield from _parquet_all(parquet, wanted, report, total, fields)
        else:
            yield from _parquet_judged(
                parquet, wanted, report, total, prefilter=prefilter, floor=floor
            )
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise InputError(
            f"{file.name}: Parquet data cannot be read ({_first_line(exc)}); "
            "the copy may be damaged, export it again"
        ) from None


def parquet_columns(leaves: Sequence[str], fields: FieldSet = HUNT) -> list[str]:
    """The columns to read of a Parquet file whose leaf columns are ``leaves`` (dotted
    paths): each field's, flat or nested, also under ``_source``. A dotted path selects a
    flat column of that name and a nested one alike, so only the hunt's leaves are read,
    never whole structs such as ``process`` or ``host``."""
    return [
        path
        for name in fields.names
        for path in (name, f"_source.{name}")
        if any(leaf == path or leaf.startswith(path + ".") for leaf in leaves)
    ]


def _selection(schema: pl.Schema, fields: FieldSet = HUNT) -> list[pl.Expr]:
    exprs = [_parquet_field(schema, name) for name in fields.names]
    return [
        (expr if expr is not None else pl.lit(None, dtype=TEXT_LIST)).alias(name)
        for expr, name in zip(exprs, fields.names, strict=True)
    ]


def _positioned(record_batch: Any, first: int) -> pl.DataFrame:
    frame = pl.from_arrow(record_batch)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.int_range(first, first + frame.height, dtype=pl.Int64).alias(POS))


def _kept(record_batch: Any, keep: pl.Series, first: int) -> pl.DataFrame:
    """The rows of ``record_batch`` that ``keep`` marks, numbered from ``first`` for the
    batch's first row. They are picked by pyarrow, before Polars sees them: its filter
    copies the values kept, where a Polars filter of a text column would still point into
    the whole batch's buffers, and a few rows kept from each of many batches (a sparse
    export) held every one of them (4 GB, one row in 2,000 matching: 1 GB of memory).
    Only the rows kept are converted, too."""
    frame = pl.from_arrow(_arrow_filter()(record_batch, keep.to_arrow()))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns((keep.arg_true().cast(pl.Int64) + first).alias(POS))


@lru_cache(maxsize=1)
def _arrow_filter() -> Callable[[Any, Any], Any]:
    """pyarrow's filter kernel. ``RecordBatch.filter`` first imports ``pyarrow.compute``,
    which builds a wrapper for every kernel (about 0.08 s, a tenth of a small Parquet
    hunt); the kernel is called directly through the module that holds it (0.01 s),
    or through ``filter`` where a pyarrow version moves it."""
    try:
        from pyarrow._compute import call_function  # noqa: PLC0415
    except ImportError:  # pragma: no cover - another pyarrow's layout
        return lambda batch, mask: batch.filter(mask)
    return lambda batch, mask: call_function("filter", [batch, mask])


def _parquet_all(parquet: Any, wanted: list[str], report: FileReport, total: int,
                 fields: FieldSet) -> Iterator[pl.DataFrame]:  # fmt: skip
    """Every row, as field lists (--strict, and pivot)."""
    selection: list[pl.Expr] | None = None
    for record_batch in parquet.iter_batches(batch_size=_PARQUET_ROWS, columns=wanted):
        frame = _positioned(record_batch, report.records + 1)
        selection = selection or _selection(frame.schema, fields)
        report.records += frame.height
        report.progress = min(1.0, report.records / total)
        yield frame.select(POS, *selection)


_JUDGED: Final = (f_TIMESTAMP, f_ACTION, f_OS_FAMILY)


def _parquet_judged(parquet: Any, wanted: list[str], report: FileReport, total: int, *,
                    prefilter: Prefilter, floor: TimeFloor) -> Iterator[Any]:  # fmt: skip
    """As for NDJSON: only rows whose raw action (and OS family) can match, and that are
    not older than the floor, are turned into field lists; the others are counted and
    their time read. Each row group is judged first from the columns that decide, and the
    others are read only for a row group where some row survives. Of the deciding
    columns, the timestamps are read first: a row group whose rows are all older than the
    floor needs nothing more (most of an export is older than its last hours)."""
    judged = [path for path in wanted if any(path in (name, f"_source.{name}") for name in _JUDGED)]
    timed = [path for path in judged if path in (f_TIMESTAMP, f"_source.{f_TIMESTAMP}")]
    rest = [path for path in judged if path not in timed]
    if floor.rising:
        floor.observe(_parquet_latest_sampled(parquet, judged))
    selection: list[pl.Expr] | None = None
    could: pl.Expr | None = None  # from the deciding columns' schema, once

    def read(group: int, columns: list[str]) -> Iterator[pl.DataFrame]:
        for record_batch in parquet.iter_batches(
            batch_size=_JUDGED_ROWS, row_groups=[group], columns=columns
        ):
            yield _positioned(record_batch, 1)

    for group in range(parquet.metadata.num_row_groups):
        first = report.records + 1
        texts = list(read(group, timed)) if timed else None
        low = floor.ms
        if texts is not None and low is not None:
            span = _plain_span(texts)
            if span is not None and (span[1] is None or span[1] <= low):
                # every row older than the floor, known from the newest text alone
                report.cover_range(*span)
                _pass_over(sum(frame.height for frame in texts), _NO_STAMPS, floor, report, total)
                continue
        stamps = [_row_stamps(frame) for frame in texts] if texts is not None else None
        texts = None  # the timestamps alone are kept: a row group's texts may be large
        if stamps is not None and low is not None and not any(s.gt(low).any() for s in stamps):
            for stamp in stamps:  # every row older than the floor
                _pass_over(stamp.len(), stamp, floor, report, total)
            continue
        if not rest:  # no action column: no row can match
            assert stamps is not None
            judged_batches = [
                (stamp, pl.repeat(False, stamp.len(), eager=True)) for stamp in stamps
            ]
        else:
            frames = read(group, rest)
            # the same row group in batches of the same size: the batches pair up
            pairs = (
                zip(frames, stamps, strict=True)
                if stamps is not None
                else ((frame, _row_stamps(frame)) for frame in frames)
            )
            judged_batches = []
            for frame, stamp in pairs:
                could = could if could is not None else _parquet_could(frame.schema, prefilter)
                judged_batches.append((stamp, frame.select(could).to_series()))
        masks = []
        for stamp, could_match in judged_batches:
            keep = _judge(stamp, could_match, floor, report, total)
            masks.append(keep.mask)
            if keep.stamps is not None:
                yield keep.stamps
        if not masks:
            continue
        mask = pl.concat(masks)
        if not mask.any():
            continue
        offset = 0
        for record_batch in parquet.iter_batches(
            batch_size=_PARQUET_ROWS, row_groups=[group], columns=wanted
        ):
            part = mask.slice(offset, record_batch.num_rows)
            if part.any():
                frame = _kept(record_batch, part, first + offset)
                selection = selection or _selection(frame.schema)
                yield frame.select(POS, *selection)
            offset += record_batch.num_rows


def _plain_span(frames: list[pl.DataFrame]) -> tuple[int | None, int | None] | None:
    """The oldest and newest @timestamp (epoch ms, as the engine reads them) of a row
    group's timestamp column, read from its least and greatest texts, when that is exact;
    else None, and each row's timestamp must be read.

    It is exact when one plain text column holds the timestamps and every text in it has
    the same length and ends in ``Z``: the general rule then reads every one of them in a
    single shape of fixed-width fields (``2022-04-04T18:52:00.6007809Z``), or not at all,
    so text order is time order. A text that cannot be read lies between the two and
    counts for nothing either way; the least and greatest themselves must read. One
    exception: the rule reads a 60th second (``10:00:60.5Z`` is ``10:01:00.5Z``), which
    sorts before ``10:01:00.0Z``; a column holding one is read row by row."""
    if not frames:  # a row group of no rows
        return None, None
    found = _parquet_raw(frames[0].schema, f_TIMESTAMP)
    if len(found) != 1 or found[0][1] != pl.String:
        return None
    text = pl.col(_STAMP)
    width = text.str.len_bytes()
    row = pl.concat([frame.select(found[0][0].alias(_STAMP)) for frame in frames]).select(
        width.min().alias("narrow"),
        width.max().alias("wide"),
        text.str.ends_with("Z").all().alias("zoned"),
        (text.str.slice(17, 2) == "60").any().alias("leap"),  # the seconds, if any
        text.min().alias("low"),
        text.max().alias("high"),
    )
    narrow, wide, zoned, leap, low, high = row.row(0)
    if low is None:  # no timestamps at all
        return None, None
    if narrow != wide or not zoned or leap:
        return None
    low_ms, high_ms = text_ms(pl.Series([low, high], dtype=pl.String)).to_list()
    if low_ms is None or high_ms is None:
        return None
    return low_ms, high_ms


def _parquet_latest_sampled(parquet: Any, judged: list[str]) -> int | None:
    """A lower bound of the newest @timestamp of a Parquet file, from its first and last
    row groups (exports are in time order, one way or the other), so that ``--now
    latest`` can skip old rows from the start. Each row's timestamp is read as the judge
    and the engine read it, so the final anchor is at least this."""
    last = parquet.metadata.num_row_groups - 1
    newest: int | None = None
    for group in sorted({0, last}) if last >= 0 else ():
        for record_batch in parquet.iter_batches(
            batch_size=_PARQUET_ROWS, row_groups=[group], columns=judged
        ):
            frame = _positioned(record_batch, 1)
            high = _row_stamps(frame).cast(pl.Int64).max()
            if isinstance(high, int) and (newest is None or high > newest):
                newest = high
    return newest


@dataclass(frozen=True)
class _Judgement:
    mask: pl.Series  # rows to decode
    stamps: Stamps | None  # timestamps of the others that may be in the window


def _judge(stamp: pl.Series, could: pl.Series, floor: TimeFloor, report: FileReport,
           total: int) -> _Judgement:  # fmt: skip
    """Which rows of a batch to decode: those that ``could`` match, by their deciding
    columns, and are not older than the floor by their timestamps, ``stamp``."""
    low = floor.ms
    fresh = pl.lit(True) if low is None else (pl.col(_STAMP) > low).fill_null(False)
    marked = pl.DataFrame([stamp.alias(_STAMP), could.alias(_COULD)]).with_columns(
        (pl.col(_COULD) & fresh).alias(_COULD)
    )
    # the stamps alone are filtered: the other columns' text need not be copied for them
    passed = marked.select(pl.col(_STAMP).filter(~pl.col(_COULD)).drop_nulls()).to_series()
    _pass_over(stamp.len(), passed, floor, report, total)
    return _Judgement(marked.get_column(_COULD), floor.stamps(passed) if passed.len() else None)


def _pass_over(rows: int, stamps: pl.Series, floor: TimeFloor, report: FileReport,
               total: int) -> None:  # fmt: skip
    """Count ``rows`` read rows, and the timestamps of those not decoded in the report's
    time range (and the rising floor)."""
    report.records += rows
    report.progress = min(1.0, report.records / total)
    report.cover(stamps)
    floor.observe(report.last_ms)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _parquet_could(schema: pl.Schema, prefilter: Prefilter) -> pl.Expr:
    """Rows whose raw columns may hold the action (and an OS family): a superset of the
    rows that match, judged without building the field lists."""

    def holds(name: str, value: str) -> pl.Expr:
        tests = []
        for expr, dtype in _parquet_raw(schema, name):
            if isinstance(dtype, (pl.List, pl.Array)):
                tests.append(expr.cast(pl.List(pl.String), strict=False).list.contains(value))
            elif dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
                tests.append(expr.cast(pl.String) == value)
            else:
                tests.append(pl.lit(True))  # a type we cannot judge here: decode the row
        return pl.any_horizontal(tests).fill_null(False) if tests else pl.lit(False)

    could = holds(f_ACTION, prefilter.action)
    if prefilter.families is not None:
        could &= pl.any_horizontal([holds(f_OS_FAMILY, family) for family in prefilter.families])
    return could


def _parquet_moment(schema: pl.Schema) -> Any:
    """When a single plain column holds @timestamp: a function giving each row's
    timestamp (epoch ms, exactly as the engine reads it) from a batch; else None."""
    found = _parquet_raw(schema, f_TIMESTAMP)
    if len(found) != 1:
        return None
    expr, dtype = found[0]
    if isinstance(dtype, pl.Datetime):
        instant = expr.dt.convert_time_zone("UTC") if dtype.time_zone else expr
        return lambda frame: frame.select(instant.dt.epoch("ns") // 1_000_000).to_series()
    if dtype.is_integer():
        return lambda frame: frame.select(expr.cast(pl.Int64, strict=False)).to_series()
    if dtype == pl.String:
        return lambda frame: text_ms(frame.select(expr).to_series())
    return None


def _row_stamps(frame: pl.DataFrame) -> pl.Series:
    """Each row's @timestamp (epoch ms) as the engine reads it: by
    :func:`_parquet_moment` when one plain column holds it, else from the field lists."""
    moment = _parquet_moment(frame.schema)
    return moment(frame) if moment is not None else _parquet_stamps(frame, _selection(frame.schema))


def _parquet_stamps(frame: pl.DataFrame, selection: list[pl.Expr]) -> pl.Series:
    """Each row's @timestamp (epoch ms) by the engine's own rule, from its field list."""
    stamp = frame.select(POS, selection[FIELDS.index(f_TIMESTAMP)])
    return timestamps(stamp, f_TIMESTAMP)


def _parquet_raw(schema: pl.Schema, name: str) -> list[tuple[pl.Expr, Any]]:
    """Every column (or struct field) that holds ``name``, with its type."""
    found: list[tuple[pl.Expr, Any]] = []
    for prefix in ((), ("_source",)):
        for path in key_paths(name):
            full = (*prefix, *path)
            dtype: Any = schema.get(full[0])
            expr = pl.col(full[0])
            for key in full[1:]:
                if not isinstance(dtype, pl.Struct):
                    dtype = None
                    break
                dtype = {f.name: f.dtype for f in dtype.fields}.get(key)
                expr = expr.struct.field(key)
            if dtype is not None:
                found.append((expr, dtype))
    return found


def _parquet_field(schema: pl.Schema, name: str) -> pl.Expr | None:
    found = [_as_text_list(expr, dtype) for expr, dtype in _parquet_raw(schema, name)]
    return _merge(found) if found else None


def _as_text_list(expr: pl.Expr, dtype: Any) -> pl.Expr:
    if isinstance(dtype, (pl.List, pl.Array)):
        inner = dtype.inner
        return expr.cast(pl.List(inner)).list.eval(_as_text(pl.element(), inner))
    return pl.concat_list([_as_text(expr, dtype)])


def _as_text(expr: pl.Expr, dtype: Any) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        moment = expr.dt.convert_time_zone("UTC") if dtype.time_zone else expr
        return moment.dt.to_string("%Y-%m-%dT%H:%M:%S%.9fZ")
    if isinstance(dtype, pl.Date):
        return expr.dt.to_string("%Y-%m-%d")
    if dtype == pl.String:
        return expr
    if dtype.is_numeric() or dtype == pl.Boolean:
        return expr.cast(pl.String)
    if dtype == pl.Categorical or isinstance(dtype, pl.Enum):
        return expr.cast(pl.String)
    return pl.lit(None, dtype=pl.String)  # structs, binary: not a value of these fields
