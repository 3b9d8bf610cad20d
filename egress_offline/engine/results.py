"""What a hunt or sweep gives back: the counts of every step, the flagged rows, and the
data's time range; and the names of the output columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

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
    "Diagnosis",
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
    #: the event matches the destination step dropped, by why: no ``destination.ip`` (of
    #: which ``destination_address_only`` have a ``destination.address``), none that is an
    #: address, several, or one in an excluded range. With ``public_destination`` they
    #: add up to ``event_match``.
    destination_missing: int = 0
    destination_address_only: int = 0
    destination_unreadable: int = 0
    destination_several: int = 0
    destination_excluded: int = 0
    #: the largest group's sum (the hunt's total, the sweep's peak); None without a group
    #: whose bytes could be summed
    largest: int | None = None


@dataclass(frozen=True)
class Diagnosis:
    """One step of the funnel that removed (nearly) every record it was given, or another
    finding that can change what the answer means (``step`` ``anchor``: see
    :mod:`engine.anchor`): what it was given, what it kept, a sentence, and the data
    behind it. ``alert``: the answer may mean something other than "nothing there"
    (shown even with ``--quiet``)."""

    step: str
    given: int
    kept: int
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    alert: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "given": self.given,
            "kept": self.kept,
            "alert": self.alert,
            "message": self.message,
            "data": self.data,
        }


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
    #: they did not give, values read as missing, a funnel step that kept nothing, an
    #: anchor far from the rest of the data): shown even with ``--quiet``
    alerts: list[str] = field(default_factory=list)
    #: why nothing was flagged, step by step; and what is wrong with the anchor
    diagnoses: list[Diagnosis] = field(default_factory=list)
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
