"""The input model: what an input file is, what reading it found, and the columns that
every reader's field frames carry beside the fields."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final, Literal

import polars as pl

from egress_offline.errors import DataError
from egress_offline.readers import tuning

if TYPE_CHECKING:
    from egress_offline.readers.remote import Store

__all__ = [
    "FILE",
    "ID",
    "INDEX",
    "POS",
    "TS",
    "Compression",
    "Encoding",
    "FileReport",
    "Format",
    "InputFile",
    "Inputs",
    "Layout",
    "StampBatch",
]

Format = Literal["ndjson", "json", "parquet", "csv"]
Compression = Literal["none", "gzip", "zstd"]
#: How NDJSON lines hold records: documents or hits (one record a line), JSON values that
#: hold records (a scroll dump's responses, esArchiver entries), or a _bulk body.
Layout = Literal["documents", "values", "bulk"]
Encoding = Literal["utf-8", "utf-16-le", "utf-16-be"]

#: A record's position in its file: its line (NDJSON), record (JSON document) or row.
POS: Final = "__pos"
#: The number of the record's file among the inputs, from 0.
FILE: Final = "__file"
#: The record's @timestamp in epoch ms, as the engine reads it (null when it has none).
TS: Final = "__ts"
#: The document's ``_index`` and ``_id``, where the record carries them (else null): the
#: same pair is the same document, however many files or copies hold it.
INDEX: Final = "__index"
ID: Final = "__id"


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
    layout: Layout = "documents"
    #: the text's encoding, told by its byte order mark (UTF-16 is read through a UTF-8
    #: copy in the scratch directory, as are lines ended by a carriage return alone)
    encoding: Encoding = "utf-8"
    carriage_returns: bool = False
    #: sniffing saw records that hold a field the hunt reads
    understood: bool = False
    #: where the file is when it is not on a local file system (an ``s3a://`` URI...),
    #: and how to reach it (``path`` is then no file): it is read through a local copy
    #: (:func:`~egress_offline.readers.remote.staged`), a local file named by the URI
    uri: str | None = None
    store: Store | None = field(default=None, repr=False, compare=False)

    def open(self) -> BinaryIO:
        """The file, opened for reading bytes (with seeking), wherever it is."""
        if self.uri is not None:
            from egress_offline.readers.remote import open_uri  # noqa: PLC0415

            return open_uri(self.uri, self.store)
        return self.path.open("rb")

    @property
    def needs_copy(self) -> bool:
        """Is the file read through a UTF-8 copy with ``\\n`` line ends? Also a compressed
        CSV file: Polars' CSV reader takes its text uncompressed."""
        return (
            self.encoding != "utf-8"
            or self.carriage_returns
            or (self.format == "csv" and self.compression != "none")
        )

    @property
    def text_estimate(self) -> int:
        """The size of the file's text, estimated: its own size when nothing better."""
        return self.text_size or self.size


@dataclass
class Inputs:
    """The files to read, and the paths a directory walk passed over (not events)."""

    files: list[InputFile]
    skipped: list[str]


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
    layout: Layout = "documents"
    encoding: Encoding = "utf-8"
    #: some line not decoded matched the prefilter's hint (:class:`IdPrefilter`)
    hinted: bool = False
    sha256: str | None = None
    #: @timestamp range (epoch ms) of the records the prefilter passed over undecoded
    first_ms: int | None = None
    last_ms: int | None = None
    #: how far reading has come, 0 to 1, for a progress display
    progress: float = 0.0
    #: values that could not be read as their field's type (a CSV's ``1.2KB`` bytes),
    #: read as missing: how many, and the first few with their position
    unreadable: int = 0
    unreadable_first: list[str] = field(default_factory=list)
    #: what the user should know of how the file was read (a CSV's dates had no zone)
    notes: list[str] = field(default_factory=list)
    #: records of the file dropped as the same document as an earlier one (the same
    #: ``_index`` and ``_id``): counted once, where first read
    duplicates: int = 0
    #: some record holds a field that is read (what a file in a layout the tool does not
    #: know would never do)
    understood: bool = False
    _order: list[int] = field(default_factory=list, repr=False)  # positions' numbers

    @classmethod
    def of(cls, file: InputFile) -> FileReport:
        unit: Literal["line", "record", "row"] = (
            "line" if file.format == "ndjson" else "record" if file.format == "json" else "row"
        )
        report = cls(file.name, file.format, file.compression, file.size, unit)
        report.layout, report.encoding = file.layout, file.encoding
        report.understood = file.understood
        return report

    def reset(self) -> None:
        """Forget what was found: the file is read again from its start."""
        self.records = 0
        self.malformed = 0
        self.positions.clear()
        self._order.clear()
        self.damage = None
        self.first_ms = self.last_ms = None
        self.progress = 0.0
        self.unreadable = 0
        self.unreadable_first.clear()
        self.notes.clear()

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

    def note_unreadable(self, position: int, reason: str) -> None:
        """Count a value read as missing because it is not of its field's type."""
        self.unreadable += 1
        if len(self.unreadable_first) < tuning.MAX_POSITIONS:
            self.unreadable_first.append(f"{self.unit} {position}: {reason}")

    def note_malformed(self, position: int, reason: str, *, strict: bool) -> None:
        """Count a malformed record; keep the first few by position, whatever the order
        in which they are found (lines that may match are decoded later)."""
        if strict:
            raise DataError(
                f"{self.name}: {self.unit} {position}: {reason}; "
                "run without --strict to skip and count malformed records",
                file=self.name,
                position=position,
            )
        self.malformed += 1
        at = bisect.bisect(self._order, position)
        if at < tuning.MAX_POSITIONS:
            self._order.insert(at, position)
            self.positions.insert(at, f"{self.unit} {position}: {reason}")
            del self._order[tuning.MAX_POSITIONS :], self.positions[tuning.MAX_POSITIONS :]


@dataclass(frozen=True)
class StampBatch:
    """The @timestamps (epoch ms) of valid records a reader did not decode, because they
    cannot match, that may be in the window: the engine counts them in its time step."""

    ms: pl.Series
