"""What a hunt or sweep gives back: the counts of every step, the flagged rows, and the
data's time range; and the names of the output columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import polars as pl

from egress_offline import fields as f
from egress_offline.readers import FileReport
from egress_offline.spec import HuntSpec

if TYPE_CHECKING:
    from egress_offline.engine.series import GroupSeries

__all__ = [
    "CONNECTIONS",
    "FIRST_SEEN",
    "LAST_SEEN",
    "OPTIONAL_COLUMNS",
    "OUTPUT_COLUMNS",
    "TOTAL",
    "Counts",
    "DataRange",
    "HuntResult",
    "moment_of",
]

TOTAL: Final = "total_bytes_out"
CONNECTIONS: Final = "connections"
FIRST_SEEN: Final = "first_seen"
LAST_SEEN: Final = "last_seen"
#: Output columns, in order. The last two are dropped when no flagged row has a value.
OUTPUT_COLUMNS: Final = (
    TOTAL,
    *f.GROUP_FIELDS,
    f.HOST_NAME,
    f.USER_NAME,
    CONNECTIONS,
    FIRST_SEEN,
    LAST_SEEN,
    f.DEST_PORT,
    f.DEST_AS_ORG,
)
OPTIONAL_COLUMNS: Final = (f.DEST_PORT, f.DEST_AS_ORG)


@dataclass
class Counts:
    """Records accounted for at each step. ``records = malformed + valid``; each later
    count is what is left after its filter, in the order the steps run."""

    records: int = 0
    malformed: int = 0
    valid: int = 0
    time_window: int = 0
    event_match: int = 0  # host.os.family, event.category and event.action all match
    public_destination: int = 0
    groups: int = 0
    flagged: int = 0
    event_match_with_bytes: int = 0
    #: event matches dropped because an earlier record was the same document (the same
    #: ``_index`` and ``_id``); ``event_match`` counts each document once
    duplicates: int = 0


def moment_of(ms: int | None) -> datetime | None:
    """A datetime, or None when there is none or it lies outside years 1-9999."""
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


class DataRange:
    """The data's time range as datetimes, from a result's ``first_ms`` and ``last_ms``."""

    first_ms: int | None
    last_ms: int | None

    @property
    def data_first(self) -> datetime | None:
        return moment_of(self.first_ms)

    @property
    def data_last(self) -> datetime | None:
        return moment_of(self.last_ms)


@dataclass
class HuntResult(DataRange):
    """The flagged rows and everything needed to report how they were found."""

    rows: pl.DataFrame
    spec: HuntSpec
    counts: Counts
    files: list[FileReport]
    skipped: list[str]
    #: the anchor, the window's exclusive start and the data's time range, in epoch ms: a
    #: ``date`` may lie beyond datetime's years 1-9999 (the properties below are None there)
    now_ms: int | None = None
    cutoff_ms: int | None = None
    first_ms: int | None = None
    last_ms: int | None = None
    warnings: list[str] = field(default_factory=list)
    #: the warnings that can change what the answer means (a CSV's dates read in a zone
    #: they did not give, values read as missing): shown even with ``--quiet``
    alerts: list[str] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    #: when the run started, epoch ms (UTC)
    started_ms: int | None = None
    #: the flagged groups' bytes over time (``run_hunt(..., series=True)``), else None
    series: list[GroupSeries] | None = None

    @property
    def now(self) -> datetime | None:
        return moment_of(self.now_ms)

    @property
    def cutoff(self) -> datetime | None:
        return moment_of(self.cutoff_ms)
