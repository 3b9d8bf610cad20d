"""The hunt, defined once: a frozen, validated specification that the engine compiles.

The defaults are the seed query ("Egress Network Connections with Total Bytes Greater than
Threshold"); every departure from it is an explicit option.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from egress_offline.errors import UsageError
from egress_offline.ranges import SEED_CIDRS, CidrBlock, parse_cidr
from egress_offline.timetext import iso_ms  # kept importable from here (library callers)

__all__ = [
    "DEFAULT_ACTIONS",
    "DEFAULT_CATEGORIES",
    "DEFAULT_OS_FAMILIES",
    "DEFAULT_THRESHOLD",
    "DEFAULT_WINDOW",
    "HuntSpec",
    "NowMode",
    "RowFilters",
    "SweepSpec",
    "iso_ms",
    "parse_duration",
    "parse_now",
    "parse_size",
    "parse_time",
    "parse_zone",
    "read_cidr_file",
    "size_given",
]

NowMode = Literal["latest", "wall"]

# The seed query's predicate, spelled out here and nowhere else:
#   host.os.family == "windows" and event.category == "network" and
#   event.action == "disconnect_received"
DEFAULT_OS_FAMILIES: Final = ("windows",)
DEFAULT_CATEGORIES: Final = ("network",)
DEFAULT_ACTIONS: Final = ("disconnect_received",)
DEFAULT_THRESHOLD: Final = 1_073_741_824  # 1 GiB, as in the query
DEFAULT_WINDOW: Final = timedelta(hours=8)

_DURATION_PART = re.compile(r"(\d+)([smhd])")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: the longest --window, in seconds: Python's longest timedelta, whole days
_LONGEST_WINDOW: Final = timedelta.max.days * 86400
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_FACTORS: Final = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
#: each unit as it is shown: ``GB``, ``GiB``
_UNIT_NAMES: Final = {name: name.upper().replace("IB", "iB") for name in _SIZE_FACTORS}


def parse_duration(text: str) -> timedelta:
    """``8h``, ``90m``, ``1h30m``, ``2d``, ``45s``: a positive duration."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise UsageError(
            f"--window: {text!r} is not a duration; use a number with s, m, h or d, "
            "such as 8h, 90m or 1h30m"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise UsageError(f"--window: {text!r} must be longer than zero")
    if seconds > _LONGEST_WINDOW:
        raise UsageError(
            f"--window: {text!r} is longer than the longest window, "
            f"{_LONGEST_WINDOW // 86400}d (over two million years)"
        )
    return timedelta(seconds=seconds)


def parse_size(text: str, option: str = "--threshold") -> int:
    """Plain bytes, or ``KB MB GB TB`` (powers of 1000) and ``KiB MiB GiB TiB`` (of 1024)."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(
            f"{option}: {text!r} is not a size; use bytes (1073741824) or a unit "
            "such as 500MB, 1GiB or 2TB"
        )
    number, unit = match.groups()
    return int(number) * _SIZE_FACTORS[(unit or "b").lower()]


def size_given(text: str, option: str = "--threshold") -> str:
    """A size as given, spelled one way: ``1 GB``, ``500 MiB``; plain bytes as digits
    (``1gb`` is ``1 GB``). Raises :class:`UsageError` as :func:`parse_size` does."""
    parse_size(text, option)
    match = _SIZE.match(text)
    assert match is not None
    number, unit = match.groups()
    if unit is None or unit.lower() == "b":
        return str(int(number))
    return f"{int(number)} {_UNIT_NAMES[unit.lower()]}"


def parse_now(text: str) -> NowMode | datetime:
    """``latest``, ``wall``, or an ISO-8601 time; a time without offset is UTC."""
    lowered = text.strip().lower()
    if lowered in ("latest", "wall"):
        return lowered  # type: ignore[return-value]
    return parse_time(text, "--now", "'latest', 'wall' or ")


def parse_time(text: str, option: str, alternatives: str = "") -> datetime:
    """An ISO-8601 time; a time without offset is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise UsageError(
            f"{option}: {text!r} is not {alternatives}an ISO-8601 time such as 2024-05-01T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2}):?(\d{2})?$", re.IGNORECASE)


