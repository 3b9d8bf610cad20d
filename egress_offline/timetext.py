"""Times as text: epoch milliseconds, and result frames' datetime columns, as ISO-8601 UTC
for every value a ``date`` field can hold.

Elasticsearch's ``date`` is a long of epoch milliseconds: ``"@timestamp": 9999999999999999``
is the year 318857, and is kept. Polars stores such a value but panics when it formats it
(beyond chrono's years) or hands it to Python (beyond datetime's 1-9999), so every writer
turns datetime columns into text here first: in range by Polars, outside it by
:func:`iso_ms` (a signed year, as ISO-8601's expanded form).
"""

from __future__ import annotations

from typing import Final

import polars as pl

__all__ = ["FIRST_MS", "ISO_MS", "LAST_MS", "iso_ms", "times_as_text", "within_python"]

#: ISO-8601 UTC with milliseconds, as the reports write times.
ISO_MS: Final = "%Y-%m-%dT%H:%M:%S%.3fZ"
#: The epoch milliseconds that Python's datetime (and so every formatter) can hold:
#: 0001-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z.
FIRST_MS: Final = -62_135_596_800_000
LAST_MS: Final = 253_402_300_799_999


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds, for any value a ``date`` field
    can hold: years outside 0000-9999 are written with a sign (``+10000-01-01T...``), which
    Python's datetime cannot represent."""
    if ms is None:
        return None
    days, rest = divmod(ms, 86_400_000)
    # civil date from days since 1970-01-01 (H. Hinnant's algorithm, proleptic Gregorian)
    shifted = days + 719_468
    era = shifted // 146_097
    day_of_era = shifted - era * 146_097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = month_index + 3 if month_index < 10 else month_index - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    shown = f"{year:04d}" if 0 <= year <= 9999 else f"{year:+05d}"
    return f"{shown}-{month:02d}-{day:02d}T{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"


def times_as_text(frame: pl.DataFrame, fmt: str = ISO_MS) -> pl.DataFrame:
    """``frame`` with each datetime column as text: ``fmt`` (a strftime format, UTC) where
    the year is 1-9999, :func:`iso_ms` where it is not (a few rows at most: per row)."""
    named = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.Datetime)]
    if not named:
        return frame
    for name in named:
        ms = frame.get_column(name).dt.epoch("ms")
        # formatted clipped, so that no value outside reaches the formatter
        text = pl.from_epoch(ms.clip(FIRST_MS, LAST_MS), time_unit="ms").dt.to_string(fmt)
        outside = (~ms.is_between(FIRST_MS, LAST_MS)).fill_null(False).arg_true()
        if outside.len():
            far = [iso_ms(value) for value in ms.gather(outside).to_list()]
            text = text.scatter(outside, pl.Series(far, dtype=pl.String))
        frame = frame.with_columns(text.alias(name))
    return frame


def within_python(frame: pl.DataFrame) -> bool:
    """Can each datetime of ``frame`` become a Python datetime (years 1-9999)?"""
    named = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.Datetime)]
    if not named or frame.height == 0:
        return True
    ms = frame.select(pl.col(name).dt.epoch("ms") for name in named)
    bounds = ms.select(
        pl.min_horizontal(pl.all().min()).alias("low"),
        pl.max_horizontal(pl.all().max()).alias("high"),
    ).row(0)
    low, high = (None if value is None else int(value) for value in bounds)
    return (low is None or low >= FIRST_MS) and (high is None or high <= LAST_MS)
