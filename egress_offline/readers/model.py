"""The input model: what an input file is, what reading it found, and the columns that
every reader's field frames carry beside the fields."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import polars as pl

from egress_offline.errors import DataError
from egress_offline.readers import tuning

__all__ = [
    "FILE",
    "POS",
    "TS",
    "Compression",
    "FileReport",
    "Format",
    "InputFile",
    "Inputs",
    "StampBatch",
]

Format = Literal["ndjson", "json", "parquet"]
Compression = Literal["none", "gzip", "zstd"]

#: A record's position in its file: its line (NDJSON), record (JSON document) or row.
POS: Final = "__pos"
#: The number of the record's file among the inputs, from 0.
FILE: Final = "__file"
#: The record's @timestamp in epoch ms, as the engine reads it (null when it has none).
TS: Final = "__ts"


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
    #: some line not decoded matched the prefilter's hint (:class:`IdPrefilter`)
    hinted: bool = False
    sha256: str | None = None
    #: @timestamp range (epoch ms) of the records the prefilter passed over undecoded
    first_ms: int | None = None
    last_ms: int | None = None
    #: how far reading has come, 0 to 1, for a progress display
    progress: float = 0.0
    _order: list[int] = field(default_factory=list, repr=False)  # positions' numbers

    @classmethod
    def of(cls, file: InputFile) -> FileReport:
        unit: Literal["line", "record", "row"] = (
            "line" if file.format == "ndjson" else "row" if file.format == "parquet" else "record"
        )
        return cls(file.name, file.format, file.compression, file.size, unit)

    def reset(self) -> None:
        """Forget what was found: the file is read again from its start."""
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