def parse_zone(text: str) -> str:
    """A time zone: an IANA name (``Europe/Paris``), ``UTC``, or an offset from UTC
    (``+02:00``, ``-0530``, ``UTC+1``), as Polars takes it."""
    name = text.strip()
    if name.upper() in ("UTC", "Z", "GMT"):
        return "UTC"
    offset = _OFFSET.match(name)
    if offset is not None:
        sign, hours, minutes = offset.groups()
        if int(hours) <= 14 and int(minutes or 0) < 60:
            return f"{sign}{int(hours):02d}:{int(minutes or 0):02d}"
    else:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
        else:
            return name
    raise UsageError(
        f"--csv-timezone: {text!r} is not a time zone; give an IANA name such as "
        "Europe/Paris or America/New_York, UTC, or an offset such as +02:00"
    )


def read_cidr_file(path: Path) -> tuple[CidrBlock, ...]:
    """One block per line; blank lines and ``#`` comments are ignored."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"--exclude-cidr-file: cannot read {path} ({exc}); give a UTF-8 text file "
            "with one CIDR block per line"
        ) from None
    blocks = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            blocks.append(parse_cidr(entry, origin=f"{path}:{number}"))
    return tuple(blocks)


@dataclass(frozen=True, kw_only=True)
class RowFilters:
    """What hunt and sweep share: the whole row predicate and the threshold. A record
    matches when its ``host.os.family`` is one of ``os_families`` (``None``: any), its
    ``event.category`` one of ``categories`` and its ``event.action`` one of
    ``actions`` (each single-valued, compared exactly, as ES|QL's ``==``), and its
    ``destination.ip`` is in none of :attr:`cidrs` (``extra_cidrs``: blocks excluded in
    addition to the seed's 26). The readers' prefilter, the engine's batch reduction and
    the summary's labels are all compiled from these fields."""

    os_families: tuple[str, ...] | None = DEFAULT_OS_FAMILIES
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    actions: tuple[str, ...] = DEFAULT_ACTIONS
    threshold: int = DEFAULT_THRESHOLD
    #: the threshold as the user gave it (``1GB``), kept to say it back; its size must be
    #: :attr:`threshold`. Spelled one way once built (``1 GB``, see :func:`size_given`)
    threshold_given: str | None = None
    extra_cidrs: tuple[CidrBlock, ...] = ()
    strict: bool = False
    #: the time zone a Kibana CSV export's dates are written in (they carry none): an IANA
    #: name or an offset such as ``+02:00`` (see :func:`parse_zone`)
    csv_timezone: str = "UTC"
    seed_cidrs: tuple[CidrBlock, ...] = field(
        default_factory=lambda: tuple(parse_cidr(c) for c in SEED_CIDRS), repr=False
    )

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int):
            raise UsageError("threshold: must be a whole number of bytes")
        if not 0 <= self.threshold < 2**63:
            raise UsageError("threshold: must be between 0 and 2^63-1 bytes")
        if self.threshold_given is not None:
            if not isinstance(self.threshold_given, str):
                raise UsageError("threshold_given: must be the size as text, such as '1GB'")
            given = size_given(self.threshold_given, "threshold_given")
            if parse_size(given, "threshold_given") != self.threshold:
                raise UsageError(
                    f"threshold_given: {self.threshold_given!r} is "
                    f"{parse_size(given, 'threshold_given'):,} bytes, not the threshold's "
                    f"{self.threshold:,}"
                )
            object.__setattr__(self, "threshold_given", given)
        object.__setattr__(self, "csv_timezone", parse_zone(self.csv_timezone))
        if self.os_families is not None and not self.os_families:
            raise UsageError("os_families: give at least one family, or None for any")
        for name in ("os_families", "categories", "actions"):
            values = getattr(self, name)
            if values is None and name == "os_families":
                continue
            if not isinstance(values, tuple) or not values:
                raise UsageError(f"{name}: give a tuple of at least one value")
            if not all(isinstance(value, str) and value for value in values):
                raise UsageError(f"{name}: every value must be a non-empty string")

    @property
    def cidrs(self) -> tuple[CidrBlock, ...]:
        """Every excluded block: the seed's 26, then the extra ones."""
        return self.seed_cidrs + self.extra_cidrs

    @property
    def threshold_unit(self) -> str | None:
        """The threshold in the unit given (``1 GB``), or None when given in bytes."""
        given = self.threshold_given
        return None if given is None or given.isdigit() else given

    @property
    def threshold_text(self) -> str:
        """The threshold in bytes, and in the unit given: ``1,000,000,000 bytes (1 GB)``."""
        unit = self.threshold_unit
        return f"{self.threshold:,} bytes" + (f" ({unit})" if unit else "")

    @property
    def threshold_note(self) -> str | None:
        """What a decimal unit means, beside the query's binary one: ``1 GB =
        1,000,000,000 bytes; the query's 1 GiB is 1,073,741,824``. None otherwise."""
        unit = self.threshold_unit
        if unit is None or "i" in unit:
            return None
        return f"{unit} = {self.threshold:,} bytes; the query's 1 GiB is {DEFAULT_THRESHOLD:,}"

    @property
    def event_kinds(self) -> str:
        """The events matched, in a few words: ``network disconnect_received``."""
        return f"{','.join(self.categories)} {','.join(self.actions)}"

    @property
    def event_label(self) -> str:
        """The event predicate in a few words: ``windows network disconnect_received``."""
        families = "any" if self.os_families is None else ",".join(self.os_families)
        return f"{families} {self.event_kinds}"


@dataclass(frozen=True, kw_only=True)
class HuntSpec(RowFilters):
    """What to hunt for. Built once, validated on construction, never changed.

    ``now``: ``"latest"`` (the newest ``@timestamp`` in the input), ``"wall"`` (the clock,
    as ES|QL's ``now()``) or a fixed aware time. ``window``: the look-back; ``None`` means
    all time.
    """

    now: NowMode | datetime = "latest"
    window: timedelta | None = DEFAULT_WINDOW

    def __post_init__(self) -> None:
        if isinstance(self.now, datetime):
            if self.now.tzinfo is None:
                raise UsageError("now: a fixed time needs a UTC offset")
        elif self.now not in ("latest", "wall"):
            raise UsageError(f"now: {self.now!r} is not 'latest', 'wall' or a time")
        if self.window is not None and self.window <= timedelta(0):
            raise UsageError("window: must be longer than zero")
        super().__post_init__()

    @property
    def window_ms(self) -> int | None:
        return None if self.window is None else _ms(self.window)


@dataclass(frozen=True, kw_only=True)
class SweepSpec(RowFilters):
    """What to sweep a historical dump for: the hunt's row filters, no anchor time, and a
    sliding ``window`` in which a group's bytes are summed. ``since`` (inclusive) and
    ``until`` (exclusive) bound the period swept; None leaves it open. Validated on
    construction, never changed."""

    window: timedelta = DEFAULT_WINDOW
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.window <= timedelta(0):
            raise UsageError("window: must be longer than zero")
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise UsageError(f"{name}: a time needs a UTC offset")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise UsageError("since: must be before until")
        super().__post_init__()

    @property
    def window_ms(self) -> int:
        return _ms(self.window)

    @property
    def since_ms(self) -> int | None:
        return None if self.since is None else _ms(self.since)

    @property
    def until_ms(self) -> int | None:
        return None if self.until is None else _ms(self.until)


def _ms(value: datetime | timedelta) -> int:
    """Epoch milliseconds of a time, or milliseconds of a duration."""
    seconds = value.timestamp() if isinstance(value, datetime) else value.total_seconds()
    return int(seconds * 1000)
